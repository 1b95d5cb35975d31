"""Settings for the PenguinMails Release Portal, driven by environment variables (django-environ).

With nothing set the portal runs *embedded*: SQLite under ``var/``, a local-memory cache and Celery on
the filesystem transport under ``var/``. ``DATABASE_URL``, ``REDIS_URL`` (broker and cache),
``SECRET_KEY``, ``DEBUG`` and ``ALLOWED_HOSTS`` switch it to production services.
"""
import importlib
import ipaddress
import os
from pathlib import Path

import environ
from celery.schedules import crontab

from pmrelease import logs as _logs


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pmrelease")
    except PackageNotFoundError:
        return "unknown"


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
EMBEDDED = not env.str("DATABASE_URL", default="")

# prometheus-client's multiprocess mode (pmrelease.metrics): every process of the portal on this host (gunicorn
# workers, Celery workers, beat) writes its counters under this directory and /metrics sums them. It must be in
# the environment before prometheus_client is first imported, hence here. Wipe it when the portal starts
# (`make run` does; gunicorn.conf.py marks dead workers).
PROMETHEUS_MULTIPROC_DIR = Path(env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "prometheus")))
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)

DEBUG = env.bool("DEBUG", default=EMBEDDED)
SECRET_KEY = env.str(
    "SECRET_KEY",
    default="embedded-only-insecure-key-0123456789abcdefghijklmnopqrstuvwxyz" if EMBEDDED else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

PRODUCT_NAME = env.str("PRODUCT_NAME", default="PenguinMails")
PORTAL_URL = env.str("PORTAL_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pmrelease",
    "releases",
    "changes",
    "flags",
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "pmrelease.middleware.RequestIdMiddleware",
    "pmrelease.middleware.MetricsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "pmrelease.leaks.SecretScanOverrideMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pmrelease.urls"
WSGI_APPLICATION = "pmrelease.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: wait for the lock instead of failing at once, and take the write
    # lock when a transaction begins (a read lock upgraded later fails at once with "database is locked").
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    # Tests too use a file: an in-memory database shared between threads (the real Celery worker of the
    # integration tests) locks whole tables and fails at once instead of waiting.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6's default, now

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pmrelease"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve app static files without collectstatic in the embedded mode

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend" if EMBEDDED else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="release-portal@penguinmails.local")

# --- security (production defaults; the embedded mode runs on plain http://127.0.0.1) -----------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST API -----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pmrelease.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PenguinMails Release Portal API",
    "DESCRIPTION": "Releases, environments, approvals and the audit trail. FSM transitions are "
    "`POST /api/v1/<resource>/<id>/<transition>/`: 409 when not allowed from the current state, "
    "403 without permission, 400 with field errors.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served locally: no external assets
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RiskLevelEnum": "releases.models.Level",
        "LikelihoodEnum": "releases.models.Likelihood",
        "ChangeTypeEnum": "changes.models.ChangeType",
        "ChangeStatusEnum": "changes.models.ChangeStatus",
        "DeploymentStatusEnum": "releases.models.DeploymentStatus",
    },
}

# --- Celery -------------------------------------------------------------------------------------------
# The longest a single deployment step may run in a worker (a Kubernetes rollout wait included): the
# advance_deployment task's time limits are derived from it, and the Redis visibility timeout stays above
# them (a message unacknowledged for that long is handed to another worker).
DEPLOY_STEP_TIME_LIMIT = env.int("DEPLOY_STEP_TIME_LIMIT", default=1800)
# Crash recovery (releases/deploy/leases.py): a running step's lease is this short and renewed by a heartbeat
# every third of it while its worker lives; the watchdog (beat, every DEPLOY_WATCHDOG_SECONDS, read by
# releases/beat.py) hands a step whose lease ran out to another worker; a step whose worker vanished
# DEPLOY_MAX_WORKER_LOSSES times in a row fails (it is likely what kills them).
DEPLOY_LEASE_SECONDS = env.float("DEPLOY_LEASE_SECONDS", default=10.0)
DEPLOY_WATCHDOG_SECONDS = env.float("DEPLOY_WATCHDOG_SECONDS", default=5.0)
DEPLOY_MAX_WORKER_LOSSES = env.int("DEPLOY_MAX_WORKER_LOSSES", default=10)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": max(3600, 2 * (DEPLOY_STEP_TIME_LIMIT + 120))}
else:
    _broker_dir = VAR_DIR / "celery" / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    for _sub in ("processed", "control"):
        (VAR_DIR / "celery" / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
        # kombu's virtual transports sleep this long whenever nothing can be taken — also while the worker's
        # prefetch is full, however soon a task ends: at the default 1 s a worker with --concurrency 2 ran about
        # two tasks a second (webhook deliveries 10 s behind at 10 events/s). A poll is one directory listing.
        "polling_interval": env.float("CELERY_FILESYSTEM_POLL_SECONDS", default=0.1),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "audit-verify-chain": {"task": "pmrelease.tasks.audit_verify_chain", "schedule": crontab(minute=17)},
}

