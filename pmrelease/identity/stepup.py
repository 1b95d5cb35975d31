"""Step-up: the actions that change production need a recent second factor.

How the current request authenticated (``Evidence``) is read from the request that ``StepUpMiddleware`` keeps in a
context variable for its duration: the API token that ``pmrelease.tokens.TokenAuthentication`` found (noted on
the request), else the session's signed-in person. ``require`` is the one
check every service calls (through ``releases.access``); it refuses with ``StepUpRequired`` (401,
``step_up_required``) when

- a session has no second factor newer than ``STEP_UP_MAX_AGE`` seconds (TOTP verified here, or an IdP ``acr`` /
  ``amr`` claim at sign-in showing one: ``mark_session``), or
- a person's API token was not created in a step-up session (``token_may_step_up``).

Work that no person started over HTTP (Celery tasks, management commands, the shell: no evidence) is not asked:
whoever runs those already holds the servers.
"""
import contextvars
import time
from dataclasses import dataclass

from django.conf import settings

from .. import errors

SESSION_KEY = "pm_step_up_at"
SESSION_METHOD_KEY = "pm_step_up_method"

_request = contextvars.ContextVar("pm_auth_request", default=None)
_evidence = contextvars.ContextVar("pm_auth_evidence", default=None)  # an explicit one (set_evidence)


class StepUpRequired(errors.DomainError):
    status_code = 401
    code = "step_up_required"

    def as_dict(self):
        data = super().as_dict()
        data["step_up_url"] = settings.STEP_UP_URL
        return data


@dataclass(frozen=True)
class Evidence:
    """How the request in progress proved who it is: ``kind`` is "session" or "token"."""

    kind: str
    user_id: int
    request: object = None  # the Django request (session evidence)
    token: object = None  # the ApiToken (token evidence)


def current():
    explicit = _evidence.get()
    if explicit is not None:
        return explicit
    request = _request.get()
    if request is None:
        return None
    token = getattr(request, "_pm_token", None)
    if token is not None:
        return Evidence(kind="token", user_id=token.user_id, token=token)
    user_id = getattr(request, "_pm_session_user_id", None)
    if user_id is not None:
        return Evidence(kind="session", user_id=user_id, request=request)
    return None


def note_token(request, token):
    """The token authentication found ``token`` for this request (a DRF request or the Django one)."""
    django_request = getattr(request, "_request", request)
    django_request._pm_token = token


def set_evidence(evidence):
    """Set the evidence explicitly for a block of work outside a request (tests, tools); returns the token for
    ``reset``."""
    return _evidence.set(evidence)


def reset(token):
    _evidence.reset(token)


# --- sessions -------------------------------------------------------------------------------------------------
def mark_session(request, *, method, at=None):
    """Record in the session that its person has just shown a second factor (``method``: totp, or the IdP's
    acr/amr)."""
    request.session[SESSION_KEY] = float(at if at is not None else time.time())
    request.session[SESSION_METHOD_KEY] = str(method)[:64]


def session_stepped_up(request, *, now=None):
    """Whether the session's second factor is recent enough (``STEP_UP_MAX_AGE`` seconds)."""
    session = getattr(request, "session", None)
    if session is None:
        return False
    at = session.get(SESSION_KEY)
    if at is None:
        return False
    age = (now if now is not None else time.time()) - float(at)
    return 0 <= age <= settings.STEP_UP_MAX_AGE


# --- tokens ---------------------------------------------------------------------------------------------------
def token_may_step_up(token):
    """Whether an API token may do a step-up action. A service account's token may: it has no second factor to
    give, and its scopes (checked by the token authentication before any action) and environment restriction
    bound what it can do. A person's token only if it was created in that person's step-up session
    (``ApiToken.created_in_step_up``) — and it still needs the scope of the action — else a token issued with a
    password would bypass the second factor."""
    if getattr(token, "created_in_step_up", False):
        return True
    from ..models import ServiceAccount

    return ServiceAccount.objects.filter(user_id=getattr(token, "user_id", None)).exists()


def in_step_up_session(user):
    """Whether the current request is ``user``'s session with a recent second factor (what a token issued now
    records as ``created_in_step_up``)."""
    evidence = current()
    return (evidence is not None and evidence.kind == "session" and evidence.user_id == getattr(user, "pk", None)
            and session_stepped_up(evidence.request))


# --- the check ------------------------------------------------------------------------------------------------
def is_satisfied(user):
    """Whether ``user`` may do a step-up action in the current context (see the module's docstring)."""
    evidence = current()
    if evidence is None:
        return True
    if evidence.user_id != getattr(user, "pk", None):
        return False  # acting for somebody else than who signed in: never with their second factor
    if evidence.kind == "token":
        return token_may_step_up(evidence.token)
    return session_stepped_up(evidence.request)


def require(user, what):
    """Refuse ``what`` (a phrase: "deploy to production") with 401 step_up_required unless ``is_satisfied``."""
    if not settings.STEP_UP_REQUIRED or is_satisfied(user):
        return
    evidence = current()
    if evidence is not None and evidence.kind == "token":
        raise StepUpRequired(f"to {what} an API token must have been created in a session with a recent second "
                             "factor: create a new token after verifying your second factor")
    minutes = max(1, settings.STEP_UP_MAX_AGE // 60)
    raise StepUpRequired(f"to {what} you need a second factor verified in the last {minutes} minutes: "
                         f"verify it at {settings.STEP_UP_URL}")


class StepUpMiddleware:
    """Keeps a signed-in session as the request's evidence (after AuthenticationMiddleware). A request without
    one gets its evidence from the token authentication, or none (nobody authenticated)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        # who the session signed in, before any view replaces request.user (DRF sets it to the token's person)
        request._pm_session_user_id = user.pk if getattr(user, "is_authenticated", False) else None
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)
