"""Sign-in with the company's IdP: OpenID Connect authorization code flow with PKCE (mozilla-django-oidc).

Configured by environment variables (README "Identity"): ``OIDC_ISSUER`` (its discovery document gives the
endpoints), ``OIDC_RP_CLIENT_ID`` / ``OIDC_RP_CLIENT_SECRET``, ``OIDC_RP_SCOPES`` and the claim names. Each sign-in
creates or updates the person from the claims (never with a password: ``set_unusable_password``), records their
``ExternalIdentity`` and synchronises their mapped roles from the groups claim (``rolemap.sync``). The IdP decides
who may get in: a person it refuses (removed, disabled) gets no session, and an existing session is re-checked with
the IdP (``prompt=none``) when the ID token expires (``SessionRefresh``).
"""
import logging
import time

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.utils import timezone
from django.utils.deprecation import MiddlewareMixin
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.middleware import SessionRefresh as _SessionRefresh
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from .. import audit
from ..models import ExternalIdentity, IdentitySource
from . import rolemap

log = logging.getLogger(__name__)

BACKEND = "pmrelease.identity.oidc.Backend"
_discovery = {}


class ProviderUnavailable(Exception):
    """The IdP's discovery document could not be read."""


def enabled():
    return bool(settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


def provider():
    """The IdP's endpoints: from its discovery document (cached per issuer), overridden by ``OIDC_OP_*``."""
    issuer = settings.OIDC_ISSUER.rstrip("/")
    if issuer not in _discovery:
        try:
            response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderUnavailable(f"the identity provider at {issuer} is unreachable: {exc}") from exc
        _discovery[issuer] = document
    found = dict(_discovery[issuer])
    for key, name in (("authorization_endpoint", "OIDC_OP_AUTHORIZATION_ENDPOINT"),
                      ("token_endpoint", "OIDC_OP_TOKEN_ENDPOINT"), ("userinfo_endpoint", "OIDC_OP_USER_ENDPOINT"),
                      ("jwks_uri", "OIDC_OP_JWKS_ENDPOINT"), ("end_session_endpoint", "OIDC_OP_LOGOUT_ENDPOINT")):
        if getattr(settings, name, ""):
            found[key] = getattr(settings, name)
    return found


def _claim(claims, name):
    value = claims
    for part in name.split("."):  # "realm_access.roles" (Keycloak)
        value = value.get(part) if isinstance(value, dict) else None
    return value


def groups_from(claims):
    value = _claim(claims, settings.OIDC_CLAIM_GROUPS)
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def shows_second_factor(claims):
    """Whether the ID token says the IdP checked a second factor (``acr`` in OIDC_STEP_UP_ACR or an ``amr`` in
    OIDC_STEP_UP_AMR)."""
    acr = claims.get("acr")
    amr = claims.get("amr") or []
    if isinstance(amr, str):
        amr = [amr]
    return (acr is not None and str(acr) in settings.OIDC_STEP_UP_ACR) or bool(
        set(map(str, amr)) & set(settings.OIDC_STEP_UP_AMR))


class Backend(OIDCAuthenticationBackend):
    """The IdP's people. Endpoints come from discovery, when a sign-in needs them (building the backend, as
    Django does for every session, costs nothing)."""

    def __init__(self, *args, **kwargs):  # noqa: D107 -- the base reads every endpoint from settings at once
        self.UserModel = get_user_model()

    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: provider()["token_endpoint"])
    OIDC_OP_USER_ENDPOINT = property(lambda self: provider().get("userinfo_endpoint"))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: provider()["jwks_uri"])
    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)
    OIDC_RP_CLIENT_SECRET = property(lambda self: settings.OIDC_RP_CLIENT_SECRET)
    OIDC_RP_SIGN_ALGO = property(lambda self: settings.OIDC_RP_SIGN_ALGO)
    OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request, **kwargs):
        if not enabled() or request is None or "code" not in request.GET:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except ProviderUnavailable as exc:
            log.warning("OIDC sign-in failed: %s", exc)
            request._pm_oidc_error = str(exc)
            return None
        except requests.RequestException as exc:
            log.warning("OIDC sign-in failed: %s", exc)
            request._pm_oidc_error = f"the identity provider did not answer: {exc}"
            return None

    def retrieve_matching_jwk(self, token):
        """The base matches keys by ``kid``; an IdP with one signing key may name none (oidc-provider-mock)."""
        import jwt

        if "kid" in jwt.get_unverified_header(token):
            return super().retrieve_matching_jwk(token)
        response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        keys = [k for k in response.json().get("keys", []) if k.get("use", "sig") == "sig"]
        if len(keys) != 1:
            raise SuspiciousOperation("the ID token names no key and the IdP has several: cannot choose one")
        return jwt.PyJWK(keys[0])

    def verify_token(self, token, **kwargs):
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if payload.get("iss", "").rstrip("/") != provider().get("issuer", settings.OIDC_ISSUER).rstrip("/"):
            raise SuspiciousOperation("the ID token's issuer is not the configured IdP")
        if settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the ID token is not for this client")
        if float(payload.get("exp", 0)) < time.time():
            raise SuspiciousOperation("the ID token has expired")
        self._id_claims = payload
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            claims.update(super().get_userinfo(access_token, id_token, payload))
        return claims

    def verify_claims(self, claims):
        return bool(claims.get("sub")) and bool(self._username(claims))

    def _username(self, claims):
        return str(_claim(claims, settings.OIDC_CLAIM_USERNAME) or claims.get("email") or "")[:150]

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(external_identity__source=IdentitySource.OIDC,
                                             external_identity__subject=claims["sub"])

    def create_user(self, claims):
        username = self._username(claims)
        if self.UserModel.objects.filter(username=username).exists():
            raise SuspiciousOperation(f"a local account named {username} exists: it is not taken over by the IdP")
        with transaction.atomic():
            user = self.UserModel(username=username, is_staff=True)
            user.set_unusable_password()  # an SSO person never has a password here
            self._apply(user, claims)
            ExternalIdentity.objects.create(user=user, source=IdentitySource.OIDC, subject=claims["sub"],
                                            last_sign_in_at=timezone.now())
            audit.record(action="identity.user.create", obj=user, by=user, object_repr=username,
                         after={"source": "oidc", "subject": claims["sub"], "email": user.email})
            self._sync(user, claims)
        return user

    def update_user(self, user, claims):
        with transaction.atomic():
            self._apply(user, claims)
            if user.has_usable_password():
                user.set_unusable_password()
                user.save(update_fields=["password"])
            ExternalIdentity.objects.filter(user=user).update(last_sign_in_at=timezone.now())
            self._sync(user, claims)
        return user

    def _apply(self, user, claims):
        user.email = str(_claim(claims, settings.OIDC_CLAIM_EMAIL) or "")[:254]
        user.first_name = str(claims.get("given_name") or "")[:150]
        user.last_name = str(claims.get("family_name") or "")[:150]
        user.save()

    def _sync(self, user, claims):
        rolemap.sync(user=user, source=IdentitySource.OIDC, groups=groups_from(claims))
        # what the sign-in proved, for the session (hygiene.on_login marks the step-up)
        self.request._pm_oidc_claims = {k: getattr(self, "_id_claims", {}).get(k)
                                        for k in ("acr", "amr", "auth_time", "exp")}


