"""The waits under the ASGI application (pmrelease.asgi): routed to the async-only middleware stack, with the same
answers as under WSGI; every other request goes through the full stack."""
import asyncio

import httpx
import pytest

from pmrelease import asgi, tokens
from releases import services
from releases.deploy import engine
from releases.deploy import services as deployments
from releases.models import DeploymentTarget
from tests.factories import make_release

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_routing__waits_to_the_async_stack_only():
    get = {"type": "http", "method": "GET"}
    assert asgi.is_wait({**get, "path": "/api/v1/deployments/7/events/", "query_string": b""})
    assert asgi.is_wait({**get, "path": "/api/v1/deployments/7/", "query_string": b"wait=30"})
    assert not asgi.is_wait({**get, "path": "/api/v1/deployments/7/", "query_string": b""})
    assert not asgi.is_wait({**get, "path": "/api/v1/deployments/", "query_string": b"wait=30"})
    assert not asgi.is_wait({**get, "method": "POST", "path": "/api/v1/deployments/7/events/", "query_string": b""})


def _paused(users, envs):
    """A canary deployment paused for approval in development, and an operator's token header."""
    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    release = make_release(by=users["dev"], envs=[envs["development"]])
    services.release_approve(release=release, by=users["approver"])
    paused = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                           strategy="canary", parameters={"pause": None}, dispatch=False)
    engine.run_inline(paused.pk)
    return paused, {"Authorization": f"Bearer {tokens.issue_token(user=users['ops'], by='test')}"}


def test_asgi__long_poll_and_stream_of_a_finished_deployment(users, envs, settings):
    settings.DEPLOYMENT_WAIT_POLL_SECONDS = 0.05
    paused, auth = _paused(users, envs)

    async def scenario():
        transport = httpx.ASGITransport(app=asgi.application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            first = await client.get(f"/api/v1/deployments/{paused.pk}/", headers=auth)
            unchanged = await client.get(f"/api/v1/deployments/{paused.pk}/", params={"wait": "0.3"},
                                         headers={**auth, "If-None-Match": first.headers["ETag"]})
            anonymous = await client.get(f"/api/v1/deployments/{paused.pk}/", params={"wait": "1"})
            return first, unchanged, anonymous

    first, unchanged, anonymous = asyncio.run(scenario())
    assert first.status_code == 200 and first.json()["status"] == "awaiting_approval"
    assert unchanged.status_code == 304 and unchanged.headers["ETag"] == first.headers["ETag"]
    assert anonymous.status_code == 401
    deployments.deployment_action(deployment=paused, name="abort", by=users["ops"], reason="x", dispatch=False)
    engine.run_inline(paused.pk)

    async def stream():
        transport = httpx.ASGITransport(app=asgi.application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(f"/api/v1/deployments/{paused.pk}/events/", headers=auth, timeout=30)

    events = asyncio.run(stream())
    assert events.status_code == 200 and events.headers["content-type"].startswith("text/event-stream")
    assert "event: end" in events.text and '"status": "rolled_back"' in events.text


def test_asgi__parked_waiters_hold_no_database_connection(users, envs, settings):
    """Django's ASGI handler runs each request's sync code in a thread of its own: a waiter that parked with the
    connection its first rendering opened kept it for the whole wait (200 waiters: PostgreSQL's "too many
    clients"). Parked waiters hold none; at most DEPLOYMENT_WAIT_RENDER_CONCURRENCY renderings run at once."""
    import os
    import threading
    import weakref

    from django.db.backends.signals import connection_created

    settings.DEPLOYMENT_WAIT_POLL_SECONDS = 0.05
    settings.DEPLOYMENT_WAIT_RENDER_CONCURRENCY = 4
    paused, auth = _paused(users, envs)
    opened, main = [], threading.get_ident()

    def created(sender, connection, **kwargs):
        if threading.get_ident() != main:
            opened.append(weakref.ref(connection))

    connection_created.connect(created, weak=False)
    waiters = 40
    try:
        async def scenario():
            transport = httpx.ASGITransport(app=asgi.application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
                first = await client.get(f"/api/v1/deployments/{paused.pk}/", headers=auth)
                tag = {**auth, "If-None-Match": first.headers["ETag"]}
                parked = [asyncio.create_task(client.get(f"/api/v1/deployments/{paused.pk}/", params={"wait": "3"},
                                                         headers=tag)) for _ in range(waiters)]
                await asyncio.sleep(1.5)  # every waiter rendered once and parked
                held = sum(1 for ref in opened if ref() is not None and ref().connection is not None)
                answers = await asyncio.gather(*parked)
                return held, answers

        held, answers = asyncio.run(scenario())
    finally:
        connection_created.disconnect(created)
    assert [a.status_code for a in answers] == [304] * waiters
    pool = min(32, (os.cpu_count() or 1) + 4)  # asyncio's default executor: the hub's fingerprint queries
    rendering = settings.DEPLOYMENT_WAIT_RENDER_CONCURRENCY  # first renderings of late waiters, if any
    assert held <= pool + rendering + 1 < waiters, (held, len(opened))
