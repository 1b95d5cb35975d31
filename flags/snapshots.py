"""Per-process compiled snapshots of each environment's flags and the API-key table: what the flag edge serves.

Nothing here touches the database on the request path once a process is warm.

**Versions.** Every change advances its scope's revision (``env:<id>`` or ``keys``) in the database, inside the
change's transaction and under the row's lock (so revisions commit in order), and writes change-log rows naming
what changed (``ConfigChange``). Once committed, the scope's new token is *published*: in the shared cache when the
configured cache is shared (Redis), otherwise in a small file under ``VAR_DIR/flags/`` (the embedded mode runs
every process on one machine). Which of the two is decided by the configured cache backend (:func:`shared_cache`).

**Refreshing.** Each process holds, per environment, an :class:`EnvironmentSnapshot` (an engine ``Snapshot``, the
feature documents and their serialised bytes) tagged with its revision and token. A background thread compares
the tokens with the published ones every ``FLAGS_VERSION_CHECK_SECONDS`` (default 1 s) and asks the database
every ``FLAGS_EDGE_VERIFY_SECONDS`` (default 5 s) whatever the cache says. When they differ it reloads only the
flags and segments the change log names since its revision (a one-flag change costs one flag) and swaps the new
snapshot in; requests go on being served from the live one meanwhile. Only a first request (nothing held yet)
and a request after this process's own change (read your writes) build in the request's thread.

**Surviving the database.** Each refreshed snapshot and the key table are written to
``FLAGS_EDGE_SNAPSHOT_DIR`` (default ``VAR_DIR/flags/edge``). When the database cannot be reached the process goes
on answering from what it holds, marked *stale* (logged once); a process that starts while the database is
down starts from those files (stale too).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import DatabaseError, close_old_connections, connection, connections, transaction
from django.db.models import F

from . import documents
from .engine import Snapshot

logger = logging.getLogger(__name__)

KEYS_SCOPE = "keys"
EVERYTHING = "*"
NO_TOKEN = "0" * 32
_CACHE_PREFIX = "flags:version:"
_KEEP_REVISIONS = 5000  # change-log entries kept per scope; a process further behind rebuilds in full
_FORMAT = 1


class Unavailable(Exception):
    """Nothing to answer from: the database is unreachable and no snapshot was ever saved here."""


def env_scope(environment_id):
    return f"env:{environment_id}"


def _interval():
    return float(settings.FLAGS_VERSION_CHECK_SECONDS)


def _verify_interval():
    return float(settings.FLAGS_EDGE_VERIFY_SECONDS)


# --- publishing version tokens -----------------------------------------------------------------------------
def shared_cache():
    """Whether the configured default cache is shared between processes (Redis, Memcached, database, file).

    Asked of the configured backend itself (``caches["default"]``), not of ``django.core.cache.cache``, which is a
    proxy whatever the backend is."""
    return not isinstance(caches["default"], LocMemCache | DummyCache)


def _version_dir():
    path = Path(settings.VAR_DIR) / "flags"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _version_file(scope):
    return _version_dir() / ("version-" + scope.replace(":", "-"))


def read_published(scope):
    """The published token of ``scope`` (None when nothing is published). Raises when the cache is unreachable."""
    if shared_cache():
        return caches["default"].get(_CACHE_PREFIX + scope)
    try:
        return _version_file(scope).read_text() or None
    except FileNotFoundError:
        return None


def publish(scope, token):
    if shared_cache():
        caches["default"].set(_CACHE_PREFIX + scope, token, None)
        return
    target = _version_file(scope)
    temp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temp.write_text(token)
    temp.replace(target)  # atomic: readers see the old or the new token, never half of one


def publish_if_absent(scope, token):
    """Publish ``token`` only when nothing is published yet (a cleared cache, a first start). Readers use this:
    a reader's token may be older than one an edit publishes meanwhile, and must never overwrite it."""
    if shared_cache():
        caches["default"].add(_CACHE_PREFIX + scope, token, None)
        return
    try:
        fd = os.open(_version_file(scope), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(token)


class _Publisher:
    """Run once the transaction commits: publish the committed tokens of the scopes it changed."""

    def __init__(self):
        self.scopes = set()

    def __call__(self):
        from .models import ConfigVersion

        tokens = dict(ConfigVersion.objects.filter(scope__in=self.scopes).values_list("scope", "token"))
        for scope in self.scopes:
            try:
                publish(scope, tokens.get(scope, NO_TOKEN))
            except Exception:  # the other processes see the change at their next check with the database
                logger.warning("flags: could not publish the new version of %s", scope, exc_info=True)
            forget_local(scope)


def _publish_on_commit(scope):
    """One callback per transaction (an import changing thousands of flags publishes each scope once)."""
    conn = transaction.get_connection()
    for _sids, func, _robust in conn.run_on_commit:
        if isinstance(func, _Publisher):
            func.scopes.add(scope)
            return
    publisher = _Publisher()
    publisher.scopes.add(scope)
    transaction.on_commit(publisher)


def _advance(scope):
    """Give ``scope`` its next revision and a new token (inside the change's transaction); returns the revision."""
    from .models import ConfigVersion

    token = ConfigVersion.new_token()
    if not ConfigVersion.objects.filter(scope=scope).update(token=token, revision=F("revision") + 1):
        ConfigVersion.objects.get_or_create(scope=scope, defaults={"token": token, "revision": 0})
        ConfigVersion.objects.filter(scope=scope).update(token=token, revision=F("revision") + 1)
    return ConfigVersion.objects.filter(scope=scope).values_list("revision", flat=True).get()


def changed(environment_ids, *, flags=(), segments=()):
    """Record that ``flags`` (keys) and ``segments`` (ids) changed in these environments (nothing named: all of
    the environment's flags). Call inside the transaction of the change: processes reload just those."""
    from .models import ConfigChange

    rows = []
    for environment_id in environment_ids:
        scope = env_scope(environment_id)
        revision = _advance(scope)
        rows.extend(ConfigChange(scope=scope, revision=revision, flag_key=key) for key in flags)
        rows.extend(ConfigChange(scope=scope, revision=revision, segment_id=sid) for sid in segments)
        if not flags and not segments:
            rows.append(ConfigChange(scope=scope, revision=revision, flag_key=EVERYTHING))
        if revision % 200 == 0:
            ConfigChange.objects.filter(scope=scope, revision__lte=revision - _KEEP_REVISIONS).delete()
        _publish_on_commit(scope)
        forget_local(scope)
    ConfigChange.objects.bulk_create(rows, batch_size=1000)


def keys_changed():
    """Record that API keys changed (created, revoked): every process reloads its key table."""
    _advance(KEYS_SCOPE)
    _publish_on_commit(KEYS_SCOPE)
    forget_local(KEYS_SCOPE)


def _db_version(scope):
    from .models import ConfigVersion

    row = ConfigVersion.objects.filter(scope=scope).values_list("revision", "token").first()
    return row if row is not None else (0, NO_TOKEN)


# --- environment snapshots ---------------------------------------------------------------------------------
@dataclass(eq=False)
class EnvironmentSnapshot:
    environment_id: int
    environment_name: str
    token: str
    revision: int
    snapshot: Snapshot
    features: dict  # name → feature document
    segments: dict  # id → segment document (the ones features refer to)
    names: list  # feature names, sorted
    feature_json: dict  # name → serialised feature (segments by id)
    inlined_json: dict  # name → serialised feature with its segments inlined (features with segments only)
    flag_types: dict
    refs: dict  # segment id → the names of the features that refer to it (existing or not)
    provisional: bool = False  # read inside a transaction: may hold uncommitted rows; the refresher leaves it
    stale: bool = False  # the database could not be reached at the last attempt
    dirty: bool = False  # this process changed the environment: the next request reloads first
    checked: float = 0.0  # when the published token was last compared
    verified: float = 0.0  # when the database was last asked
    persisted: bool = False
    answers: dict = field(default_factory=dict)  # the edge's serialised OFREP answers, by what was decided
    _bodies: dict = field(default_factory=dict)

    def etag(self, variant=""):
        return f'"{self.environment_id}-{self.token[:16]}{variant}"'

    @property
    def document(self):
        return {"version": 2, "features": [self.features[n] for n in self.names],
                "segments": [self.segments[i] for i in sorted(self.segments)]}

    def body(self, with_segments):
        """The serialised client-features document (``meta.stale`` when stale)."""
        key = (with_segments, self.stale)
        cached = self._bodies.get(key)
        if cached is not None:
            return cached
        if with_segments:
            features = b",".join([self.feature_json[n] for n in self.names])
        else:
            features = b",".join([self.inlined_json.get(n) or self.feature_json[n] for n in self.names])
        meta = {"etag": self.etag()[1:-1]}
        if self.stale:
            meta["stale"] = True
        parts = [b'{"version":2,"features":[', features, b"]"]
        if with_segments:
            parts += [b',"segments":', documents.dumps([self.segments[i] for i in sorted(self.segments)])]
        parts += [b',"meta":', documents.dumps(meta), b"}"]
        body = b"".join(parts)
        self._bodies[key] = body
        return body

    def mark(self, *, stale):
        if stale != self.stale:
            self.stale = stale
            self._bodies.clear()
            self.answers.clear()


def _serialise(features, segments, names=None):
    feature_json, inlined_json = {}, {}
    for name in features if names is None else names:
        feature = features[name]
        feature_json[name] = documents.dumps(feature)
        if documents.segment_ids(feature):
            inlined_json[name] = documents.dumps(documents.inline_feature(feature, segments))
    return feature_json, inlined_json


def _assemble(environment_id, name, revision, token, features, segments, *, provisional=False, stale=False):
    feature_json, inlined_json = _serialise(features, segments)
    refs = {}
    for feature_name, feature in features.items():
        for sid in documents.segment_ids(feature):
            refs.setdefault(sid, set()).add(feature_name)
    snapshot = Snapshot.from_client_features(
        {"version": 2, "features": list(features.values()), "segments": list(segments.values())}, copy_input=False)
    return EnvironmentSnapshot(
        environment_id=environment_id, environment_name=name, token=token, revision=revision, snapshot=snapshot,
        features=features, segments=segments, names=sorted(features), feature_json=feature_json,
        inlined_json=inlined_json, flag_types={n: f.get("type") for n, f in features.items()}, refs=refs,
        provisional=provisional, stale=stale)


def _in_transaction():
    return connection.in_atomic_block


def _full(environment_id):
    """Build an environment's snapshot from the database."""
    from releases.models import Environment

    # No transaction around the reads (on SQLite it would take the write lock): rows read after the revision may
    # be newer than it, which is harmless (the next refresh reads those flags again), never older.
    revision, token = _db_version(env_scope(environment_id))
    name = Environment.objects.filter(pk=environment_id).values_list("name", flat=True).get()
    features = documents.served_flags(environment_id)
    used = set().union(*(documents.segment_ids(f) for f in features.values())) if features else set()
    segments = documents.segment_documents(used)
    return _assemble(environment_id, name, revision, token, features, segments, provisional=_in_transaction())


def _incremental(entry):
    """``entry`` brought up to the database's revision, reloading what the change log names since its revision
    (a full rebuild when the log does not reach back, or names too much). Returns ``entry`` when current."""
    from .models import ConfigChange

    scope = env_scope(entry.environment_id)
    revision, token = _db_version(scope)
    if revision == entry.revision and token == entry.token:
        return entry
    if revision <= entry.revision or entry.provisional and not _in_transaction():
        return _full(entry.environment_id)
    log = list(ConfigChange.objects.filter(scope=scope, revision__gt=entry.revision, revision__lte=revision)
               .values_list("revision", "flag_key", "segment_id"))
    keys = {key for _, key, _ in log if key}
    segment_ids = {sid for _, _, sid in log if sid is not None}
    too_much = len(keys) > max(200, len(entry.features) // 4)
    if len({r for r, _, _ in log}) != revision - entry.revision or EVERYTHING in keys or too_much:
        return _full(entry.environment_id)
    return _apply_changes(entry, revision, token, keys, segment_ids)


def _apply_changes(entry, revision, token, keys, segment_ids):
    """The new snapshot: only the named flags read and compiled again, only the segments' users re-serialised;
    the rest is shared with ``entry`` (the work is proportional to the change, not to the environment)."""
    features = dict(entry.features)
    refs = {sid: set(names) for sid, names in entry.refs.items()}
    loaded = documents.served_flags(entry.environment_id, keys) if keys else {}
    removed = [k for k in keys if k not in loaded and k in features]
    for key in [*removed, *(k for k in loaded if k in features)]:
        for sid in documents.segment_ids(features[key]):
            refs[sid].discard(key)
            if not refs[sid]:
                del refs[sid]
    for key in removed:
        del features[key]
    features.update(loaded)
    for key, feature in loaded.items():
        for sid in documents.segment_ids(feature):
            refs.setdefault(sid, set()).add(key)
    segments = {sid: doc for sid, doc in entry.segments.items() if sid in refs and sid not in segment_ids}
    segments.update(documents.segment_documents({sid for sid in refs if sid not in segments}))
    # Serialised again: the changed flags, and those that inline a changed segment.
    touched = set(loaded).union(*(refs.get(sid, ()) for sid in segment_ids))
    feature_json, inlined_json = dict(entry.feature_json), dict(entry.inlined_json)
    for key in removed:
        feature_json.pop(key, None)
        inlined_json.pop(key, None)
    for key in touched:
        inlined_json.pop(key, None)
    fresh_json, fresh_inlined = _serialise(features, segments, touched)
    feature_json.update(fresh_json)
    inlined_json.update(fresh_inlined)
    events = [{"type": "feature-removed", "featureName": k} for k in removed]
    # The engine's segments follow the document's: changed ones, and those a flag refers to for the first time
    # (a segment made while only an archived flag used it was never in the snapshot), are sent again; those no
    # flag refers to any more leave it.
    events += [{"type": "segment-removed", "segmentId": sid}
               for sid in sorted(segment_ids | set(entry.segments)) if sid not in segments]
    events += [{"type": "segment-updated", "segment": segments[sid]}
               for sid in sorted(segments) if sid in segment_ids or sid not in entry.segments]
    events += [{"type": "feature-updated", "feature": loaded[k]} for k in loaded]
    flag_types = dict(entry.flag_types)
    for key in removed:
        flag_types.pop(key, None)
    flag_types.update({n: f.get("type") for n, f in loaded.items()})
    same_names = not removed and all(k in entry.features for k in loaded)
    return EnvironmentSnapshot(
        environment_id=entry.environment_id, environment_name=entry.environment_name, token=token,
        revision=revision, snapshot=entry.snapshot.apply_delta(events, copy_input=False), features=features,
        segments=segments, names=entry.names if same_names else sorted(features), feature_json=feature_json,
        inlined_json=inlined_json, flag_types=flag_types, refs=refs,
        provisional=entry.provisional or _in_transaction())


# --- what a process holds, and the refresher -------------------------------------------------------------
_lock = threading.Lock()
_entries: dict[int, EnvironmentSnapshot] = {}
_env_locks: dict[int, threading.Lock] = {}
_state = {"keys": None, "generation": 0, "refresher": None}
_keys_lock = threading.Lock()


def _env_lock(environment_id):
    with _lock:
        return _env_locks.setdefault(environment_id, threading.Lock())


def forget_local(scope):
    """Make this process reload ``scope`` before its next answer (its own edits are seen at once)."""
    if scope == KEYS_SCOPE:
        table = _state["keys"]
        if table is not None:
            table.dirty = True
        return
    entry = _entries.get(int(scope.split(":", 1)[1]))
    if entry is not None:
        entry.dirty = True


def reset():
    """Drop everything this process holds and stop its refresher (tests)."""
    with _lock:
        _entries.clear()
        _saved_at.clear()
        _state["keys"] = None
        _state["generation"] += 1
        _state["refresher"] = None


def _database_failed(what, exc, held):
    if not held.stale:
        logger.warning("flags: the database cannot be reached (%s: %s); answering from the last good snapshot "
                       "of %s, marked stale", type(exc).__name__, exc, what)
    held.mark(stale=True)


def _recovered(what, held):
    if held.stale:
        logger.warning("flags: the database answers again; %s is current", what)


def get(environment_id):
    """The current snapshot of an environment (no database access while it is current).

    Raises :class:`Unavailable` when nothing is held, the database cannot be reached and no snapshot was saved."""
    entry = _entries.get(environment_id)
    if entry is not None and not entry.dirty:
        _ensure_refresher()
        return entry
    return _refresh_here(environment_id, entry)


def fresh_connection():
    """Outside a transaction, drop this thread's connection if it broke or aged (as Django does per request)."""
    if not connection.in_atomic_block:
        close_old_connections()


def _refresh_here(environment_id, entry):
    """A first build, or a reload after this process's own change: in the request's thread."""
    fresh_connection()
    with _env_lock(environment_id):
        current = _entries.get(environment_id)
        if current is not None and not current.dirty and current is not entry:
            return current
        try:
            if current is None:
                fresh = _full(environment_id)
            else:
                current.dirty = False
                fresh = _incremental(current)
        except DatabaseError as exc:
            if current is not None:
                _database_failed(current.environment_name, exc, current)
                return current
            fresh = _load_saved(environment_id)
            if fresh is None:
                raise Unavailable(f"the flags of environment {environment_id} cannot be loaded: {exc}") from exc
            logger.warning("flags: the database cannot be reached (%s); environment %s starts from its saved "
                           "snapshot (revision %s), marked stale", exc, fresh.environment_name, fresh.revision)
        fresh.checked = fresh.verified = time.monotonic()
        if not fresh.stale and not fresh.provisional:
            _publish_if_missing(env_scope(environment_id), fresh.token)
        _entries[environment_id] = fresh
    _ensure_refresher()
    return fresh


def _current_by_token(held, scope, now):
    """Whether ``held`` (a snapshot or the key table) is current by the published token alone: no database check
    is due (it is every FLAGS_EDGE_VERIFY_SECONDS, and every round while stale)."""
    if held.stale or now - held.verified >= _verify_interval():
        return False
    try:
        current = read_published(scope) == held.token
    except Exception:  # the cache is unreachable: ask the database
        return False
    if current:
        held.checked = now
    return current


def _refresh_env(entry, now):
    """The refresher's check of one environment."""
    scope = env_scope(entry.environment_id)
    if _current_by_token(entry, scope, now):
        return
    with _env_lock(entry.environment_id):
        current = _entries.get(entry.environment_id)
        if current is not entry or entry.dirty:
            return
        try:
            fresh = _incremental(entry)
        except DatabaseError as exc:
            _database_failed(entry.environment_name, exc, entry)
            entry.verified = now
            return
        _recovered(entry.environment_name, entry)
        fresh.checked = fresh.verified = now
        if fresh is entry:
            entry.mark(stale=False)
        else:
            _entries[entry.environment_id] = fresh
    _publish_if_missing(scope, fresh.token)


def _publish_if_missing(scope, token):
    try:
        if read_published(scope) is None:
            publish_if_absent(scope, token)
    except Exception:
        logger.debug("flags: the version of %s could not be published", scope, exc_info=True)


def _ensure_refresher():
    refresher = _state["refresher"]
    if refresher is not None and refresher.is_alive():  # after a fork the parent's thread is not alive here
        return
    with _lock:
        refresher = _state["refresher"]
        if refresher is not None and refresher.is_alive():
            return
        thread = threading.Thread(target=_refresher, args=(_state["generation"],), name="flags-refresher",
                                  daemon=True)
        _state["refresher"] = thread
        thread.start()


def _refresher(generation):
    """Every check interval: bring the held snapshots and the key table up to date, save them to disk."""
    while _state["generation"] == generation:
        time.sleep(_interval())
        if _state["generation"] != generation:
            break
        try:
            refresh_once()
        except Exception:
            logger.exception("flags: the refresher failed; retrying")
        finally:
            connections.close_all()  # this thread's own connections: none is held between rounds


def refresh_once():
    """One round of the refresher (tests call it directly)."""
    now = time.monotonic()
    table = _state["keys"]
    if table is not None and not table.provisional and not table.dirty:
        _refresh_keys(table, now)
    for entry in list(_entries.values()):
        if not entry.provisional and not entry.dirty:
            _refresh_env(entry, now)
    _save_all()


# --- saved snapshots ---------------------------------------------------------------------------------------
def _snapshot_dir():
    path = Path(settings.FLAGS_EDGE_SNAPSHOT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write(path, data):
    temp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    temp.replace(path)


def _read_saved(path, what):
    """``(head, body)`` of a saved file (its two JSON lines), None when there is none or it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.readline()), json.loads(handle.readline())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.error("flags: the saved %s %s cannot be read: %s", what, path, exc)
        return None


def _save(path, held, head, body):
    """Write ``head`` and the serialised ``body`` of ``held`` (a snapshot or the key table) unless the file holds a
    newer revision, from another process; ``held`` is then persisted."""
    try:
        with open(path, "rb") as handle:
            saved = json.loads(handle.readline())
        revision = int(saved["revision"])
        kept = revision > held.revision or revision == held.revision and saved.get("token") == held.token
    except (OSError, ValueError, KeyError, TypeError):
        kept = False
    if not kept:
        _write(path, documents.dumps({"format": _FORMAT, **head, "revision": held.revision, "token": held.token})
               + b"\n" + body() + b"\n")
    held.persisted = True


_saved_at: dict = {}


def _save_all():
    """Save what changed, each environment at most once per FLAGS_EDGE_VERIFY_SECONDS (a flag toggled every second
    at 10,000 flags must not cost a 3 MB write every second in every process)."""
    now = time.monotonic()
    for entry in list(_entries.values()):
        if not entry.persisted and not entry.provisional and not entry.stale:
            if now - _saved_at.get(entry.environment_id, -1e9) >= _verify_interval():
                save(entry)
                _saved_at[entry.environment_id] = now
    table = _state["keys"]
    if table is not None and not table.persisted and not table.provisional and not table.stale:
        _save_keys(table)


def save(entry):
    """Write ``entry`` to the snapshot directory (a newer saved revision, from another process, is kept)."""
    _save(_snapshot_dir() / f"env-{entry.environment_id}.json", entry,
          {"environment_id": entry.environment_id, "environment_name": entry.environment_name},
          lambda: entry.body(True))


def _load_saved(environment_id):
    saved = _read_saved(_snapshot_dir() / f"env-{environment_id}.json", "snapshot")
    if saved is None:
        return None
    head, doc = saved
    features = {f["name"]: f for f in doc.get("features") or () if isinstance(f, dict) and f.get("name")}
    segments = {s["id"]: s for s in doc.get("segments") or () if isinstance(s, dict) and "id" in s}
    entry = _assemble(environment_id, head["environment_name"], int(head["revision"]), head["token"], features,
                      segments, stale=True)
    entry.persisted = True
    return entry


# --- API keys ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyInfo:
    id: int
    environment_id: int
    environment_name: str
    kind: str
    name: str
    rate_limit: int | None


@dataclass(eq=False)
class KeyTable:
    token: str
    revision: int
    by_digest: dict
    provisional: bool = False
    stale: bool = False
    dirty: bool = False
    checked: float = 0.0
    verified: float = 0.0
    persisted: bool = False

    def mark(self, *, stale):
        self.stale = stale


def digest(raw):
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()


def _load_keys():
    from .models import ApiKey

    revision, token = _db_version(KEYS_SCOPE)
    rows = ApiKey.objects.filter(revoked_at__isnull=True).values_list(
        "key_hash", "pk", "environment_id", "environment__name", "kind", "name", "rate_limit")
    by_digest = {row[0]: KeyInfo(*row[1:]) for row in rows}
    return KeyTable(token=token, revision=revision, by_digest=by_digest, provisional=_in_transaction())


def _save_keys(table):
    keys = [{"hash": h, "id": k.id, "environment_id": k.environment_id, "environment_name": k.environment_name,
             "kind": k.kind, "name": k.name, "rate_limit": k.rate_limit} for h, k in table.by_digest.items()]
    _save(_snapshot_dir() / "keys.json", table, {}, lambda: documents.dumps(keys))


def _load_saved_keys():
    saved = _read_saved(_snapshot_dir() / "keys.json", "key table")
    if saved is None:
        return None
    head, keys = saved
    by_digest = {k["hash"]: KeyInfo(k["id"], k["environment_id"], k["environment_name"], k["kind"], k["name"],
                                    k["rate_limit"]) for k in keys}
    return KeyTable(token=head["token"], revision=int(head["revision"]), by_digest=by_digest, stale=True,
                    persisted=True)


def _key_table():
    table = _state["keys"]
    if table is not None and not table.dirty:
        return table
    fresh_connection()
    with _keys_lock:
        current = _state["keys"]
        if current is not None and not current.dirty and current is not table:
            return current
        try:
            fresh = _load_keys()
        except DatabaseError as exc:
            if current is not None:
                current.dirty = False
                _database_failed("the API keys", exc, current)
                return current
            fresh = _load_saved_keys()
            if fresh is None:
                raise Unavailable(f"the API keys cannot be loaded: {exc}") from exc
            logger.warning("flags: the database cannot be reached (%s); the API keys start from the saved table, "
                           "marked stale", exc)
        fresh.checked = fresh.verified = time.monotonic()
        _state["keys"] = fresh
    _ensure_refresher()
    return fresh


def _refresh_keys(table, now):
    if _current_by_token(table, KEYS_SCOPE, now):
        return
    with _keys_lock:
        if _state["keys"] is not table or table.dirty:
            return
        try:
            revision, token = _db_version(KEYS_SCOPE)
            fresh = table if (revision, token) == (table.revision, table.token) else _load_keys()
        except DatabaseError as exc:
            _database_failed("the API keys", exc, table)
            table.verified = now
            return
        _recovered("the API key table", table)
        fresh.mark(stale=False)
        fresh.checked = fresh.verified = now
        _state["keys"] = fresh


_digests: dict = {}


def lookup_key(raw):
    """The active key ``raw`` (KeyInfo) or None. Revocations reach every process within the check interval."""
    if not raw or len(raw) > 200:
        return None
    table = _key_table()
    hashed = _digests.get(raw)
    if hashed is None:
        if len(_digests) >= 10_000:
            _digests.clear()
        hashed = _digests[raw] = digest(raw)
    return table.by_digest.get(hashed)


def warm():
    """Load the key table and the snapshot of every environment that has a key (a process starting up)."""
    try:
        table = _key_table()
        for environment_id in sorted({info.environment_id for info in table.by_digest.values()}):
            get(environment_id)
    except Unavailable as exc:
        logger.warning("flags: nothing to start from yet: %s", exc)
    except Exception:
        logger.exception("flags: warming up failed; the first requests load what they need")
    finally:
        connections.close_all()


def keys_stale():
    table = _state["keys"]
    return table is not None and table.stale
