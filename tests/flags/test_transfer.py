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


def test_parse_document__same_name_twice_or_over_100_characters__refused():
    with pytest.raises(errors.ValidationFailed) as refused:
        transfer.parse_document({"features": [{"name": "a"}, {"name": "a"}, {"name": "x" * 101}]})
    assert "feature 'a': given twice" in refused.value.reasons
    assert any("at most 100 characters" in r for r in refused.value.reasons)


def test_parse_document__what_the_specification_defines__kept_with_warnings():
    doc = {"features": [
        {"name": "Feature.UTF-8.😊", "enabled": True, "strategies": [{"name": "default", "constraints": [
            {"contextName": "ip", "operator": "IN_CIDR", "values": ["10.0.0.0/8", "bad::cidr"]},
            {"contextName": "name", "operator": "REGEX", "value": "^(?=a)b$"}]}],
         "dependencies": [{"feature": "p1"}, {"feature": "p2", "enabled": False}]},
        {"name": "p1", "enabled": True, "dependencies": [{"feature": "p2"}]},
        {"name": "p2", "enabled": False, "project": "billing", "createdAt": "2024-01-01T00:00:00Z"},
    ]}
    plan = transfer.parse_document(doc)
    warnings = transfer.plan_warnings(plan, existing_segments=set(), existing_flags={})
    assert any("'bad::cidr' is not a valid IP address" in w for w in warnings)
    assert any("look-ahead is not supported" in w for w in warnings)
    assert any("parent 'p1' depends on other flags itself" in w for w in warnings)
    assert [f.doc for f in plan.flags] == doc["features"]  # kept exactly as given
    columns, state, source = transfer.split_feature(doc["features"][2], {"release"})
    assert source == {"keys": ["name", "enabled", "project", "createdAt"],
                      "extra": {"project": "billing", "createdAt": "2024-01-01T00:00:00Z"}}