# Each app keeps its periodic tasks in <app>/beat.py (plain dicts, no Django import).
for _app in ("releases", "changes", "flags", "monitoring"):
    CELERY_BEAT_SCHEDULE.update(importlib.import_module(f"{_app}.beat").SCHEDULE)

# --- the apps' own settings, each from the environment with its default ---------------------------------------
# Feature flags (docs/flags.md)
FLAGS_VERSION_CHECK_SECONDS = env.float("FLAGS_VERSION_CHECK_SECONDS", default=1.0)
FLAGS_RATE_LIMIT = env.int("FLAGS_RATE_LIMIT", default=10_000)  # OFREP requests/s per key per process
FLAGS_MAX_BODY_BYTES = env.int("FLAGS_MAX_BODY_BYTES", default=65_536)
FLAGS_MAX_METRICS_BYTES = env.int("FLAGS_MAX_METRICS_BYTES", default=1_048_576)
FLAGS_METRICS_BUCKET_SECONDS = env.int("FLAGS_METRICS_BUCKET_SECONDS", default=3600)
FLAGS_USAGE_FLUSH_SECONDS = env.float("FLAGS_USAGE_FLUSH_SECONDS", default=30)
FLAGS_STALE_UNUSED_DAYS = env.int("FLAGS_STALE_UNUSED_DAYS", default=30)
FLAGS_CORS_ORIGINS = env.list("FLAGS_CORS_ORIGINS", default=["*"])
# --- flag edge (issue 14): the lean serving path, its database checks and its saved snapshots ---
FLAGS_EDGE_VERIFY_SECONDS = env.float("FLAGS_EDGE_VERIFY_SECONDS", default=5.0)
FLAGS_EDGE_SNAPSHOT_DIR = Path(env.str("FLAGS_EDGE_SNAPSHOT_DIR", default=str(VAR_DIR / "flags" / "edge")))
# WSGI applications wrapped around Django by pmrelease/wsgi.py, named (not imported) like the apps' URLs:
# each is called with the application inside it and answers its own paths (the flag edge: docs/flags.md).
WSGI_MOUNTS = ["flags.edge.mount"]
# --- end flag edge ---

# Public status page (docs/status-page.md)
STATUS_PAGE_ID = env.str("STATUS_PAGE_ID", default="penguinmails")
STATUS_PAGE_NAME = env.str("STATUS_PAGE_NAME", default=PRODUCT_NAME)
STATUS_PUBLIC_URL = env.str("STATUS_PUBLIC_URL", default=f"{PORTAL_URL.rstrip('/')}/status")
STATUS_PUBLISH_DIR = Path(env.str("STATUS_PUBLISH_DIR", default=str(VAR_DIR / "status-site")))
STATUS_MAINTENANCE_REMINDER_MINUTES = env.int("STATUS_MAINTENANCE_REMINDER_MINUTES", default=60)
STATUS_UNSUBSCRIBE_TOKEN_DAYS = env.int("STATUS_UNSUBSCRIBE_TOKEN_DAYS", default=365)
STATUS_WEBHOOK_ALLOW_PRIVATE = env.bool("STATUS_WEBHOOK_ALLOW_PRIVATE", default=False)

