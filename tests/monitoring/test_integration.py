"""End to end with a real Celery worker: a change commits, the worker re-publishes the site and notifies."""
import json

import pytest
from django.core import mail

from monitoring.models import Subscriber
from monitoring.statuspage import incidents, publishing, subscribers
from monitoring.statuspage import status as st
from tests.integration_support import running_worker, wait_for


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_incident_create__real_worker__site_republished_and_subscriber_notified(components, ops):
    subscriber = Subscriber.objects.create(kind="email", email="reader@example.com")
    subscribers.subscription_confirm(token=subscribers.make_token(subscriber, "confirm"))
    summary = publishing.site_root() / "api" / "v2" / "summary.json"

    def published_incident():
        try:
            return any(i["name"] == "Worker incident" for i in json.loads(summary.read_bytes())["incidents"])
        except (FileNotFoundError, ValueError):
            return False

    with running_worker():
        incidents.incident_create(name="Worker incident", body="Seen by the worker.", by=ops,
                                  components={components["REST API"]: st.MAJOR})
        assert wait_for(published_incident), "the worker did not publish the incident"
        assert wait_for(lambda: any("Worker incident" in m.subject for m in mail.outbox)), "no notification"
    message = next(m for m in mail.outbox if "Worker incident" in m.subject)
    assert message.to == ["reader@example.com"] and "Seen by the worker." in message.body
