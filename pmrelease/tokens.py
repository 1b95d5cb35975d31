"""Personal API tokens, stored as a hash: issuing one (the key is returned once) and the DRF authentication
that keeps ``Authorization: Token <key>`` working. The keys are 160 random bits, so SHA-256 is enough (no slow
password hash): a stolen database does not give anyone a working key."""
import hashlib
import secrets

from django.db import transaction
from rest_framework import authentication, exceptions

from . import audit
from .identity import stepup
from .models import ApiToken


def hash_key(key):
    return hashlib.sha256(key.encode()).hexdigest()


def issue_token(*, user, by, name=""):
    """A new token for ``user``; returns its key (shown once: only its hash is kept). Audited, without the key."""
    stepup.require(by, "manage API tokens")
    key = secrets.token_hex(20)
    stepped_up = stepup.in_step_up_session(by) and by.pk == user.pk
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name[:100], prefix=key[:8], key_hash=hash_key(key),
                                        created_in_step_up=stepped_up)
        audit.record(action="apitoken.issue", obj=token, by=by,
                     after={"user": user.get_username(), "name": token.name, "prefix": token.prefix,
                            "created_in_step_up": stepped_up})
    return key


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Token`` scheme against the hashed tokens."""

    def authenticate_credentials(self, key):
        token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            stepup.note_token(request, result[1])  # what the step-up check asks of this request
        return result
