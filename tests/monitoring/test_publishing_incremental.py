"""Publishing what changed (issue 18): after one incident changes, the publish renders its page, the history page it
sits on, the index, the feed and the JSON, and the files it leaves are byte for byte those a whole publish makes;
unchanged files are not rewritten; a burst of changes makes one publish, and a change made during a publish is
never dropped."""
import datetime as dt

import pytest
from django.utils import timezone

from monitoring import tasks
from monitoring.models import PublishRequest
from monitoring.statuspage import documents, incidents, maintenance, publishing

pytestmark = pytest.mark.django_db


def tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def at():
    return timezone.now().replace(microsecond=0) + dt.timedelta(minutes=1)


@pytest.fixture
def queued(monkeypatch):
    """The publish tasks queued after commits (not run: the test runs them)."""
    calls = []
    monkeypatch.setattr(tasks.publish_status_site, "delay", lambda *a, **k: calls.append(k))
    return calls


def test_publish__one_incident_changed__incremental_files_byte_identical_to_a_full_publish(
        full_page, ops, at, settings, tmp_path, queued, django_capture_on_commit_callbacks):
    publishing.publish_site(now=at)
    with django_capture_on_commit_callbacks(execute=True):
        incidents.incident_add_update(incident=full_page["resolved"], body="A note after the fact.", by=ops)
    assert list(PublishRequest.objects.values_list("key", flat=True)) == [f"incident:{full_page['resolved'].pk}"]
    before = tree(publishing.site_root())
    assert queued == [{"pending": True}]
    written = publishing.publish_pending(now=at, only_waiting=True)  # the task's work, at the same time
    incremental = tree(publishing.site_root())
    assert not PublishRequest.objects.exists()

    settings.STATUS_PUBLISH_DIR = tmp_path / "full"
    publishing.publish_site(now=at)
    assert incremental == tree(publishing.site_root())
    rewritten = {name for name in incremental if before.get(name) != incremental[name]}
    assert f"incidents/{full_page['resolved'].pk}/index.html" in rewritten
    assert not any(name.startswith(("incidents/", "maintenances/")) and str(full_page["resolved"].pk) not in name
                   for name in rewritten), rewritten
    assert written == len(rewritten)


def test_publish__maintenance_changed__incremental_byte_identical(full_page, ops, at, settings, tmp_path, queued,
                                                                   django_capture_on_commit_callbacks):
    publishing.publish_site(now=at)
    with django_capture_on_commit_callbacks(execute=True):
        maintenance.maintenance_update(maintenance=full_page["upcoming"], data={"name": "Failover drill"}, by=ops)
    publishing.publish_pending(now=at, only_waiting=True)
    incremental = tree(publishing.site_root())
    assert b"Failover drill" in incremental[f"maintenances/{full_page['upcoming'].pk}/index.html"]
    settings.STATUS_PUBLISH_DIR = tmp_path / "full"
    publishing.publish_site(now=at)
    assert incremental == tree(publishing.site_root())


def test_publish__nothing_changed__no_file_rewritten(full_page, at):
    assert publishing.publish_site(now=at) > 0
    mtimes = {p: p.stat().st_mtime_ns for p in publishing.site_root().rglob("*") if p.is_file()}
    assert publishing.publish_site(now=at) == 0
    assert publishing.publish_site(now=at, changes={f"incident:{full_page['open'].pk}"}) == 0
    assert mtimes == {p: p.stat().st_mtime_ns for p in publishing.site_root().rglob("*") if p.is_file()}


def test_publish__next_day__only_index_and_history_move(full_page, at):
    """Pages of incidents print no time of generation: a later publish leaves them alone."""
    publishing.publish_site(now=at)
    before = tree(publishing.site_root())
    publishing.publish_site(now=at + dt.timedelta(days=1))
    after = tree(publishing.site_root())
    moved = {name for name in after if before.get(name) != after[name]}
    assert not any(name.startswith(("incidents/", "maintenances/")) for name in moved), moved


