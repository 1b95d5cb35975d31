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
import functools
import gzip
import hashlib
import json
import logging
import operator
import os
import tempfile
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from feedgen.feed import FeedGenerator
from prometheus_client.core import GaugeMetricFamily

from . import documents, selectors, texts, uptime
from . import status as st

log = logging.getLogger(__name__)

HISTORY_DAYS_PER_PAGE = 14
COMPRESSIBLE = (".html", ".json", ".atom", ".css", ".js")
INDEX_HISTORY_DAYS = 7
ASSETS = ("status/status.css", "status/status.js")


ALL = "all"  # a change any page may show (components, groups): the whole site is rendered


def change_key(obj):
    """The publish request key of a changed incident or maintenance: ``incident:12``, ``maintenance:3``."""
    return f"{obj._meta.model_name}:{obj.pk}"


def publish_later(*changed):
    """Publish what ``changed`` (incidents, maintenances; nothing named: every page) once the current
    transaction commits. Services call it after a change."""
    keys = [change_key(obj) for obj in changed] or [ALL]
    transaction.on_commit(lambda: request_publish(keys))


def request_publish(keys):
    """Record ``keys`` as waiting to be published (a key already waiting gets the newer time) and queue a
    publish task. The first task to run publishes everything waiting; the tasks of the rest of a burst find
    nothing left and return at once: a burst of changes makes one publish."""
    from monitoring.tasks import publish_status_site

    from .models import PublishRequest

    now = timezone.now()
    PublishRequest.objects.bulk_create([PublishRequest(key=key, requested_at=now) for key in keys],
                                       update_conflicts=True, unique_fields=["key"], update_fields=["requested_at"])
    publish_status_site.delay(pending=True)


def publish_pending(now=None, *, only_waiting=False):
    """Publish what the waiting requests name (everything when one says ``all``; everything too, without
    ``only_waiting``, when none waits: the beat's periodic publish), then drop the requests it covered (those not
    requested again meanwhile). Returns the files written (0 when ``only_waiting`` found nothing)."""
    from .models import PublishRequest

    pending = list(PublishRequest.objects.values_list("pk", "key", "requested_at"))
    if only_waiting and not pending:
        return 0
    keys = {key for _, key, _ in pending}
    changed = publish_site(now=now, changes=None if not keys or ALL in keys else keys)
    if pending:
        covered = functools.reduce(operator.or_, (Q(pk=pk, requested_at=at) for pk, _, at in pending))
        PublishRequest.objects.filter(covered).delete()
    return changed


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


def history_date(kind, obj):
    """The day an incident or a completed maintenance is listed under in the history (None: not listed)."""
    if kind == "incident":
        return obj.started_at.astimezone(_tz()).date()
    if obj.status == "completed":
        return obj.scheduled_for.astimezone(_tz()).date()
    return None


def history_by_date(snapshot):
    """{date: [(kind, obj)]}: the incidents (newest first), then the completed maintenances, of each day."""
    by_date = {}
    for kind, objects in (("incident", snapshot.incidents), ("maintenance", snapshot.maintenances)):
        for obj in objects:
            date = history_date(kind, obj)
            if date is not None:
                by_date.setdefault(date, []).append((kind, obj))
    return by_date


def history_days(snapshot, *, first, count, by_date=None):
    """Days ``first`` … ``first + count - 1`` back from today (newest first) with the incidents and completed
    maintenance that started that day."""
    by_date = history_by_date(snapshot) if by_date is None else by_date
    today = snapshot.now.astimezone(_tz()).date()
    return [{"date": date, "items": by_date.get(date, [])}
            for date in (today - dt.timedelta(days=offset) for offset in range(first, first + count))]


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


@dataclass(frozen=True)
class Selection:
    """The pages an incremental publish renders beside the index, the feed, the JSON documents and the assets:
    these incidents' and maintenances' pages and these history pages."""

    incidents: frozenset = frozenset()
    maintenances: frozenset = frozenset()
    history_pages: frozenset = frozenset()


