"""Publishing the public status page as static files.

Everything public (the page, history pages, a page per incident and maintenance, the Atom feed, every
Statuspage v2 JSON document and the CSS/JS) is rendered here and written into the publish directory,
laid out by URL: ``<publish dir>/status/index.html`` is ``/status/``, ``<publish dir>/status/api/v2/summary.json``
is ``/status/api/v2/summary.json``. nginx, a CDN or an object store can serve that tree as is; in the
embedded default Django serves it (``views.published``), so the page keeps answering with the database,
web workers and Celery all stopped.

Each file is written to a temporary file in its own directory and moved into place with ``os.replace``
(atomic on POSIX): a reader sees the old file or the new one, never half of one. Files whose bytes did not
change are left alone (their mtime, and so HTTP validators, stay stable).

One bad text never stops the site: texts are published through ``texts.clean`` (a character XML or UTF-8
cannot carry becomes U+FFFD, and the publish says how many it escaped). How the last publish went is kept in
``<publish dir>/.publish-status.json`` (``last_status``), outside the served tree: /readyz reports a failed
publish as "degraded", the status page admin warns, and /metrics exports it.
"""
import datetime as dt
import gzip
import hashlib
import json
import logging
import os
import tempfile
import zoneinfo
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from feedgen.feed import FeedGenerator
from prometheus_client.core import GaugeMetricFamily

from . import documents, selectors, texts, uptime
from . import status as st

log = logging.getLogger(__name__)

HISTORY_DAYS_PER_PAGE = 14
COMPRESSIBLE = (".html", ".json", ".atom", ".css", ".js")
INDEX_HISTORY_DAYS = 7
ASSETS = ("status/status.css", "status/status.js")


def publish_later():
    """Re-render the static site once the current transaction commits (services call it after a change)."""
    from monitoring.tasks import publish_status_site

    publish_status_site.delay_on_commit()


def publish_dir():
    return Path(settings.STATUS_PUBLISH_DIR)


def site_root():
    """The directory that holds what is served under /status/."""
    return publish_dir() / "status"