# Rollback triggers and metric providers (README: "Automated rollback")
MONITORING_TICK_SECONDS = env.float("MONITORING_TICK_SECONDS", default=30)  # the trigger watch's beat interval
METRICS_APP = env.str("METRICS_APP", default="penguinmails")  # the {app} label of the Prometheus templates
METRICS_RATE_WINDOW = env.str("METRICS_RATE_WINDOW", default="1m")  # the {window} of rate() in the templates
METRICS_BUILTIN_BUCKET_SECONDS = env.int("METRICS_BUILTIN_BUCKET_SECONDS", default=60)
METRICS_RETENTION_DAYS = env.int("METRICS_RETENTION_DAYS", default=14)  # builtin samples and evaluations
METRICS_INGEST_MAX_SAMPLES = env.int("METRICS_INGEST_MAX_SAMPLES", default=1000)
# /readyz asks each environment's provider (monitoring.metrics.services.provider_problems): seconds per ask, and
# how long an answer is kept (a probe every few seconds must not query Prometheus each time).
READYZ_PROVIDER_TIMEOUT = env.float("READYZ_PROVIDER_TIMEOUT", default=2.0)
READYZ_PROVIDER_CACHE_SECONDS = env.int("READYZ_PROVIDER_CACHE_SECONDS", default=15)

# Structured logs (pmrelease.logs; README "Logs"): LOG_FORMAT=console (default) or json; the seed's LogEntry fields.
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOG_SERVICE = env.str("LOG_SERVICE", default="") or _logs.guess_service()
LOG_ENVIRONMENT = env.str("LOG_ENVIRONMENT", default="embedded" if EMBEDDED else "production")
LOGGING = _logs.configure(fmt=LOG_FORMAT, level=env.str("LOG_LEVEL", default="INFO"), service=LOG_SERVICE,
                          environment=LOG_ENVIRONMENT, version=_version())
# Celery keeps our logging configuration (its own would replace the root handler's structured formatter).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- hardening (issue 12; README "Security notes") -----------------------------------------------------------
# Request bodies: JSON nested deeper than this is a 400 (pmrelease.parsers), on every DRF endpoint.
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = [
    "pmrelease.parsers.JSONParser",
    "pmrelease.parsers.FormParser",
    "pmrelease.parsers.MultiPartParser",
]
# JSON 404/405 under /api/, /ofrep/ and /status/api/ (never Django's HTML page, nor its URL list with DEBUG on).
MIDDLEWARE.insert(MIDDLEWARE.index("pmrelease.middleware.RequestIdMiddleware") + 1,
                  "pmrelease.middleware.JsonErrorsMiddleware")
# ... and a 400 for a NUL character in their path or query string (PostgreSQL cannot compare it: a 500).
MIDDLEWARE.insert(MIDDLEWARE.index("pmrelease.middleware.JsonErrorsMiddleware") + 1,
                  "pmrelease.middleware.RefuseNulMiddleware")
# /metrics: a bearer token and/or client networks (CIDR). Embedded default: loopback, so `make run` users can curl
# it; with DATABASE_URL set nothing is allowed until one of them is configured.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = [str(ipaddress.ip_network(net, strict=False)) for net in env.list(
    "METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"] if EMBEDDED else [])]
# The audit trail's HMAC key (pmrelease.audit.key: unset, embedded: a random key made once in VAR_DIR/audit.key;
# with DATABASE_URL: derived from SECRET_KEY, so set it in production), and the signed chain-head checkpoints
# that beat appends to a file outside the database (pmrelease.checkpoints).
AUDIT_KEY = env.str("AUDIT_KEY", default="")
AUDIT_CHECKPOINT_PATH = Path(env.str("AUDIT_CHECKPOINT_PATH", default=str(VAR_DIR / "audit-checkpoints.jsonl")))
CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {"task": "pmrelease.tasks.audit_checkpoint",
                                            "schedule": crontab(minute="*/5")}
# The OpenAPI schema documents the error answers of every operation (pmrelease.schema).
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = ["drf_spectacular.hooks.postprocess_schema_enums",
                                                "pmrelease.schema.document_errors"]