class AuthenticationRequestView(OIDCAuthenticationRequestView):
    """``/oidc/authenticate/``: off (404) without an IdP; an unreachable IdP is a message on the login page."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)

    OIDC_OP_AUTH_ENDPOINT = property(lambda self: provider()["authorization_endpoint"])
    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)

    def get(self, request):
        if not enabled():
            raise Http404("single sign-on is not configured")
        try:
            return super().get(request)
        except ProviderUnavailable as exc:
            messages.error(request, f"Single sign-on is unavailable ({exc}); sign in with a local account.")
            return HttpResponseRedirect(settings.LOGIN_URL)


class CallbackView(OIDCAuthenticationCallbackView):
    """The IdP's answer. A refusal (an error, a person it does not let in) is a message; the session lasts as
    long as the ID token says (then ``SessionRefresh`` asks the IdP again)."""

    def get(self, request):
        if not enabled():
            raise Http404("single sign-on is not configured")
        return super().get(request)

    def login_failure(self):
        request = self.request
        error = request.GET.get("error")
        why = getattr(request, "_pm_oidc_error", "") or (
            f"the identity provider refused the sign-in ({error})" if error else "the sign-in could not be verified")
        from . import hygiene

        hygiene.record_failure(request, username="", source="oidc", reason=why)
        messages.error(request, f"Single sign-on failed: {why}.")
        return HttpResponseRedirect(settings.LOGIN_URL)

    def login_success(self):
        response = super().login_success()
        claims = getattr(self.request, "_pm_oidc_claims", {}) or {}
        renew = time.time() + settings.OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS
        if claims.get("exp"):
            renew = min(renew, float(claims["exp"]))
        self.request.session["oidc_id_token_expiration"] = renew
        return response


class SessionRefresh(_SessionRefresh):
    """mozilla-django-oidc's: a session signed in through the IdP is re-checked with it (``prompt=none``) when its
    ID token expires; refused, the person is signed out. Endpoints are read when needed; without an IdP it does
    nothing."""

    def __init__(self, get_response):
        MiddlewareMixin.__init__(self, get_response)

    OIDC_EXEMPT_URLS = property(lambda self: settings.OIDC_EXEMPT_URLS)
    OIDC_OP_AUTHORIZATION_ENDPOINT = property(lambda self: provider()["authorization_endpoint"])
    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)
    OIDC_STATE_SIZE = 32
    OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
    OIDC_RP_SCOPES = property(lambda self: settings.OIDC_RP_SCOPES)
    OIDC_USE_NONCE = True
    OIDC_NONCE_SIZE = 32

    def is_refreshable_url(self, request):
        from django.contrib.auth import BACKEND_SESSION_KEY

        return (enabled() and request.session.get(BACKEND_SESSION_KEY) == BACKEND
                and super().is_refreshable_url(request))

    def process_request(self, request):
        try:
            return super().process_request(request)
        except ProviderUnavailable:
            return None  # an IdP outage does not sign anybody out before their ID token says so
