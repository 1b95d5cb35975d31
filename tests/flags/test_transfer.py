"""Reading Unleash client-features documents (flags.transfer); applying them is services.flags_import."""
import pytest

from flags import transfer
from pmrelease import errors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("doc, problem", [
    ({"features": [], "segments": [{"id": [1], "constraints": []}]}, "segments[0]: id must be a whole number"),
    ({"features": [], "segments": [{"id": 1, "constraints": 5}]}, "segment 1: constraints must be a list"),
    ({"features": [{"name": "a", "variants": 5}]}, "feature 'a': variants must be a list"),
    ({"features": [{"name": "a", "dependencies": 5}]}, "feature 'a': dependencies must be a list"),
    ({"features": [{"name": "a", "dependencies": [{"feature": ["x"]}]}]},
     "feature 'a': dependency 1: feature must be a flag name"),
    ({"features": [{"name": "a", "variants": ["x"]}]}, "feature 'a': variants: variant 1 must be an object"),
    ({"features": [{"name": "a", "strategies": [{"name": "default", "variants": ["x"]}]}]},
     "feature 'a': strategy 1: variant 1 must be an object"),
    ({"features": [{"name": "a", "dependencies": ["x"]}]}, "feature 'a': dependency 1 must be an object"),
    ({"features": [{"name": "a", "enabled": "false"}]}, "feature 'a': enabled must be true or false"),
    ({"features": [{"name": "a", "impressionData": "false"}]}, "feature 'a': impressionData must be true or false"),
    ({"features": [], "segments": [{"id": 1, "name": "s", "constraints": []}, {"id": 2, "name": "s"}]},
     "segments 1 and 2 have the same name 's'"),
    ({"features": [], "segments": [{"id": 1, "constraints": []}, {"id": 1, "constraints": []}]},
     "segments[1]: id 1 is used twice"),
])
def test_parse_document__malformed__refused_listing_the_problem(doc, problem):
    with pytest.raises(errors.ValidationFailed) as refused:
        transfer.parse_document(doc)
    assert problem in refused.value.reasons