def render_site(snapshot, only=None, pages=None):
    """{relative path under /status/: bytes} for every published file, or with ``only`` (a ``Selection``) for
    the files it names and those every change touches (the index, the feed, the JSON documents, the assets).
    A file's bytes depend on the content it shows and on ``snapshot.now`` only: rendered alone or with the
    whole site, it is the same file (only the index prints when it was generated). ``pages``: the number of
    history pages (``history_layout``), when ``snapshot`` holds only some incidents."""
    files = {}
    rows = component_rows(snapshot)
    ctx = base_context(snapshot)
    page_ctx = {**ctx, "generated_at": None}  # pages that change only with their content: no time of generation
    groups = grouped(snapshot, rows)
    pages = pages or history_page_count(snapshot)
    by_date = history_by_date(snapshot)
    files["index.html"] = render_to_string("status/index.html", {
        **ctx, "groups": groups, "unresolved": snapshot.unresolved, "active": snapshot.active_maintenances,
        "upcoming": snapshot.upcoming,
        "history": history_days(snapshot, first=0, count=INDEX_HISTORY_DAYS, by_date=by_date),
        "components": [r["component"] for r in rows],
    }).encode()
    for number in range(1, pages + 1):
        if only is not None and number not in only.history_pages:
            continue
        html = render_to_string("status/history.html", {
            **page_ctx, "days": history_days(snapshot, first=(number - 1) * HISTORY_DAYS_PER_PAGE,
                                             count=HISTORY_DAYS_PER_PAGE, by_date=by_date),
            "page_number": number, "pages": pages,
            "previous": number - 1 if number > 1 else None, "next": number + 1 if number < pages else None,
        }).encode()
        files["history/index.html" if number == 1 else f"history/{number}/index.html"] = html
    for incident in snapshot.incidents:
        if only is None or incident.pk in only.incidents:
            files[f"incidents/{incident.pk}/index.html"] = render_to_string(
                "status/incident.html", {**page_ctx, "obj": incident, "kind": "incident"}).encode()
    for maintenance in snapshot.maintenances:
        if only is None or maintenance.pk in only.maintenances:
            files[f"maintenances/{maintenance.pk}/index.html"] = render_to_string(
                "status/incident.html", {**page_ctx, "obj": maintenance, "kind": "maintenance"}).encode()
    files["feed.atom"] = render_feed(snapshot)
    for name, document in documents.documents(snapshot).items():
        files[f"api/v2/{name}"] = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    for name in ASSETS:
        found = finders.find(name)
        if found:
            files[f"assets/{name.split('/')[-1]}"] = Path(found).read_bytes()
    return files


