"""Structured logs (structlog over the standard library's logging): every line, the portal's own and Django's or
Celery's, carries the seed's ``LogEntry`` fields.

``LOG_FORMAT=json`` prints one JSON object a line::

    {"timestamp": "2026-12-02T01:02:03.456789Z", "level": "info", "service": "worker",
     "message": "task success", "logger": "pmrelease.logs",
     "context": {"user_id": "7", "request_id": "3f9c…", "environment": "production", "version": "0.1.0"},
     "metadata": {"task": "releases.deploy.tasks.advance_deployment", "duration_ms": 12.5}}

``LOG_FORMAT=console`` (the default, what ``make run`` shows) prints the same fields for people.

- ``service``: web, worker or beat (``LOG_SERVICE``, else guessed from the command line);
- ``context.request_id``: the request's ``X-Request-ID`` (pmrelease.middleware), which Celery tasks started by
  the request inherit through a message header (``connect_celery_signals``); a task nobody's request started
  gets its own task id;
- ``context.user_id``: the authenticated user of the request (or of the request that started the task);
- ``context.environment`` / ``context.version``: where this portal runs (``LOG_ENVIRONMENT``) and its version;
- ``metadata``: every other key given to the log call (structlog's keyword arguments, or ``extra=`` of a
  standard-library call).

Import this module from settings only: it imports nothing of Django's that needs the app registry.
"""
import contextvars
import logging
import sys
import time

import structlog
from django.utils.functional import empty

HEADER_REQUEST_ID = "pmrelease_request_id"
HEADER_USER_ID = "pmrelease_user_id"
CONTEXT_KEYS = ("user_id", "request_id", "environment", "version")
# Keys of a standard-library LogRecord's own, never copied into metadata.
_RESERVED = {"timestamp", "level", "service", "message", "event", "logger", "context", "metadata", "_record",
             "_from_structlog", "exc_info", "stack_info", "exception", "positional_args"}

_user_id = contextvars.ContextVar("log_user_id", default="")
_service = contextvars.ContextVar("log_service", default="")  # "worker" while a task runs
_settings = {"service": "web", "environment": "", "version": ""}


def guess_service(argv=None):
    """web, worker or beat, from the process's command line (``celery … worker`` / ``celery … beat``)."""
    argv = list(sys.argv if argv is None else argv)
    if any("celery" in part for part in argv[:2]):
        if "beat" in argv:
            return "beat"
        if "worker" in argv:
            return "worker"
    return "web"


def set_user_id(value):
    return _user_id.set(str(value or ""))


def reset_user_id(token):
    _user_id.reset(token)


def current_user_id():
    """The user id of the request being served (once authentication has run), else of the task's request."""
    from .middleware import current_request

    request = current_request()
    user = request.__dict__.get("user") if request is not None else None
    wrapped = getattr(user, "_wrapped", user)  # AuthenticationMiddleware's lazy user: only once evaluated
    if wrapped is not None and wrapped is not empty and getattr(wrapped, "pk", None) is not None:
        return str(wrapped.pk)
    return _user_id.get()


def add_service_and_context(logger, method_name, event_dict):
    """Add service, request id and user id (the portal's, set per request or task) unless given."""
    from .middleware import current_request_id

    event_dict.setdefault("service", _service.get() or _settings["service"])
    event_dict.setdefault("request_id", current_request_id())
    event_dict.setdefault("user_id", current_user_id())
    event_dict.setdefault("environment", _settings["environment"])
    event_dict.setdefault("version", _settings["version"])
    return event_dict