def write_atomic(path, data):
    """Write bytes to ``path`` atomically; returns False when the file already held exactly these bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    return True


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


# --- view model -----------------------------------------------------------------------------------------------
def _tz():
    try:
        return zoneinfo.ZoneInfo(settings.TIME_ZONE or "UTC")
    except zoneinfo.ZoneInfoNotFoundError:
        return dt.UTC


def _incident_spans(snapshot, component):
    spans = []
    for incident in snapshot.incidents:
        if any(c.pk == component.pk for c in incident.affected_list):
            spans.append((incident.started_at, incident.resolved_at, incident.name))
    for maintenance in snapshot.maintenances:
        if maintenance.started_at and any(c.pk == component.pk for c in maintenance.affected_list):
            spans.append((maintenance.started_at, maintenance.completed_at, f"Maintenance: {maintenance.name}"))
    return spans


def component_rows(snapshot, days=selectors.HISTORY_DAYS):
    tz = _tz()
    today = snapshot.now.astimezone(tz).date()
    rows = []
    for component in snapshot.components:
        intervals = snapshot.intervals.get(component.pk, [])
        bar = uptime.days(intervals, today=today, count=days, tz=tz, now=snapshot.now,
                          incidents=_incident_spans(snapshot, component))
        windows = uptime.window_uptimes(intervals, now=snapshot.now)
        rows.append({
            "component": component,
            "label": st.COMPONENT_STATUS_LABELS[component.status],
            "bar": [{"date": d.date, "status": d.status or "nodata", "uptime": uptime.format_percent(d.uptime),
                     "incidents": d.incidents,
                     "label": st.COMPONENT_STATUS_LABELS.get(d.status, "No data")} for d in bar],
            "windows": [(name, uptime.format_percent(value)) for name, value in windows.items()],
            "uptime_90d": uptime.format_percent(windows["90d"]),
            "hidden": component.only_show_if_degraded and component.status == st.OPERATIONAL,
        })
    return rows


def grouped(snapshot, rows):
    by_group = {}
    for row in rows:
        by_group.setdefault(row["component"].group_id, []).append(row)
    result = []
    for group in snapshot.groups:
        members = [r for r in by_group.get(group.pk, []) if not r["hidden"]]
        if members:
            worst = st.worst([r["component"].status for r in members])
            result.append({"group": group, "rows": members, "status": worst,
                           "label": st.COMPONENT_STATUS_LABELS[worst]})
    loose = [r for r in by_group.get(None, []) if not r["hidden"]]
    if loose:
        worst = st.worst([r["component"].status for r in loose])
        result.append({"group": None, "rows": loose, "status": worst, "label": st.COMPONENT_STATUS_LABELS[worst]})
    return result


def history_days(snapshot, *, first, count):
    """Days ``first`` … ``first + count - 1`` back from today (newest first) with the incidents and completed
    maintenance that started that day."""
    tz = _tz()
    today = snapshot.now.astimezone(tz).date()
    result = []
    for offset in range(first, first + count):
        date = today - dt.timedelta(days=offset)
        items = [("incident", i) for i in snapshot.incidents if i.started_at.astimezone(tz).date() == date]
        items += [("maintenance", m) for m in snapshot.maintenances
                  if m.status == "completed" and m.scheduled_for.astimezone(tz).date() == date]
        result.append({"date": date, "items": items})
    return result


def history_page_count(snapshot):
    tz = _tz()
    today = snapshot.now.astimezone(tz).date()
    starts = [i.started_at for i in snapshot.incidents] + [m.scheduled_for for m in snapshot.maintenances
                                                            if m.status == "completed"]
    if not starts:
        return 1
    oldest = min(starts).astimezone(tz).date()
    span = max((today - oldest).days + 1, 1)
    return max(1, -(-span // HISTORY_DAYS_PER_PAGE))


def asset_versions():
    versions = {}
    for name in ASSETS:
        found = finders.find(name)
        versions[name.split("/")[-1].replace(".", "_")] = (
            hashlib.sha256(Path(found).read_bytes()).hexdigest()[:10] if found else "0")
    return versions


def base_context(snapshot):
    indicator, description = snapshot.indicator()
    return {
        "product": settings.STATUS_PAGE_NAME,
        "indicator": indicator,
        "description": description,
        "now": snapshot.now,
        "generated_at": documents.ts(snapshot.now),
        "assets": asset_versions(),
        "portal_url": settings.PORTAL_URL,
    }


# --- rendering ------------------------------------------------------------------------------------------------
def render_feed(snapshot):
    feed = FeedGenerator()
    base = documents.public_url()
    feed.id(base + "/")
    feed.title(f"{settings.STATUS_PAGE_NAME} status — incident history")
    feed.author({"name": settings.PRODUCT_NAME})
    feed.link(href=base + "/", rel="alternate")
    feed.link(href=base + "/feed.atom", rel="self")
    feed.language("en")
    feed.updated(snapshot.updated_at())
    entries = [(i, "incidents") for i in snapshot.incidents[:documents.RECENT]]
    entries += [(m, "maintenances") for m in snapshot.maintenances[:documents.RECENT]]
    entries.sort(key=lambda item: item[0].updated_at)
    for obj, kind in entries:
        link = documents.public_url(f"{kind}/{obj.pk}/")
        entry = feed.add_entry()
        entry.id(link)
        label = obj.get_status_display()
        entry.title(f"{'Maintenance: ' if kind == 'maintenances' else ''}{obj.name} ({label})")
        entry.link(href=link, rel="alternate")
        entry.updated(obj.updated_at)
        entry.published(obj.created_at)
        html = render_to_string("status/_feed_entry.html", {"obj": obj, "kind": kind})
        entry.content(html, type="html")
    return feed.atom_str(pretty=True)


def render_site(snapshot):
    """{relative path under /status/: bytes} for every published file."""
    files = {}
    rows = component_rows(snapshot)
    ctx = base_context(snapshot)
    groups = grouped(snapshot, rows)
    pages = history_page_count(snapshot)
    files["index.html"] = render_to_string("status/index.html", {
        **ctx, "groups": groups, "unresolved": snapshot.unresolved, "active": snapshot.active_maintenances,
        "upcoming": snapshot.upcoming,
        "history": history_days(snapshot, first=0, count=INDEX_HISTORY_DAYS),
        "components": [r["component"] for r in rows],
    }).encode()
    for number in range(1, pages + 1):
        html = render_to_string("status/history.html", {
            **ctx, "days": history_days(snapshot, first=(number - 1) * HISTORY_DAYS_PER_PAGE,
                                        count=HISTORY_DAYS_PER_PAGE),
            "page_number": number, "pages": pages,
            "previous": number - 1 if number > 1 else None, "next": number + 1 if number < pages else None,
        }).encode()
        files["history/index.html" if number == 1 else f"history/{number}/index.html"] = html
    for incident in snapshot.incidents:
        files[f"incidents/{incident.pk}/index.html"] = render_to_string(
            "status/incident.html", {**ctx, "obj": incident, "kind": "incident"}).encode()
    for maintenance in snapshot.maintenances:
        files[f"maintenances/{maintenance.pk}/index.html"] = render_to_string(
            "status/incident.html", {**ctx, "obj": maintenance, "kind": "maintenance"}).encode()
    files["feed.atom"] = render_feed(snapshot)
    for name, document in documents.documents(snapshot).items():
        files[f"api/v2/{name}"] = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    for name in ASSETS:
        found = finders.find(name)
        if found:
            files[f"assets/{name.split('/')[-1]}"] = Path(found).read_bytes()
    return files


def with_gzip(files):
    """Add a precompressed ``.gz`` sibling for every text file (nginx ``gzip_static``; Django's view too)."""
    result = {}
    for rel, data in files.items():
        if rel.endswith(COMPRESSIBLE):
            result[rel + ".gz"] = gzip.compress(data, compresslevel=9, mtime=0)
        result[rel] = data
    return result


def publish_site(now=None):
    """Render everything and write it into the publish directory. Returns the number of files changed.

    Publishers on one host (web, worker children) are serialised by a lock file in the publish directory,
    taken *before* the database is read: the run that writes last always rendered the newest state.
    """
    import fcntl

    lock_dir = site_root().parent
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".publish.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            changed, escaped = _publish(now)
        except Exception as exc:
            log.error("status page publish failed: %r", exc)
            _record(ok=False, error=f"{exc.__class__.__name__}: {exc}")
            raise
        if escaped:
            log.warning("status page: %d stored texts had characters that cannot be published, escaped: %s",
                        len(escaped), escaped[:10])
        _record(ok=True, escaped=escaped)
        return changed


def _publish(now):
    snapshot = selectors.snapshot(now)
    escaped = clean_snapshot(snapshot)
    files = with_gzip(render_site(snapshot))
    root = site_root()
    changed = 0
    # Pages before the index and the JSON documents that link to them; each .gz before its plain file.
    order = sorted(files, key=lambda p: (p.removesuffix(".gz") == "index.html" or p.startswith("api/"),
                                         p.removesuffix(".gz"), not p.endswith(".gz")))
    for rel in order:
        changed += write_atomic(root / rel, files[rel])
    _prune(root, files)
    return changed, escaped


# --- what may be published -----------------------------------------------------------------------------------
_TEXT_FIELDS = {"groups": ("name", "description"), "components": ("name", "description"),
                "incidents": ("name", "postmortem"), "maintenances": ("name", "body")}


def clean_snapshot(snapshot):
    """Make every public text of the snapshot publishable (in memory: nothing is saved); returns the
    [(what, id, field)] of the texts that had to be escaped."""
    escaped = []

    def fix(obj, name, label):
        value = getattr(obj, name, None)
        cleaned = texts.clean(value)
        if cleaned != value:
            setattr(obj, name, cleaned)
            escaped.append((label, obj.pk, name))

    for kind, names in _TEXT_FIELDS.items():
        for obj in getattr(snapshot, kind):
            for name in names:
                fix(obj, name, kind[:-1])
            if kind in ("incidents", "maintenances"):
                for update in obj.updates.all():
                    fix(update, "body", f"{kind[:-1]} update")
                    update.affected_components = [
                        {k: texts.clean(v) for k, v in change.items()} if isinstance(change, dict) else change
                        for change in (update.affected_components or [])]
    return escaped


# --- how the last publish went ---------------------------------------------------------------------------------
def _status_path():
    return publish_dir() / ".publish-status.json"


def last_status():
    """{"ok", "at", "error", "escaped", "last_success", "consecutive_failures"} of the last publish, or None."""
    try:
        return json.loads(_status_path().read_text())
    except (OSError, ValueError):
        return None


def _record(*, ok, error="", escaped=()):
    previous = last_status() or {}
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    status = {"ok": ok, "at": now, "error": error[:500], "escaped": [list(e) for e in escaped][:50],
              "escaped_count": len(escaped),
              "last_success": now if ok else previous.get("last_success"),
              "consecutive_failures": 0 if ok else previous.get("consecutive_failures", 0) + 1}
    try:
        write_atomic(_status_path(), json.dumps(status, indent=1).encode())
    except OSError as exc:
        log.warning("status page: could not record the publish status: %r", exc)


class PublishCollector:
    """/metrics: whether the last publish of the status page succeeded, when one last did, how many failed in
    a row since, and how many stored texts it had to escape."""

    NAMES = (("pmrelease_status_publish_ok", "1 when the last status page publish succeeded"),
             ("pmrelease_status_publish_last_success_timestamp_seconds", "When a status page publish last succeeded"),
             ("pmrelease_status_publish_consecutive_failures", "Status page publishes failed since the last success"),
             ("pmrelease_status_publish_escaped_texts", "Stored public texts the last publish had to escape"))

    def describe(self):
        return [GaugeMetricFamily(name, text) for name, text in self.NAMES]

    def collect(self):
        status = last_status()
        if status is None:
            return
        last = status.get("last_success")
        values = [1 if status.get("ok") else 0, dt.datetime.fromisoformat(last).timestamp() if last else 0,
                  status.get("consecutive_failures", 0), status.get("escaped_count", 0)]
        for (name, text), value in zip(self.NAMES, values, strict=True):
            yield GaugeMetricFamily(name, text, value=value)


def problems():
    """Why the public page may be out of date (empty: it is not): for /readyz's "degraded"."""
    status = last_status()
    if status is None or status.get("ok"):
        return []
    return [f"status page publish failed at {status['at']} ({status['consecutive_failures']} in a row, last "
            f"success {status.get('last_success') or 'never'}): {status['error']}"]


def _prune(root, files):
    """Remove pages of incidents, maintenances and history pages that no longer exist (deleted drafts…)."""
    keep = {root / rel for rel in files}
    for sub in ("incidents", "maintenances", "history"):
        base = root / sub
        if not base.is_dir():
            continue
        for path in [*base.rglob("index.html"), *base.rglob("index.html.gz")]:
            if path not in keep:
                with _suppress():
                    path.unlink()
                with _suppress():
                    path.parent.rmdir()
