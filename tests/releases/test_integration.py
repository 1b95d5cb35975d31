"""End to end with a real Celery worker, and concurrency on PostgreSQL."""
import threading

import pytest
from django.core import mail
from django.db import connection, connections

from pmrelease import errors
from pmrelease.models import AuditEvent
from releases import services
from releases.models import Release
from tests.factories import make_release
from tests.integration_support import running_worker, wait_for


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_release_create__real_worker__approvers_emailed(users, envs):
    with running_worker():
        release = make_release(by=users["dev"], envs=[envs["staging"]], title="Worker path")
        assert wait_for(lambda: len(mail.outbox) >= 1), "the worker did not send the approval e-mail"
    message = mail.outbox[0]
    assert f"Release {release.version} awaits your approval" in message.subject
    assert set(message.to) == {"approver@example.com", "approver2@example.com", "approver3@example.com"}


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are tested on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_release_approve__two_concurrent_last_votes__exactly_one_transition(users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]], quorum=2)
    services.release_approve(release=release, by=users["approver"])
    barrier = threading.Barrier(2)
    outcomes = []

    def vote(user):
        try:
            barrier.wait(timeout=10)
            _, moved = services.release_approve(release=Release.objects.get(pk=release.pk), by=user)
            outcomes.append(("moved" if moved else "voted", user.username))
        except errors.DomainError as exc:
            outcomes.append((exc.status_code, user.username))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=vote, args=(users[name],)) for name in ("approver2", "approver3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    kinds = sorted(str(kind) for kind, _ in outcomes)
    assert kinds == ["409", "moved"], outcomes
    assert Release.objects.get(pk=release.pk).status == "approved"
    assert AuditEvent.objects.filter(action="release.approve", object_id=str(release.pk)).count() == 1
    assert release.approvals.count() == 2
