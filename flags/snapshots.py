"""Per-process compiled snapshots of each environment's flags, and the API-key lookup cache.

Nothing here touches the database on the hot path. Each process holds, per environment, an engine
``Snapshot`` plus the pre-serialised Unleash client-features bodies, tagged with the environment's version
token. At most once per ``FLAGS_VERSION_CHECK_SECONDS`` (default 1 s) a request compares that token with the
*published* one — in the shared cache (Redis) when there is one, otherwise in a small file under
``VAR_DIR/flags/`` (the embedded mode runs every process on one machine) — and rebuilds from the database
only when they differ. Every change bumps the token in the database inside its transaction and publishes it
(on commit), so an edit is seen by every process within the check interval (< 2 s).
API keys are cached the same way under the ``keys`` scope: a revoked key stops working within that interval.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from .engine import Snapshot, compute_variant_weights

KEYS_SCOPE = "keys"
_CACHE_PREFIX = "flags:version:"
_lock = threading.Lock()
_entries: dict[int, EnvironmentSnapshot] = {}
_key_state = {"token": None, "checked": 0.0}
_keys: dict[str, KeyInfo] = {}
_missing: set[str] = set()
_MISSING_LIMIT = 10_000


def env_scope(environment_id):
    return f"env:{environment_id}"


def check_interval():
    return float(settings.FLAGS_VERSION_CHECK_SECONDS)


# --- publishing version tokens -----------------------------------------------------------------------
def _shared_cache():
    backend = type(cache).__name__
    return backend not in ("LocMemCache", "DummyCache")


def _version_dir():
    path = Path(settings.VAR_DIR) / "flags"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _version_file(scope):
    return _version_dir() / ("version-" + scope.replace(":", "-"))


def read_published(scope):
    """The published token of ``scope`` (None when nothing is published)."""
    if _shared_cache():
        return cache.get(_CACHE_PREFIX + scope)
    try:
        return _version_file(scope).read_text() or None
    except OSError:
        return None


def publish(scope, token):
    if _shared_cache():
        cache.set(_CACHE_PREFIX + scope, token, None)
        return
    target = _version_file(scope)
    temp = target.with_name(f"{target.name}.{threading.get_ident()}.tmp")
    temp.write_text(token)
    temp.replace(target)  # atomic: readers see the old or the new token, never half of one


def publish_if_absent(scope, token):
    """Publish ``token`` only when nothing is published yet (a cleared cache, a first start). Readers use this:
    a reader's token may be older than one an edit publishes meanwhile, and must never overwrite it."""
    if _shared_cache():
        cache.add(_CACHE_PREFIX + scope, token, None)
        return
    target = _version_file(scope)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(token)


def bump(scope):
    """Give ``scope`` a new version token; call inside the transaction of the change."""
    from .models import ConfigVersion

    token = ConfigVersion.new_token()
    updated = ConfigVersion.objects.filter(scope=scope).update(token=token)
    if not updated:
        ConfigVersion.objects.update_or_create(scope=scope, defaults={"token": token})
    # Published once committed: before that, other processes would rebuild from the old rows and republish the
    # old token (this process's own edits are seen at once through forget_local).
    transaction.on_commit(lambda: publish(scope, token))
    forget_local(scope)
    return token


def forget_local(scope):
    """Make this process re-check ``scope`` on its next request (its own edits are seen at once)."""
    with _lock:
        if scope == KEYS_SCOPE:
            _key_state["checked"] = 0.0
            _key_state["token"] = None
        else:
            entry = _entries.get(int(scope.split(":", 1)[1]))
            if entry is not None:
                entry.checked = 0.0
                entry.stale = True


def reset():
    """Drop everything this process holds (tests)."""
    with _lock:
        _entries.clear()
        _keys.clear()
        _missing.clear()
        _key_state.update(token=None, checked=0.0)


def _db_token(scope):
    from .models import ConfigVersion

    token = ConfigVersion.objects.filter(scope=scope).values_list("token", flat=True).first()
    if token is None:
        token = ConfigVersion.new_token()
        ConfigVersion.objects.get_or_create(scope=scope, defaults={"token": token})
        token = ConfigVersion.objects.filter(scope=scope).values_list("token", flat=True).first()
    return token


# --- documents ------------------------------------------------------------------------------------------
def _weighted(variants):
    if not variants:
        return []
    return compute_variant_weights([dict(v, stickiness=v.get("stickiness") or "default") for v in variants])


def feature_document(flag, state):
    """One feature in the Unleash client-API shape (segments referenced by id)."""
    strategies = []
    for strategy in (state.strategies if state else []):
        item = {
            "name": strategy.get("name"),
            "parameters": dict(strategy.get("parameters") or {}),
            "constraints": list(strategy.get("constraints") or []),
        }
        if strategy.get("segments"):
            item["segments"] = list(strategy["segments"])
        if strategy.get("variants"):
            item["variants"] = _weighted(strategy["variants"])
        if strategy.get("title"):
            item["title"] = strategy["title"]
        strategies.append(item)
    doc = {
        "name": flag.key,
        "type": flag.type,
        "description": flag.description,
        "enabled": bool(state and state.enabled),
        "stale": flag.is_past_lifetime(),
        "impressionData": flag.impression_data,
        "project": "default",
        "strategies": strategies,
        "variants": _weighted(state.variants if state else []),
    }
    if flag.parent_id:
        dependency = {"feature": flag.parent.key, "enabled": flag.parent_enabled}
        if flag.parent_variants:
            dependency["variants"] = list(flag.parent_variants)
        doc["dependencies"] = [dependency]
    return doc


