"""Concurrent decisions on one change: the change's row lock (PostgreSQL) or the database's write lock (SQLite)
orders them, so the change moves once and no vote counts twice."""
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from changes import services
from changes.models import ChangeApproval, ChangeRequest
from pmrelease import errors
from pmrelease.models import AuditEvent
from tests.changes.conftest import PLANS


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_approvals__exactly_one_transition(users, envs, groups):
    approvers = []
    for i in range(50):
        user = get_user_model().objects.create_user(f"cab{i}", password="x")
        user.groups.add(groups["approvers"])
        approvers.append(user)
    change = services.change_create(by=users["dev"], data={"title": "Many hands", "environments": [envs["staging"]],
                                                            **PLANS})
    services.change_submit(change=change, by=users["dev"])
    barrier, outcomes, lock = threading.Barrier(50), [], threading.Lock()

    def approve(user):
        try:
            barrier.wait(timeout=30)
            services.change_approve(change=ChangeRequest.objects.get(pk=change.pk), by=user)
            result = "approved"
        except errors.DomainError as exc:
            result = exc.status_code
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=approve, args=(user,)) for user in approvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes, key=str) == [409] * 49 + ["approved"], outcomes
    assert ChangeRequest.objects.get(pk=change.pk).status == "approved"
    assert ChangeApproval.objects.filter(change=change).count() == 1
    for action in ("changerequest.review", "changerequest.approve", "change.approval"):
        assert AuditEvent.objects.filter(action=action, object_id=str(change.pk)).count() == 1, action
