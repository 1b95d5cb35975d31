"""Evaluation counts kept in memory and flushed into FlagMetricsBucket rows (flags.usage)."""
import pytest

from flags import services, usage
from flags.models import FlagMetricsBucket

pytestmark = pytest.mark.django_db


def test_usage_flush__one_environment_fails__others_written_and_failed_counts_kept(envs, monkeypatch):
    real = services.metrics_record

    def flaky(*, environment_id, **kwargs):
        if environment_id == envs["development"].pk:
            raise RuntimeError("database is locked")
        return real(environment_id=environment_id, **kwargs)

    monkeypatch.setattr(services, "metrics_record", flaky)
    for env in ("development", "staging", "production"):
        usage.record(envs[env].pk, "f", True)
    with pytest.raises(RuntimeError):
        usage.flush()
    assert usage.pending() == {(envs["development"].pk, "f"): [1, 0, {}]}
    written = set(FlagMetricsBucket.objects.values_list("environment__name", flat=True))
    assert written == {"staging", "production"}
