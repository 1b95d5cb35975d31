"""Step-up: the actions that change production need a recent second factor.

How the current request authenticated is kept in a context variable (``Evidence``): the session (set by
``StepUpMiddleware``) or an API token (set by ``pmrelease.tokens.TokenAuthentication``). ``require`` is the one
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

_evidence = contextvars.ContextVar("pm_auth_evidence", default=None)


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
    return _evidence.get()


def set_evidence(evidence):
    """Returns the reset token (``reset``)."""
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
    """Whether an API token may do a step-up action: a person's token only if it was created in a step-up session.

    The scoped tokens of issue 16 combine with this: a service account's token is exempt by its scope, a person's
    token needs the step-up scope *and* this marker (``ApiToken.created_in_step_up``)."""
    return bool(getattr(token, "created_in_step_up", False))


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
        evidence = None
        if getattr(user, "is_authenticated", False):
            evidence = Evidence(kind="session", user_id=user.pk, request=request)
        token = _evidence.set(evidence)
        try:
            return self.get_response(request)
        finally:
            _evidence.reset(token)
