"""Evaluation counts of the server-side APIs (OFREP), kept in memory and flushed in the background.

Recording is a dictionary update (no database access on the request path); a daemon thread writes the
aggregated counts into ``FlagMetricsBucket`` rows every ``FLAGS_USAGE_FLUSH_SECONDS`` (default 30; 0 turns
the thread off — tests call :func:`flush` themselves).
"""
import atexit
import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_counts: dict = {}
_thread: dict = {"started": False}


def record(environment_id, name, enabled, variant=None):
    with _lock:
        counts = _counts.get((environment_id, name))
        if counts is None:
            counts = _counts[(environment_id, name)] = [0, 0, {}]
        counts[0 if enabled else 1] += 1
        if variant is not None:
            counts[2][variant] = counts[2].get(variant, 0) + 1
    if not _thread["started"]:
        _start()


def pending():
    with _lock:
        return {k: [v[0], v[1], dict(v[2])] for k, v in _counts.items()}


def flush():
    """Write what was counted so far; returns the number of (environment, flag) pairs written."""
    global _counts
    with _lock:
        taken, _counts = _counts, {}
    if not taken:
        return 0
    from . import services

    by_env: dict = {}
    for (env_id, name), (yes, no, variants) in taken.items():
        by_env.setdefault(env_id, {})[name] = (yes, no, variants)
    failure = None
    written = 0
    for env_id, toggles in by_env.items():
        try:
            services.metrics_record(environment_id=env_id, toggles=toggles, app_name="ofrep")
        except Exception as exc:
            # e.g. SQLite busy: keep these counts for the next round and go on with the other environments
            _merge_back(env_id, toggles)
            failure = failure or exc
        else:
            written += len(toggles)
    if failure is not None:
        raise failure
    return written


def _merge_back(env_id, toggles):
    with _lock:
        for name, (yes, no, variants) in toggles.items():
            counts = _counts.setdefault((env_id, name), [0, 0, {}])
            counts[0] += yes
            counts[1] += no
            for variant, n in variants.items():
                counts[2][variant] = counts[2].get(variant, 0) + n


def _loop(interval):
    while True:
        time.sleep(interval)
        try:
            close_old_connections()
            flush()
        except Exception:  # the counts were put back: the next round retries
            logger.warning("flag usage flush failed; retrying next round", exc_info=True)


def _start():
    with _lock:
        if _thread["started"]:
            return
        _thread["started"] = True
    interval = float(settings.FLAGS_USAGE_FLUSH_SECONDS)
    if interval <= 0:
        return
    threading.Thread(target=_loop, args=(interval,), name="flags-usage-flush", daemon=True).start()
    atexit.register(_flush_quietly)


def _flush_quietly():
    try:
        flush()
    except Exception:
        logger.warning("flag usage: final flush failed", exc_info=True)