def test_publish__burst_of_changes__one_publish_renders_them_all(full_page, ops, at, queued,
                                                                 django_capture_on_commit_callbacks):
    publishing.publish_site(now=at)
    for n in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            incidents.incident_add_update(incident=full_page["open"], body=f"Burst update {n}.", by=ops)
    with django_capture_on_commit_callbacks(execute=True):
        incidents.incident_add_update(incident=full_page["resolved"], body="Burst on another.", by=ops)
    assert len(queued) == 6 and all(call == {"pending": True} for call in queued)
    results = [tasks.publish_status_site(**call) for call in queued]
    assert results[0] > 0 and results[1:] == [0] * 5  # the first publish covered the burst
    root = publishing.site_root()
    page = (root / f"incidents/{full_page['open'].pk}/index.html").read_text()
    assert all(f"Burst update {n}." in page for n in range(5))
    assert "Burst on another." in (root / f"incidents/{full_page['resolved'].pk}/index.html").read_text()


def test_publish__change_requested_during_a_publish__not_dropped(full_page, ops, at, monkeypatch, queued):
    publishing.publish_site(now=at)
    key = f"incident:{full_page['open'].pk}"
    publishing.request_publish([key])
    real = publishing.publish_site

    def publish_while_changing(*args, **kwargs):
        result = real(*args, **kwargs)
        later = timezone.now() + dt.timedelta(seconds=1)
        PublishRequest.objects.filter(key=key).update(requested_at=later)  # requested again meanwhile
        return result

    monkeypatch.setattr(publishing, "publish_site", publish_while_changing)
    tasks.publish_status_site(pending=True)
    assert list(PublishRequest.objects.values_list("key", flat=True)) == [key]  # the next task publishes it


def test_publish__component_change__whole_site(components, ops, queued, django_capture_on_commit_callbacks):
    from monitoring.statuspage import components as component_services

    with django_capture_on_commit_callbacks(execute=True):
        component_services.component_set_status(component=components["REST API"], status="major_outage", by=ops)
    assert list(PublishRequest.objects.values_list("key", flat=True)) == [publishing.ALL]
    tasks.publish_status_site(**queued[-1])
    assert (publishing.site_root() / "index.html").exists() and not PublishRequest.objects.exists()


def test_publish__old_incident_changed__its_history_page_only_and_byte_identical(
        components, ops, at, settings, tmp_path, queued, django_capture_on_commit_callbacks, monkeypatch):
    """Beyond the uptime window and the most recent few, the incremental publish loads only the incidents of
    the pages it renders; what it writes is still what a whole publish writes."""
    monkeypatch.setattr(documents, "RECENT", 2)
    old = {days: incidents.incident_create(name=f"Old {days}", body="Long ago.", by=ops,
                                           started_at=timezone.now() - dt.timedelta(days=days))
           for days in (1, 20, 40, 200, 300, 301)}
    for incident in old.values():
        incidents.incident_transition(incident=incident, name="resolve", by=ops, body="Fixed.")
    publishing.publish_site(now=at)
    before = tree(publishing.site_root())
    assert {"history/index.html", "history/2/index.html", "history/3/index.html"} <= set(before)
    with django_capture_on_commit_callbacks(execute=True):
        incidents.incident_add_update(incident=old[300], body="Root cause found later.", by=ops)
    publishing.publish_pending(now=at, only_waiting=True)
    incremental = tree(publishing.site_root())
    rewritten = {name for name in incremental if before.get(name) != incremental[name]}
    assert b"Root cause found later." in incremental["history/22/index.html"]
    assert {name for name in rewritten if name.startswith("history/")} == {"history/22/index.html",
                                                                          "history/22/index.html.gz"}
    settings.STATUS_PUBLISH_DIR = tmp_path / "full"
    publishing.publish_site(now=at)
    assert incremental == tree(publishing.site_root())
