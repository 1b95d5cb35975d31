"""API tokens and service accounts.

A token belongs to a person or a service account and is stored as a hash: issuing one returns the key once.
The keys are 160 random bits, so SHA-256 is enough (no slow password hash): a stolen database does not give
anyone a working key. ``Authorization: Bearer <key>`` and ``Authorization: Token <key>`` both authenticate.

A token is bounded three ways, on top of what its account may do (roles and environment access):

- **scopes**: ``read`` (GET/HEAD/OPTIONS anywhere the account may read), ``releases:write`` (create, edit and
  transition releases), ``deployments:write`` (request deployments and their operator actions),
  ``gates:report`` (report testing-gate results), ``changes:write`` (change requests), ``*`` (everything its
  account may; what ``POST /api/v1/auth/token/`` gives). A request outside the scopes is a 403 naming the
  scope it needs. The views name the scope of each write (``token_scopes`` on a view: action → scope;
  ``token_write_scope``: the scope of every other write); a write no view names needs ``*``.
- **environments** (names; empty: every environment): the account's access everywhere else counts as none.
  A ``gates:report`` token restricted to environments may report gate results there even when its account has
  no right of its own (``grants``): that is how a CI job reports tests without any other power.
- **expiry** and **revocation**: an expired or revoked token is a 401 saying which, and when.

The authenticated user object carries its token (``token_of``), so that the audit trail names the account and
the token (``audit.actor_name``) and the environment checks (``releases.access``) apply the restriction.
"""
import datetime as dt
import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions

from . import audit, errors
from .identity import stepup
from .models import ApiToken, ServiceAccount

ALL = "*"
SCOPES = {
    "read": "read everything the account may see (GET, HEAD, OPTIONS)",
    "releases:write": "create, edit and transition releases",
    "deployments:write": "request deployments and take their operator actions",
    "gates:report": "report testing-gate results (in the token's environments even without other rights)",
    "changes:write": "open and transition change requests",
    ALL: "everything the account may do",
}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
KEYWORDS = ("token", "bearer")
LAST_USED_PRECISION = dt.timedelta(seconds=60)  # last_used_at is written at most once a minute per token
MAX_ENVIRONMENTS = 50


def hash_key(key):
    return hashlib.sha256(key.encode()).hexdigest()


def token_of(user):
    """The ApiToken a request's user authenticated with (None for a session or no authentication)."""
    return getattr(user, "_pm_token", None)


def environment_restriction(user):
    """The environment names the user's token is limited to, or None (no token, or no restriction)."""
    token = token_of(user)
    return frozenset(token.environments) if token is not None and token.environments else None


def has_scope(token, scope):
    return ALL in token.scopes or scope in token.scopes


def grants(user, scope, environment_name):
    """Whether the user's token itself grants ``scope`` in ``environment_name``: it has the scope and names the
    environment (a token without an environment restriction grants nothing beyond its account's rights)."""
    token = token_of(user)
    return (token is not None and scope in token.scopes and environment_name in (token.environments or ()))


# --- issuing, revoking -----------------------------------------------------------------------------------
def _validate(*, name, scopes, environments, expires_at, environment_exists):
    problems = {}
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        problems["name"] = ["a name of 1 to 100 characters, saying what uses the token (e.g. 'ci staging')"]
    if not isinstance(scopes, list | tuple) or not scopes or not all(isinstance(s, str) for s in scopes):
        problems["scopes"] = [f"a non-empty list of: {', '.join(SCOPES)}"]
    else:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            problems["scopes"] = [f"unknown scopes {', '.join(unknown)}; known: {', '.join(SCOPES)}"]
    if not isinstance(environments, list | tuple) or not all(isinstance(e, str) for e in environments) \
            or len(environments) > MAX_ENVIRONMENTS:
        problems["environments"] = [f"a list of up to {MAX_ENVIRONMENTS} environment names"]
    else:
        missing = sorted(e for e in set(environments) if not environment_exists(e))
        if missing:
            problems["environments"] = [f"no environment named {', '.join(missing)}"]
    if expires_at is not None and (not isinstance(expires_at, dt.datetime) or expires_at <= timezone.now()):
        problems["expires_at"] = ["a date and time in the future (or none: no expiry)"]
    if problems:
        raise errors.ValidationFailed("invalid token", field_errors=problems)


