"""The demo seed, and edits made in another process becoming visible here within 2 seconds."""
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from flags import demo, services, snapshots
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


@pytest.mark.postgres
@pytest.mark.timeout(90)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="another process needs a shared, committed database")
@pytest.mark.django_db(transaction=True)
def test_flag_edit__in_another_process__visible_here_within_two_seconds(make_flag, make_key, envs, settings):
    make_flag("cross-process", enabled={"staging": False})
    assert not snapshots.get(envs["staging"].pk).snapshot.is_enabled("cross-process", {})
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    script = (
        "from flags import services; from flags.models import FlagEnvironment;"
        "s = FlagEnvironment.objects.select_related('flag', 'environment')"
        ".get(flag__key='cross-process', environment__name='staging');"
        "services.flag_toggle(state=s, enabled=True, reason='other process')"
    )
    env = dict(os.environ, DATABASE_URL=url)
    subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=REPO, env=env, check=True, timeout=60)
    edited_at = time.monotonic()
    while not snapshots.get(envs["staging"].pk).snapshot.is_enabled("cross-process", {}):
        assert time.monotonic() - edited_at < 2.0, "the edit was not seen within 2 seconds"
        time.sleep(0.05)
    assert services.FeatureFlag.objects.filter(key="cross-process").exists()
