"""Per-process snapshots and the publishing of version tokens (flags.snapshots)."""
import pytest

from flags import snapshots

pytestmark = pytest.mark.django_db


def test_snapshots_bump__inside_open_transaction__published_only_on_commit(envs, django_capture_on_commit_callbacks):
    scope = snapshots.env_scope(envs["staging"].pk)
    snapshots.get(envs["staging"].pk)
    published = snapshots.read_published(scope)
    with django_capture_on_commit_callbacks(execute=True):
        token = snapshots.bump(scope)
        assert snapshots.read_published(scope) == published
    assert snapshots.read_published(scope) == token


def test_snapshots_get__rebuilt_from_a_read_older_than_the_published_token__does_not_republish_it(envs, monkeypatch):
    env = envs["staging"]
    scope = snapshots.env_scope(env.pk)
    old = snapshots.get(env.pk)
    snapshots.reset()
    new = snapshots.bump(scope)
    snapshots.publish(scope, new)
    monkeypatch.setattr(snapshots, "_build", lambda environment_id: old)  # its database read predates the edit
    snapshots.get(env.pk)
    assert snapshots.read_published(scope) == new


def test_snapshots_publish_if_absent__newer_token_published__reader_never_overwrites(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    snapshots.publish("env:99", "newer")
    snapshots.publish_if_absent("env:99", "older")
    assert snapshots.read_published("env:99") == "newer"
    snapshots.publish_if_absent("env:98", "first")
    assert snapshots.read_published("env:98") == "first"