# API tokens are stored as SHA-256 hashes (pmrelease.tokens); DRF's clear-text authtoken table stays empty.
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = [
    "pmrelease.tokens.TokenAuthentication" if name == "rest_framework.authentication.TokenAuthentication" else name
    for name in REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]]
# End hardening section.
# Waiting for a deployment (releases.deploy.waits): how often a loop's hub polls the watched deployments, and
# how long one event stream may stay open.
DEPLOYMENT_WAIT_POLL_SECONDS = env.float("DEPLOYMENT_WAIT_POLL_SECONDS", default=0.2)
DEPLOYMENT_EVENTS_MAX_SECONDS = env.float("DEPLOYMENT_EVENTS_MAX_SECONDS", default=1800.0)
# At most this many renderings of a wait's answer at once per process (so as many database connections).
DEPLOYMENT_WAIT_RENDER_CONCURRENCY = env.int("DEPLOYMENT_WAIT_RENDER_CONCURRENCY", default=8)
# Idempotency-Key on the API's POSTs (pmrelease.idempotency), once the session's user is known.
MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
                  "pmrelease.idempotency.IdempotencyMiddleware")
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] += ["pmrelease.schema.document_idempotency",
                                                 "pmrelease.schema.document_webhooks"]
CELERY_BEAT_SCHEDULE["idempotency-prune"] = {"task": "pmrelease.tasks.idempotency_prune",
                                             "schedule": crontab(minute=17)}
# Retention of the delivery log (pmrelease.retention) and of alert rules' state changes, in days.
NOTIFICATION_RETENTION_DAYS = env.int("NOTIFICATION_RETENTION_DAYS", default=90)
ALERT_EVENT_RETENTION_DAYS = env.int("ALERT_EVENT_RETENTION_DAYS", default=90)
CELERY_BEAT_SCHEDULE["notifications-prune"] = {"task": "pmrelease.tasks.notifications_prune",
                                               "schedule": crontab(minute=41)}
# Delivery (pmrelease.delivery) and secrets at rest (pmrelease.crypto): PMR_ENCRYPTION_KEYS is "id:base64key,..."
# (the first current; unset: a key made once in VAR_DIR/encryption.key embedded, derived from SECRET_KEY otherwise).
ENCRYPTION_KEYS = env.str("PMR_ENCRYPTION_KEYS", default="")
DELIVERY_MAX_RETRIES = env.int("DELIVERY_MAX_RETRIES", default=5)  # attempts after the first
DELIVERY_BACKOFF_SECONDS = env.float("DELIVERY_BACKOFF_SECONDS", default=30.0)  # doubled per retry, at most 1 h
DELIVERY_TIMEOUT_SECONDS = env.float("DELIVERY_TIMEOUT_SECONDS", default=10.0)  # one attempt's network time
# Configuration and secrets (releases.configuration, releases.secrets): Vault (KV v2) for vault:// references,
# read by workers at deploy time and by beat for rotation metadata; the token never leaves the environment.
VAULT_ADDR = env.str("VAULT_ADDR", default="")
VAULT_TOKEN = env.str("VAULT_TOKEN", default="")
VAULT_TIMEOUT = env.float("VAULT_TIMEOUT", default=5.0)
# Signed webhook channels go to public addresses only (pmrelease.addresses) unless this is set.
DELIVERY_WEBHOOK_ALLOW_PRIVATE = env.bool("DELIVERY_WEBHOOK_ALLOW_PRIVATE", default=False)
# Alert rules (monitoring.alerting): how often beat evaluates the enabled rules.
ALERT_EVALUATION_SECONDS = env.float("ALERT_EVALUATION_SECONDS", default=30.0)

