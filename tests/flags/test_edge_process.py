"""The flag edge as its own process (``gunicorn flags.edge:application``): an edit in the portal reaches it within
2 s; when its database (and cache) become unreachable it keeps answering every flag from what it holds, marked
stale; started cold while they are unreachable, it answers from the snapshot it saved on disk.

The database is taken away through a TCP proxy (PostgreSQL and Redis) or, on SQLite, by pointing the edge's
database path (a symbolic link) at a directory that does not exist.
"""
import os
from pathlib import Path

import pytest

from flags import services, snapshots
from flags.models import FeatureFlag
from tests.flags.processes import (
    Gunicorn,
    TcpProxy,
    database_url,
    process_env,
    redis_address,
    request,
    within,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.timeout(180)]

CONTEXTS = [{"targetingKey": f"user-{i}", "plan": plan} for i, plan in enumerate(["pro", "free", "team"] * 4)]


class Backends:
    """What the edge process connects to, and how to make it unreachable."""

    def __init__(self, tmp_path):
        from django.db import connection

        self.proxies = []
        self.link = None
        if connection.vendor == "sqlite":
            self.link = tmp_path / "edge-db.sqlite3"
            os.symlink(connection.settings_dict["NAME"], self.link)
            self.env = {"DATABASE_URL": database_url(path=self.link)}
        else:
            db = connection.settings_dict
            proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
            self.proxies.append(proxy)
            self.env = {"DATABASE_URL": database_url(port=proxy.port)}
        redis = redis_address()
        if redis is not None:
            proxy = TcpProxy(redis[:2])
            self.proxies.append(proxy)
            self.env["REDIS_URL"] = f"redis://127.0.0.1:{proxy.port}{redis[2]}"

    def take_away(self):
        for proxy in self.proxies:
            proxy.stop()
        if self.link is not None:
            self.link.unlink()
            os.symlink("/nonexistent-directory/db.sqlite3", self.link)

    def unreachable_env(self):
        env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere"}
        if self.link is not None:
            env = {"DATABASE_URL": "sqlite:////nonexistent-directory/db.sqlite3"}
        if "REDIS_URL" in self.env:
            env["REDIS_URL"] = "redis://127.0.0.1:1/0"
        return env


@pytest.fixture
def flags(make_flag, envs):
    segment = services.segment_save(name="pros", constraints=[
        {"contextName": "plan", "operator": "IN", "values": ["pro", "team"]}])
    make_flag("plain", enabled={"staging": True})
    make_flag("off", enabled={"staging": False})
    make_flag("rollout", enabled={"staging": True}, strategies={"staging": [
        {"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "default", "groupId": "r"},
         "segments": [segment.pk]}]})
    make_flag("experiment", enabled={"staging": True}, variants={"staging": [
        {"name": "a", "weightType": "variable", "payload": {"type": "json", "value": '{"x": 1}'}},
        {"name": "b", "weightType": "variable", "payload": {"type": "string", "value": "b"}}]})


def _answers(edge, key):
    """Every flag for every context through OFREP bulk and single, and the client-features document."""
    result = {}
    for ctx in CONTEXTS:
        status, body, _ = request(f"{edge.url}/ofrep/v1/evaluate/flags", method="POST", body={"context": ctx},
                                  headers={"Authorization": f"Bearer {key}"})
        assert status == 200, body
        for flag in body["flags"]:
            status, single, _ = request(f"{edge.url}/ofrep/v1/evaluate/flags/{flag['key']}", method="POST",
                                        body={"context": ctx}, headers={"Authorization": f"Bearer {key}"})
            assert status == 200 and single == flag
            result[(ctx["targetingKey"], flag["key"])] = flag
    status, features, _ = request(f"{edge.url}/api/client/features", headers={"Authorization": key,
                                                                              "Unleash-Client-Spec": "5.0.0"})
    assert status == 200
    return result, features


def _without_stale(answers):
    flags, features = answers
    plain = {k: dict(v, metadata={m: x for m, x in v["metadata"].items() if m != "stale"}) for k, v in flags.items()}
    return plain, [f for f in features["features"]], features["segments"]


def test_edge_process__edit_within_2_s__database_gone_then_cold_start__every_flag_answered_marked_stale(
        flags, make_key, envs, tmp_path):
    key = make_key("staging", "client")
    backends = Backends(tmp_path)
    snapshot_dir = tmp_path / "edge-snapshots"
    env = process_env(FLAGS_EDGE_SNAPSHOT_DIR=snapshot_dir, FLAGS_VERSION_CHECK_SECONDS=0.5,
                      FLAGS_EDGE_VERIFY_SECONDS=1, **backends.env)
    edge = Gunicorn("flags.edge:application", env, log_dir=tmp_path)
    try:
        assert request(f"{edge.url}/readyz")[1] == {"status": "ok", "stale": False}
        _answers(edge, key)

        # everything up: an edit in the portal reaches the edge within 2 s
        services.flag_toggle(state=services.state_for(FeatureFlag.objects.get(key="off"), envs["staging"]),
                             enabled=True)
        seconds = within(2.0, lambda: request(f"{edge.url}/ofrep/v1/evaluate/flags/off", method="POST", body={},
                                              headers={"Authorization": f"Bearer {key}"})[1].get("value") is True)
        print(f"edit seen by the edge process after {seconds:.2f} s")
        within(5.0, lambda: (snapshot_dir / f"env-{envs['staging'].pk}.json").exists() and
               (snapshot_dir / "keys.json").exists())
        expected = _without_stale(_answers(edge, key))

        # the database (and the cache) become unreachable: same answers, marked stale, said in the log
        backends.take_away()
        within(10.0, lambda: request(f"{edge.url}/ofrep/v1/evaluate/flags/plain", method="POST", body={},
                                     headers={"Authorization": f"Bearer {key}"})[1]["metadata"].get("stale") is True,
               every=0.2)
        stale = _answers(edge, key)
        assert all(flag["metadata"]["stale"] is True for flag in stale[0].values())
        assert stale[1]["meta"]["stale"] is True and _without_stale(stale) == expected
        assert "answering from the last good snapshot" in edge.logs()
    finally:
        edge.stop()

    # a cold start while they are unreachable: from the saved snapshot
    cold = Gunicorn("flags.edge:application", dict(env, **backends.unreachable_env()), log_dir=tmp_path)
    try:
        assert request(f"{cold.url}/readyz")[1] == {"status": "degraded", "stale": True}
        answers = _answers(cold, key)
        assert all(flag["metadata"]["stale"] is True for flag in answers[0].values())
        assert _without_stale(answers) == expected
        assert "starts from its saved snapshot" in cold.logs()
        status, body, _ = request(f"{cold.url}/ofrep/v1/evaluate/flags/plain", method="POST", body={},
                                  headers={"Authorization": "Bearer not-a-key"})
        assert status == 401  # the saved key table still says who may ask
    finally:
        cold.stop()
    assert not Path(snapshot_dir / "keys.json").stat().st_mode & 0o077  # key hashes: readable by the edge only
    snapshots.reset()
