import pytest
from django.contrib.auth import get_user_model
from django.test import TransactionTestCase
from rest_framework.test import APIClient

from pmrelease.bootstrap import ensure_role_groups
from releases.bootstrap import ensure_access_matrix
from releases.demo import ENVIRONMENTS, LINKS
from releases.models import Environment


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _flag_refresher_stopped_after_the_test():
    """A live-server test that served flags leaves the edge's refresher thread polling a test database that is
    then gone (a traceback in the log after the run): stop it, and drop the snapshots, when the test ends."""
    yield
    from flags import snapshots

    if snapshots._state["refresher"] is not None:
        snapshots.reset()


@pytest.fixture(autouse=True)
def _audit_checkpoints_per_test(settings, tmp_path):
    """Each test has its own checkpoint file (the database is rolled back between tests; the file is not)."""
    settings.AUDIT_CHECKPOINT_PATH = tmp_path / "audit-checkpoints.jsonl"


# The way through the audit table's TRUNCATE trigger (pmrelease migration 0003) for the flush that ends every
# transaction=True test on PostgreSQL: the session setting is set around that flush only, and nowhere in the
# product. Tests that check the refusal run outside it.
_flush = TransactionTestCase._fixture_teardown


def _fixture_teardown_allowing_audit_truncate(self):
    from django.db import connections

    pg = [connections[name] for name in self._databases_names(include_mirrors=False)
          if connections[name].vendor == "postgresql"]
    for connection in pg:
        with connection.cursor() as cursor:
            cursor.execute("SET pmrelease.audit_truncate = 'allow'")
    try:
        _flush(self)
    finally:
        for connection in pg:
            with connection.cursor() as cursor:
                cursor.execute("RESET pmrelease.audit_truncate")


TransactionTestCase._fixture_teardown = _fixture_teardown_allowing_audit_truncate


@pytest.fixture
def groups(db):
    from changes.services import ensure_default_rules

    groups = ensure_role_groups()
    ensure_default_rules()  # from migration 0002, but a transactional test's flush empties the table
    return groups


@pytest.fixture
def envs(groups):
    """The seed's six environments with their promotion path and access matrix."""
    result = {}
    for name, display, tier, position, purpose, infra, source, retention, backup in ENVIRONMENTS:
        result[name] = Environment.objects.create(
            name=name, display_name=display, tier=tier, position=position, purpose=purpose,
            infrastructure=infra, data_source=source, data_retention=retention, data_backup=backup)
    for name, (promotes_to, attached_to, attachment) in LINKS.items():
        env = result[name]
        env.promotes_to = result.get(promotes_to)
        env.attached_to = result.get(attached_to)
        env.attachment = attachment
        env.save()
    ensure_access_matrix(result.values(), groups)
    return result


@pytest.fixture
def make_user(groups):
    def make(username, *roles, superuser=False):
        user = get_user_model().objects.create_user(
            username=username, email=f"{username}@example.com", password="pw-123456789", is_staff=True,
            is_superuser=superuser)
        user.groups.set([groups[r] for r in roles])
        return user

    return make


@pytest.fixture
def users(make_user, envs):
    return {
        "dev": make_user("dev", "developers"),
        "dev2": make_user("dev2", "developers"),
        "qa": make_user("qa", "qa"),
        "product": make_user("product", "product"),
        "support": make_user("support", "support"),
        "ops": make_user("ops", "operations"),
        "planner": make_user("planner", "operations"),  # plans releases for every environment
        "security": make_user("security", "security"),
        "approver": make_user("approver", "approvers"),
        "approver2": make_user("approver2", "approvers"),
        "approver3": make_user("approver3", "approvers"),
        "admin": make_user("admin", superuser=True),
    }


@pytest.fixture
def api():
    def client_for(user=None):
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


def pytest_terminal_summary(terminalreporter):
    """Print how many cases of the official Unleash client specification the engine passed."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in counts:
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            is_case = "test_engine_spec.py::test_is_enabled[" in nodeid or "test_engine_spec.py::test_get_variant[" in nodeid
            if is_case and (report.when == "call" or outcome == "skipped"):
                counts[outcome] += 1
    total = sum(counts.values())
    if total:
        from tests.flags.test_engine_spec import SPEC_VERSION

        terminalreporter.write_line(
            f"Unleash client specification {SPEC_VERSION}: {counts['passed']} of {total} cases passed"
            + (f", {counts['failed']} failed" if counts["failed"] else "")
            + (f", {counts['skipped']} skipped" if counts["skipped"] else ""))


@pytest.fixture
def step_up():
    """Mark a test client's signed-in session as having just shown a second factor: the actions that change
    production need one (pmrelease.identity.stepup)."""
    def mark(client):
        import time

        from pmrelease.identity import stepup

        session = client.session
        session[stepup.SESSION_KEY] = time.time()
        session[stepup.SESSION_METHOD_KEY] = "test"
        session.save()
        return client

    return mark