def to_log_entry(logger, method_name, event_dict):
    """The flat event dict → the seed's LogEntry shape (timestamp, level, service, message, context,
    metadata)."""
    record = event_dict.get("_record")
    entry = {"timestamp": event_dict.pop("timestamp", None), "level": event_dict.pop("level", method_name),
             "service": event_dict.pop("service", _settings["service"]),
             "message": str(event_dict.pop("event", "")),
             "logger": event_dict.pop("logger", None) or (record.name if record is not None else None)}
    entry["context"] = {key: str(event_dict.pop(key, "") or "") for key in CONTEXT_KEYS}
    exception = event_dict.pop("exception", None)
    metadata = {k: v for k, v in event_dict.items() if k not in _RESERVED}
    if exception:
        metadata["exception"] = exception
    entry["metadata"] = metadata
    return entry


def _drop_empty_context(logger, method_name, event_dict):
    for key in CONTEXT_KEYS:
        if not event_dict.get(key):
            event_dict.pop(key, None)
    return event_dict


def _shared_processors():
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        add_service_and_context,
    ]


def formatter(fmt):
    """A logging.Formatter rendering every record (structlog's and the standard library's) as ``fmt``."""
    if fmt == "json":
        tail = [structlog.processors.format_exc_info, to_log_entry,
                structlog.processors.JSONRenderer(default=str)]
    else:
        tail = [_drop_empty_context, structlog.dev.ConsoleRenderer(colors=False, event_key="event")]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail])


def configure(*, fmt, level, service, environment, version):
    """Configure structlog and return the ``LOGGING`` dict for Django's settings."""
    if fmt not in ("json", "console"):
        raise ValueError(f"LOG_FORMAT must be json or console, not {fmt!r}")
    _settings.update(service=service, environment=environment, version=version)
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": "pmrelease.logs.formatter", "fmt": fmt}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"},
                    # the access log of runserver/gunicorn stays theirs; Django's request errors come through
                    "django.server": {"level": "INFO"}},
    }


logger = structlog.stdlib.get_logger(__name__)


# --- Celery: the request id and user travel with the task ---------------------------------------------------
_task_tokens = {}


def before_task_publish(headers=None, **kwargs):
    """The publishing side (a web request, or a task starting another): stamp the message."""
    from .middleware import current_request_id

    if headers is None:
        return
    request_id = current_request_id()
    if request_id:
        headers.setdefault(HEADER_REQUEST_ID, request_id)
    user_id = current_user_id()
    if user_id:
        headers.setdefault(HEADER_USER_ID, user_id)


def _header(task, name):
    request = task.request
    value = getattr(request, name, None)
    if not value and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(name)
    return value or ""


def task_prerun(task_id=None, task=None, **kwargs):
    """The worker side: the task's log lines and audit rows carry the id of the request that started it
    (else the task's own id)."""
    from .middleware import set_request_id

    if task is None:
        return
    request_id = _header(task, HEADER_REQUEST_ID) or task_id or ""
    _task_tokens[task_id] = (set_request_id(request_id), set_user_id(_header(task, HEADER_USER_ID)),
                             _service.set("worker"), time.perf_counter())
    logger.debug("task started", task=task.name, task_id=task_id)


def task_postrun(task_id=None, task=None, state=None, **kwargs):
    from .middleware import reset_request_id

    tokens = _task_tokens.pop(task_id, None)
    if tokens is None:
        return
    request_token, user_token, service_token, started = tokens
    level = logging.INFO if state in ("SUCCESS", None) else logging.WARNING
    logger.log(level, f"task {str(state or 'done').lower()}", task=getattr(task, "name", ""), task_id=task_id,
               state=state, duration_ms=round((time.perf_counter() - started) * 1000, 3))
    reset_request_id(request_token)
    reset_user_id(user_token)
    _service.reset(service_token)


def connect_celery_signals():
    from celery import signals

    signals.before_task_publish.connect(before_task_publish, weak=False, dispatch_uid="pmrelease.logs.publish")
    signals.task_prerun.connect(task_prerun, weak=False, dispatch_uid="pmrelease.logs.prerun")
    signals.task_postrun.connect(task_postrun, weak=False, dispatch_uid="pmrelease.logs.postrun")