def token_problems(*, name, scopes, environments=(), expires_at=None, environment_exists=None):
    """What is wrong with a token's fields, per field ({} when nothing): the checks ``create_token`` makes, for a
    form to show beside its fields (the admin) before anything is issued."""
    from .delivery import environment_exists as registered

    try:
        _validate(name=name, scopes=scopes, environments=list(environments), expires_at=expires_at,
                  environment_exists=environment_exists or registered)
    except errors.ValidationFailed as exc:
        return dict(exc.field_errors)
    return {}


def _may_issue_for(by, user):
    if getattr(by, "is_superuser", False):
        return True
    return getattr(by, "pk", None) == user.pk and not is_service_account(user)


def issue_token(*, user, by, name="", scopes=(ALL,), environments=(), expires_at=None, environment_exists=None):
    """A new token for ``user`` without a permission check (the password exchange, commands, tests): returns
    the key only (shown once). ``create_token`` is the checked service. Audited, without the key."""
    token, key = create_token(user=user, by=by, name=name or "token", scopes=list(scopes),
                              environments=list(environments), expires_at=expires_at,
                              environment_exists=environment_exists, check_permission=False)
    return key


def create_token(*, user, by, name, scopes, environments=(), expires_at=None, environment_exists=None,
                 check_permission=True):
    """Issue a token: people for themselves, administrators for anyone (service accounts included). Returns
    ``(token, key)``; the key is not stored (only its hash) and not audited."""
    if check_permission and not _may_issue_for(by, user):
        raise errors.PermissionDenied("only an administrator may issue tokens for another account or a service "
                                      "account")
    if not user.is_active:
        raise errors.ValidationFailed(f"{user.get_username()} is inactive: it cannot be given a token")
    from .delivery import environment_exists as registered

    _validate(name=name, scopes=scopes, environments=list(environments), expires_at=expires_at,
              environment_exists=environment_exists or registered)
    stepup.require(by, "manage API tokens")
    # only a token made in its owner's own step-up session may later do a step-up action (pmrelease.identity)
    stepped_up = stepup.in_step_up_session(by) and getattr(by, "pk", None) == user.pk
    key = secrets.token_hex(20)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name.strip()[:100], prefix=key[:8], key_hash=hash_key(key),
                                        scopes=sorted(set(scopes)), environments=sorted(set(environments)),
                                        expires_at=expires_at, created_in_step_up=stepped_up)
        audit.record(action="apitoken.issue", obj=token, by=by,
                     after={"user": user.get_username(), "name": token.name, "prefix": token.prefix,
                            "scopes": token.scopes, "environments": token.environments,
                            "expires_at": expires_at.isoformat() if expires_at else None,
                            "created_in_step_up": stepped_up})
    return token, key


def revoke_token(*, token, by, reason=""):
    """Revoke a token (its owner or an administrator); audited. Revoking a revoked token is a 409."""
    if not (getattr(by, "is_superuser", False) or getattr(by, "pk", None) == token.user_id):
        raise errors.PermissionDenied("only the token's owner or an administrator may revoke it")
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            raise errors.TransitionNotAllowed(f"token {locked.prefix}… was revoked already, at "
                                              f"{locked.revoked_at:%Y-%m-%d %H:%M:%S} UTC by {locked.revoked_by}")
        locked.revoked_at, locked.revoked_by = timezone.now(), audit.actor_name(by)
        locked.save(update_fields=["revoked_at", "revoked_by"])
        audit.record(action="apitoken.revoke", obj=locked, by=by, reason=reason,
                     after={"name": locked.name, "prefix": locked.prefix})
    return locked


# --- service accounts ------------------------------------------------------------------------------------
def is_service_account(user):
    return ServiceAccount.objects.filter(user_id=user.pk).exists()