def build_document(environment):
    """The environment's client-features document ``{"version": 2, "features", "segments"}``."""
    from .models import FeatureFlag, FlagEnvironment, Lifecycle, Segment

    states = {
        s.flag_id: s for s in FlagEnvironment.objects.filter(environment=environment).only(
            "flag_id", "enabled", "strategies", "variants")
    }
    flags = FeatureFlag.objects.exclude(lifecycle=Lifecycle.ARCHIVED).select_related("parent").order_by("key")
    features = [feature_document(flag, states.get(flag.pk)) for flag in flags]
    used = {sid for f in features for s in f["strategies"] for sid in s.get("segments", ())}
    segments = [s.as_unleash() for s in Segment.objects.filter(pk__in=used).order_by("pk")]
    return {"version": 2, "features": features, "segments": segments}


def inline_segments(doc):
    """The same document for clients older than spec 4.2.0: segment constraints copied into strategies."""
    by_id = {s["id"]: s["constraints"] for s in doc.get("segments", ())}
    features = []
    for feature in doc["features"]:
        strategies = []
        for strategy in feature["strategies"]:
            strategy = dict(strategy)
            ids = strategy.pop("segments", None)
            if ids:
                constraints = list(strategy.get("constraints") or [])
                for sid in ids:
                    if sid in by_id:
                        constraints.extend(by_id[sid])
                    else:  # a missing segment must never match: an impossible constraint says so
                        constraints.append({"contextName": "__missing_segment__", "operator": "IN", "values": []})
                strategy["constraints"] = constraints
            strategies.append(strategy)
        features.append(dict(feature, strategies=strategies))
    return {"version": doc["version"], "features": features}


def _dumps(data):
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


# --- environment snapshots -----------------------------------------------------------------------------
@dataclass
class EnvironmentSnapshot:
    environment_id: int
    environment_name: str
    token: str
    snapshot: Snapshot
    document: dict
    body_with_segments: bytes
    body_inlined: bytes
    flag_types: dict
    checked: float = 0.0
    stale: bool = False

    def etag(self, variant=""):
        return f'"{self.token[:20]}{variant}"'


def _build(environment_id):
    from releases.models import Environment

    environment = Environment.objects.get(pk=environment_id)
    scope = env_scope(environment_id)
    with transaction.atomic():
        token = _db_token(scope)
        doc = build_document(environment)
    meta = {"etag": token[:20]}
    with_segments = dict(doc, meta=meta)
    inlined = dict(inline_segments(doc), meta=meta)
    return EnvironmentSnapshot(
        environment_id=environment_id,
        environment_name=environment.name,
        token=token,
        snapshot=Snapshot.from_client_features(doc),
        document=doc,
        body_with_segments=_dumps(with_segments),
        body_inlined=_dumps(inlined),
        flag_types={f["name"]: f["type"] for f in doc["features"]},
    )


def get(environment_id):
    """The current snapshot of an environment (no database access while it is current)."""
    entry = _entries.get(environment_id)
    now = time.monotonic()
    if entry is not None and now - entry.checked < check_interval():
        return entry
    scope = env_scope(environment_id)
    published = read_published(scope)
    if entry is not None and not entry.stale and published is not None and published == entry.token:
        entry.checked = now
        return entry
    fresh = _build(environment_id)
    fresh.checked = now
    if published is None:
        # Readers only fill an empty slot: a build that read the rows before an edit committed must never
        # overwrite the newer token the edit publishes on commit (every process would keep the old snapshot).
        publish_if_absent(scope, fresh.token)
    with _lock:
        _entries[environment_id] = fresh
    return fresh


# --- API keys ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyInfo:
    id: int
    environment_id: int
    environment_name: str
    kind: str
    name: str
    rate_limit: int | None


def _refresh_keys():
    now = time.monotonic()
    if now - _key_state["checked"] < check_interval():
        return
    published = read_published(KEYS_SCOPE)
    if published is None or published != _key_state["token"]:
        token = _db_token(KEYS_SCOPE)
        if published is None:
            publish_if_absent(KEYS_SCOPE, token)
        with _lock:
            _keys.clear()
            _missing.clear()
            _key_state["token"] = token
    _key_state["checked"] = now


def lookup_key(raw):
    """The active key ``raw`` (KeyInfo) or None. Cached per process, revocations seen within the interval."""
    if not raw or len(raw) > 200:
        return None
    _refresh_keys()
    digest = hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()
    info = _keys.get(digest)
    if info is not None:
        return info
    if digest in _missing:
        return None
    from .models import ApiKey

    row = (
        ApiKey.objects.filter(key_hash=digest, revoked_at__isnull=True)
        .select_related("environment")
        .first()
    )
    with _lock:
        if row is None:
            if len(_missing) >= _MISSING_LIMIT:
                _missing.clear()
            _missing.add(digest)
            return None
        info = KeyInfo(row.pk, row.environment_id, row.environment.name, row.kind, row.name, row.rate_limit)
        _keys[digest] = info
    return info
