"""Row locks in one order (environment → release → deployments by id): cancelling a queued deployment while a
worker finishes an aborted deployment of the same release in the same environment deadlocked on PostgreSQL
(the worker held the release and environment through a FOR UPDATE over a join and then updated the queued
deployment; the cancel held that deployment and waited for the release)."""
import threading
import time

import pytest
from django.db import OperationalError, connections

from pmrelease import errors
from releases import signals
from releases.deploy import engine
from releases.deploy import services as deployments
from releases.models import Deployment
from tests.releases.conftest import approved_release, sim_targets  # noqa: F401 (fixtures)


def _start(release, env, users):
    return deployments.deployment_create(release=release, environment=env, by=users["ops"], dispatch=False,
                                         strategy="canary", parameters={"steps": [10, 100], "pause": None})


@pytest.mark.django_db(transaction=True)
def test_cancel_queued_while_the_aborted_one_finishes__no_deadlock(users, envs, sim_targets,  # noqa: F811
                                                                   approved_release):  # noqa: F811
    env = envs["development"]
    release = approved_release(envs=[env])
    first = engine.run_inline(_start(release, env, users).pk)
    assert first.status == "awaiting_approval"  # waits for a person to promote
    queued = _start(release, env, users)
    assert queued.status == "pending"
    deployments.deployment_action(deployment=first, name="abort", by=users["ops"], reason="wrong build",
                                  dispatch=False)
    ended, outcomes = threading.Event(), {}

    def hold_the_end(sender, deployment, **kwargs):
        """Inside the worker's last transaction, holding its locks: let the cancel reach its lock first."""
        if deployment.pk == first.pk:
            ended.set()
            time.sleep(1.0)

    def run(name, job):
        try:
            job()
            outcomes[name] = "ok"
        except errors.DomainError as exc:
            outcomes[name] = exc.status_code
        except OperationalError as exc:  # "deadlock detected" on PostgreSQL
            outcomes[name] = repr(exc)
        finally:
            connections.close_all()

    def cancel():
        assert ended.wait(timeout=60)
        deployments.deployment_action(deployment=Deployment.objects.get(pk=queued.pk), name="cancel",
                                      by=users["ops"], reason="superseded", dispatch=False)

    signals.deployment_finished.connect(hold_the_end, dispatch_uid="test-hold-the-end")
    try:
        threads = [threading.Thread(target=run, args=("worker", lambda: engine.run_inline(first.pk))),
                   threading.Thread(target=run, args=("cancel", cancel))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        signals.deployment_finished.disconnect(dispatch_uid="test-hold-the-end")
    # the worker ended the aborted deployment and started the queued one when its turn came; the cancel then
    # found it running (409) — or, had it come first, cancelled it. Never a deadlock.
    assert outcomes["worker"] == "ok", outcomes
    assert outcomes["cancel"] in ("ok", 409), outcomes
    assert Deployment.objects.get(pk=first.pk).status == "rolled_back"
    assert Deployment.objects.get(pk=queued.pk).status in ("cancelled", "running")