def history_layout(now):
    """What decides which history page lists what, from one light query per kind: {"today", "pages",
    "placed": {change key: page number}} (the pages ``history_page_count`` and ``history_days`` make)."""
    from .models import Incident, Maintenance

    tz = _tz()
    today = now.astimezone(tz).date()
    dated = [(f"incident:{pk}", at.astimezone(tz).date())
             for pk, at in Incident.objects.published().values_list("pk", "started_at")]
    dated += [(f"maintenance:{pk}", at.astimezone(tz).date())
              for pk, at in Maintenance.objects.filter(status="completed").values_list("pk", "scheduled_for")]
    placed = {key: max((today - date).days, 0) // HISTORY_DAYS_PER_PAGE + 1 for key, date in dated}
    if dated:
        span = max((today - min(date for _, date in dated)).days + 1, 1)
        pages = max(1, -(-span // HISTORY_DAYS_PER_PAGE))
    else:
        pages = 1
    return {"today": today.isoformat(), "pages": pages, "placed": placed}


def plan(changes, layout, previous):
    """The ``Selection`` an incremental publish of ``changes`` (change keys) renders, given the history layout
    now and at the last publish (``previous``); None when only a whole publish will do (no layout known, a key
    of something no longer public)."""
    from .models import Maintenance

    if previous is None:
        return None
    chosen = {"incident": set(), "maintenance": set()}
    history_pages = set()
    for key in changes:
        kind, _, pk = key.partition(":")
        if kind not in chosen or not pk.isdigit():
            return None
        public = key in layout["placed"] if kind == "incident" else Maintenance.objects.filter(
            pk=int(pk)).exclude(status="cancelled").exists()
        if not public:
            return None  # gone: the whole site, so that its page is removed
        chosen[kind].add(int(pk))
        history_pages |= {n for n in (layout["placed"].get(key), previous["placed"].get(key)) if n is not None}
    if (previous.get("today"), previous.get("pages")) != (layout["today"], layout["pages"]):
        history_pages = set(range(1, layout["pages"] + 1))  # a new day or a new page: every page's days moved
    return Selection(incidents=frozenset(chosen["incident"]), maintenances=frozenset(chosen["maintenance"]),
                     history_pages=frozenset(history_pages))


def needed_incidents(now, selection, layout):
    """A ``Q`` of the incidents the files of an incremental publish show: the unresolved ones, those the
    uptime bars can show (started or resolved in their window), the most recent ones (feed, JSON), the chosen
    ones and those on the chosen history pages. None: every incident (every history page is rendered)."""
    from .models import UNRESOLVED, Incident

    if len(selection.history_pages) >= layout["pages"]:
        return None
    since = now - dt.timedelta(days=selectors.HISTORY_DAYS + 2)
    recent = list(Incident.objects.published().order_by("-started_at", "-id")
                  .values_list("pk", flat=True)[:documents.RECENT])
    on_pages = [int(key.partition(":")[2]) for key, number in layout["placed"].items()
                if number in selection.history_pages and key.startswith("incident:")]
    return (Q(status__in=UNRESOLVED) | Q(started_at__gte=since) | Q(resolved_at__isnull=True)
            | Q(resolved_at__gte=since) | Q(pk__in=[*recent, *selection.incidents, *on_pages]))


def publish_site(now=None, changes=None):
    """Render the site and write what changed into the publish directory. Returns the number of files written.

    ``changes`` (change keys: ``incident:12``…): render only those objects' pages, the history pages they sit on
    and the files every change touches (``plan``); None: everything (and remove pages of what is gone).

    Publishers on one host (web, worker children) are serialised by a lock file in the publish directory,
    taken *before* the database is read: the run that writes last always rendered the newest state.
    """
    import fcntl

    lock_dir = site_root().parent
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".publish.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            changed, escaped = _publish(now, changes)
        except Exception as exc:
            log.error("status page publish failed: %r", exc)
            _record(ok=False, error=f"{exc.__class__.__name__}: {exc}")
            raise
        if escaped:
            log.warning("status page: %d stored texts had characters that cannot be published, escaped: %s",
                        len(escaped), escaped[:10])
        _record(ok=True, escaped=escaped)
        return changed


def _publish(now, changes=None):
    now = now or timezone.now()
    layout = history_layout(now)
    selection = None if changes is None else plan(changes, layout, _layout())
    incidents = None if selection is None else needed_incidents(now, selection, layout)
    snapshot = selectors.snapshot(now, incidents=incidents)
    escaped = clean_snapshot(snapshot)
    files = render_site(snapshot, only=selection, pages=layout["pages"])
    root = site_root()
    changed = 0
    # Pages before the index and the JSON documents that link to them; each .gz before its plain file. A file
    # whose bytes are already there (and its .gz) is not compressed or written again.
    order = sorted(files, key=lambda p: (p == "index.html" or p.startswith("api/"), p))
    for rel in order:
        data, path = files[rel], root / rel
        compressible = rel.endswith(COMPRESSIBLE)
        if _holds(path, data) and (not compressible or path.with_name(path.name + ".gz").exists()):
            continue
        if compressible:
            changed += write_atomic(path.with_name(path.name + ".gz"), gzip.compress(data, compresslevel=9, mtime=0))
        changed += write_atomic(path, data)
    if selection is None:
        _prune(root, files)
    _save_layout(layout)
    return changed, escaped


def _holds(path, data):
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except FileNotFoundError:
        return False


def _layout_path():
    return publish_dir() / ".publish-layout.json"


def _layout():
    """The history layout of the last publish (``history_layout``), or None."""
    try:
        layout = json.loads(_layout_path().read_text())
    except (OSError, ValueError):
        return None
    return layout if isinstance(layout, dict) and isinstance(layout.get("placed"), dict) else None


def _save_layout(layout):
    write_atomic(_layout_path(), json.dumps(layout, sort_keys=True, separators=(",", ":")).encode())


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
    keep = {root / rel for rel in files} | {root / f"{rel}.gz" for rel in files}
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
