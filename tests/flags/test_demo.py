"""The demo seed (edits made in other processes: test_processes.py)."""
import io
from pathlib import Path

import pytest

from flags import demo, snapshots
from flags.models import FeatureFlag, GradualRollout

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_demo_seed__run_twice__idempotent_with_ramp_variants_and_kill_switch(envs, users):
    out = io.StringIO()
    demo.seed(envs=envs, users=users, stdout=out)
    count = FeatureFlag.objects.count()
    demo.seed(envs=envs, users=users, stdout=out)
    assert FeatureFlag.objects.count() == count >= 5
    assert GradualRollout.objects.filter(state__flag__key="new-checkout").count() == 1
    assert FeatureFlag.objects.get(key="bulk-send-enabled").type == "kill-switch"
    production = snapshots.get(envs["production"].pk).snapshot
    assert production.get_variant("campaign-subject-line-test", {"userId": "1"})["enabled"]
    assert production.is_enabled("bulk-send-enabled", {})