# --- identity (issue 19; README "Identity"): SSO, LDAP, roles from groups, second factor, login hygiene --------
INSTALLED_APPS += ["django_otp", "django_otp.plugins.otp_totp", "axes"]
TEMPLATES[0]["OPTIONS"]["context_processors"].append("pmrelease.identity.context.identity")
LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/admin/"
LOGOUT_REDIRECT_URL = "/admin/login/"
# Local (password) login; off, only the break-glass accounts may use a password (they work when the IdP is down).
LOCAL_LOGIN_ENABLED = env.bool("LOCAL_LOGIN_ENABLED", default=True)
BREAK_GLASS_USERNAMES = env.list("BREAK_GLASS_USERNAMES", default=[])
# OpenID Connect (mozilla-django-oidc, authorization code flow with PKCE); on when OIDC_ISSUER and the client id are set.
OIDC_ISSUER = env.str("OIDC_ISSUER", default="")
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="single sign-on")
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile groups")
OIDC_RP_SIGN_ALGO = env.str("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")  # else from discovery
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default="")
OIDC_CLAIM_USERNAME = env.str("OIDC_CLAIM_USERNAME", default="preferred_username")
OIDC_CLAIM_EMAIL = env.str("OIDC_CLAIM_EMAIL", default="email")
OIDC_CLAIM_GROUPS = env.str("OIDC_CLAIM_GROUPS", default="groups")
OIDC_STEP_UP_ACR = env.list("OIDC_STEP_UP_ACR", default=[])
OIDC_STEP_UP_AMR = env.list("OIDC_STEP_UP_AMR", default=["mfa", "otp", "hwk", "swk", "fpt"])
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_TIMEOUT = env.float("OIDC_TIMEOUT", default=10)
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = env.int("OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS", default=900)
OIDC_EXEMPT_URLS = [r"/healthz", "/readyz", "/metrics"]
OIDC_CALLBACK_CLASS = "pmrelease.identity.oidc.CallbackView"
OIDC_AUTHENTICATE_CLASS = "pmrelease.identity.oidc.AuthenticationRequestView"
# Group -> role mappings from the environment (JSON list of {"source": "oidc"|"ldap", "group", "role"}), on top of
# the ones administrators keep in the admin.
ROLE_MAPPINGS = env.json("ROLE_MAPPINGS", default=[])
# LDAP (django-auth-ldap, the optional `ldap` extra); on when AUTH_LDAP_SERVER_URI is set.
AUTH_LDAP_SERVER_URI = env.str("AUTH_LDAP_SERVER_URI", default="")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: a locked-out account or address is refused before any check
    "pmrelease.identity.local.LocalBackend",
    "pmrelease.identity.oidc.Backend",
]
if AUTH_LDAP_SERVER_URI:
    from pmrelease.identity import ldap_settings as _ldap_settings

    globals().update(_ldap_settings.from_env(env))
    AUTHENTICATION_BACKENDS.append("pmrelease.identity.ldap.Backend")
# Second factor and step-up (pmrelease.identity.stepup): production actions need a code verified this recently.
STEP_UP_REQUIRED = env.bool("STEP_UP_REQUIRED", default=True)
STEP_UP_MAX_AGE = env.int("STEP_UP_MAX_AGE", default=900)
STEP_UP_URL = "/account/step-up/"
TOTP_SETUP_URL = "/account/2fa/setup/"
OTP_TOTP_ISSUER = PRODUCT_NAME + " Release Portal"
# Failed sign-ins (django-axes): after AXES_FAILURE_LIMIT failures an account, and separately an address, is locked
# out for AXES_COOLOFF_HOURS; a success resets the account's count.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.5)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Sessions: an idle timeout and a hard age (an SSO session also ends when the IdP refuses its refresh).
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)
SESSION_SAVE_EVERY_REQUEST = False
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
                  "django_otp.middleware.OTPMiddleware")
MIDDLEWARE.insert(MIDDLEWARE.index("django_otp.middleware.OTPMiddleware") + 1,
                  "pmrelease.identity.oidc.SessionRefresh")
MIDDLEWARE.insert(MIDDLEWARE.index("pmrelease.identity.oidc.SessionRefresh") + 1,
                  "pmrelease.identity.stepup.StepUpMiddleware")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
# --- end identity ---
# The APIs served outside DRF in the OpenAPI document (after the error answers, which they document themselves):
# OFREP and the Unleash APIs of the flag edge (flags.schema), the status page's JSON (monitoring.statuspage.schema).
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] += ["flags.schema.document_flag_apis",
                                                 "monitoring.statuspage.schema.document_status_json"]