def service_account_problems(*, username, roles=()):
    """What is wrong with a new service account's name and roles, per field ({} when nothing)."""
    problems = {}
    username = (username or "").strip()
    if not username or len(username) > 150 or not all(c.isalnum() or c in "@.+-_" for c in username):
        problems["username"] = ["letters, digits and @ . + - _ only, up to 150 characters"]
    elif get_user_model().objects.filter(username=username).exists():
        problems["username"] = [f"an account named {username} exists"]
    missing = sorted(set(roles or []) - set(Group.objects.filter(name__in=list(roles or [])).values_list(
        "name", flat=True)))
    if missing:
        problems["roles"] = [f"no role named {', '.join(missing)}"]
    return problems


def service_account_create(*, username, roles, by, description=""):
    """A service account: a user with no usable password and no admin login, in the role groups named by
    ``roles`` (its environment access is theirs). Administrators only; audited."""
    if not getattr(by, "is_superuser", False):
        raise errors.PermissionDenied("only an administrator may create service accounts")
    User = get_user_model()
    username = (username or "").strip()
    problems = service_account_problems(username=username, roles=roles)
    if problems:
        raise errors.ValidationFailed("invalid service account", field_errors=problems)
    groups = list(Group.objects.filter(name__in=list(roles or [])))
    with transaction.atomic():
        user = User(username=username, is_staff=False, is_superuser=False, is_active=True)
        user.set_unusable_password()
        user.save()
        user.groups.set(groups)
        account = ServiceAccount.objects.create(user=user, description=description[:200],
                                                created_by=by if getattr(by, "pk", None) else None)
        audit.record(action="serviceaccount.create", obj=account, by=by,
                     after={"username": username, "roles": sorted(g.name for g in groups),
                            "description": account.description})
    return account


# --- authentication --------------------------------------------------------------------------------------
def required_scope(request, view):
    """The scope a request needs: ``read`` for safe methods; for a write, the view's ``token_scopes[action]``,
    else its ``token_write_scope``, else ``*``."""
    if request.method in SAFE_METHODS:
        return "read"
    action = getattr(view, "action", None)
    named = getattr(view, "token_scopes", {}) or {}
    if action in named:
        return named[action]
    return getattr(view, "token_write_scope", None) or ALL


def check_token(token, now=None):
    """Why ``token`` cannot authenticate now (raises AuthenticationFailed: 401), or nothing."""
    now = now or timezone.now()
    if token.revoked_at is not None:
        raise exceptions.AuthenticationFailed(
            f"token {token.prefix}… ({token.name}) was revoked at {token.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    if token.expires_at is not None and token.expires_at <= now:
        raise exceptions.AuthenticationFailed(
            f"token {token.prefix}… ({token.name}) expired at {token.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed("User inactive or deleted.")


def _touch(token, now):
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def authenticate_key(key):
    """(user, token) for a key, checked (revocation, expiry, active user) and its last use recorded; raises
    AuthenticationFailed. The user object carries the token (``token_of``)."""
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
    if token is None:
        raise exceptions.AuthenticationFailed("Invalid token.")
    now = timezone.now()
    check_token(token, now)
    _touch(token, now)
    user = token.user
    user._pm_token = token
    return user, token


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>`` (DRF's scheme) or ``Authorization: Bearer <key>`` against the hashed
    tokens, with the token's scopes checked against the view's (403 naming the scope needed)."""

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower().decode(errors="replace") not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: give the key after the word, with no "
                                                  "spaces in it.")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the key has invalid characters.") from None
        user, token = authenticate_key(key)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        needed = required_scope(request, view)
        if not has_scope(token, needed):
            raise exceptions.PermissionDenied(
                f"token '{token.name}' has scopes {', '.join(token.scopes) or 'none'}: "
                f"{request.method} {request.path} needs the '{needed}' scope")
        stepup.note_token(request, token)  # what the step-up check asks of this request
        return user, token

    def authenticate_credentials(self, key):
        return authenticate_key(key)

    def authenticate_header(self, request):
        return "Token"
