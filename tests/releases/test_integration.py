"""End to end with a real Celery worker, and concurrency on PostgreSQL."""
import threading

import pytest
from django.core import mail
from django.db import connection, connections

from pmrelease import errors
from pmrelease.models import AuditEvent
from releases import services
from releases.models import Release
from tests.factories import make_release, ready_plan
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


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are tested on PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_release_edit_racing_the_last_vote__never_approved_on_content_nobody_saw(users, envs, attempt):
    """An edit (quorum 2 → 1, risk lowered) and a vote at the same time: either the vote comes first and the
    edit withdraws it (and finds nothing approved to edit, or an approved release it may not edit), or the
    edit comes first and the vote counts in the new round. Never an approval carried over to edited content."""
    release = make_release(by=users["dev"], envs=[envs["staging"]], quorum=2,
                           plan=ready_plan(risk_assessment={"impact": "high", "likelihood": "high"}))
    services.release_approve(release=release, by=users["approver"])
    barrier = threading.Barrier(2)
    outcomes = {}

    def run(name, work):
        try:
            barrier.wait(timeout=10)
            work()
            outcomes[name] = "ok"
        except errors.DomainError as exc:
            outcomes[name] = exc.status_code
        finally:
            connections.close_all()

    edit = lambda: services.release_update(  # noqa: E731
        release=Release.objects.get(pk=release.pk), data={"title": "Edited"}, by=users["dev"],
        plan={"risk_assessment": {"impact": "low", "likelihood": "low"}})
    vote = lambda: services.release_approve(release=Release.objects.get(pk=release.pk), by=users["approver2"])  # noqa: E731
    threads = [threading.Thread(target=run, args=("edit", edit)), threading.Thread(target=run, args=("vote", vote))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    final = Release.objects.get(pk=release.pk)
    counted = {a.approver.username for a in final.current_approvals()}
    if outcomes["edit"] == "ok":
        assert final.title == "Edited" and final.approval_round == 2 and outcomes["vote"] == "ok"
        assert final.status == "planned" and counted == {"approver2"}  # the vote came after, on the new content
    else:  # the vote met the quorum first: the approved release is frozen
        assert outcomes["edit"] == 409 and final.status == "approved" and final.title == "Test release"
        assert counted == {"approver", "approver2"}
