"""Secrets at rest: AES-256-GCM envelope encryption under a key from the environment, with key rotation.

Each value gets its own random data key; the value is sealed with it (AES-256-GCM), and the data key is
sealed with the current key-encryption key (AES-256-GCM too). A token names the key that sealed its data
key, so that after a rotation old tokens still open (``decrypt``) and ``rewrap`` moves them to the current key
without touching the sealed value.

Keys: ``settings.ENCRYPTION_KEYS`` (``PMR_ENCRYPTION_KEYS``): ``id:base64-of-32-bytes`` entries, comma
separated, the first one current. Unset, in the embedded mode: a random key made once in
``VAR_DIR/encryption.key`` (mode 0600, shared by web, worker and beat); with DATABASE_URL: one derived from
SECRET_KEY, so that the database alone never opens a secret (set real keys in production).

Token: ``pmr1:<key id>:<base64 nonce+sealed data key>:<base64 nonce+sealed value>``.
"""
import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "pmr1"
_cache = {}


class DecryptionFailed(Exception):
    """The token is malformed, was sealed by an unknown key, or was tampered with."""


def _b64(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_keys(text):
    """``id:base64key,...`` → [(id, 32 bytes)] (the first is current); raises ImproperlyConfigured."""
    keys = []
    for entry in [e.strip() for e in (text or "").split(",") if e.strip()]:
        kid, _, material = entry.partition(":")
        try:
            raw = _unb64(material.strip())
        except ValueError:
            raw = b""
        if not kid.strip().isalnum() or len(raw) != 32:
            raise ImproperlyConfigured("PMR_ENCRYPTION_KEYS: each entry is id:base64 of 32 random bytes "
                                       "(id letters and digits), e.g. k2:" + _b64(b"\0" * 32))
        keys.append((kid.strip(), raw))
    return keys


def _embedded_key(path):
    """The key in ``path``, made once (written aside and linked into place, as the audit key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(_b64(secrets.token_bytes(32)) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return _unb64(path.read_text().strip())


def keys():
    """[(id, key)], the current key first."""
    configured = getattr(settings, "ENCRYPTION_KEYS", "")
    cache_key = (configured, settings.SECRET_KEY, str(settings.VAR_DIR), settings.EMBEDDED)
    if cache_key not in _cache:
        if configured:
            _cache[cache_key] = parse_keys(configured)
        elif settings.EMBEDDED:
            _cache[cache_key] = [("local", _embedded_key(Path(settings.VAR_DIR) / "encryption.key"))]
        else:
            _cache[cache_key] = [("derived", hmac.new(settings.SECRET_KEY.encode(), b"pmrelease encryption key v1",
                                                      hashlib.sha256).digest())]
    return _cache[cache_key]


def _seal(key, plaintext, aad):
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key, sealed, aad):
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], aad)


def encrypt(plaintext, *, context=""):
    """Seal ``plaintext`` (str); ``context`` (e.g. "channel:slack") is bound to the token as associated data."""
    kid, kek = keys()[0]
    data_key = AESGCM.generate_key(bit_length=256)
    aad = context.encode()
    wrapped = _seal(kek, data_key, f"{PREFIX}:{kid}:{context}".encode())
    return ":".join((PREFIX, kid, _b64(wrapped), _b64(_seal(data_key, plaintext.encode(), aad))))


def _split(token):
    parts = (token or "").split(":")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise DecryptionFailed("not an encrypted value of this portal")
    return parts[1], _unb64(parts[2]), _unb64(parts[3])


def _data_key(kid, wrapped, context):
    known = dict(keys())
    if kid not in known:
        raise DecryptionFailed(f"sealed by key '{kid}', which is not among PMR_ENCRYPTION_KEYS")
    try:
        return _open(known[kid], wrapped, f"{PREFIX}:{kid}:{context}".encode())
    except InvalidTag:
        raise DecryptionFailed("the data key does not open (wrong key, context, or tampered)") from None


def decrypt(token, *, context=""):
    kid, wrapped, sealed = _split(token)
    try:
        return _open(_data_key(kid, wrapped, context), sealed, context.encode()).decode()
    except (InvalidTag, ValueError):
        raise DecryptionFailed("the value does not open (wrong context, or tampered)") from None


def key_id(token):
    return _split(token)[0]


def rewrap(token, *, context=""):
    """The same value with its data key sealed by the current key (unchanged when it already is)."""
    kid, wrapped, sealed = _split(token)
    current_id, current = keys()[0]
    if kid == current_id:
        return token
    data_key = _data_key(kid, wrapped, context)
    return ":".join((PREFIX, current_id, _b64(_seal(current, data_key, f"{PREFIX}:{current_id}:{context}".encode())),
                     _b64(sealed)))
