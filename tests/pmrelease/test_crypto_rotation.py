"""Secrets at rest (pmrelease.crypto): tamper detection byte by byte, and ``manage.py rotate_encryption_key``
re-wrapping every stored value under the new key while the old one stays readable for the grace period."""
import base64
import io

import pytest
from django.core.management import call_command

from pmrelease import crypto, delivery
from pmrelease.models import Channel

pytestmark = pytest.mark.django_db


def key(kid, byte):
    return f"{kid}:{base64.urlsafe_b64encode(bytes([byte]) * 32).decode()}"


def _flip(token, part):
    pieces = token.split(":")
    raw = bytearray(crypto._unb64(pieces[part]))
    raw[len(raw) // 2] ^= 0x01
    pieces[part] = crypto._b64(bytes(raw))
    return ":".join(pieces)


@pytest.mark.parametrize("part", [2, 3], ids=["sealed data key", "sealed value"])
def test_crypto__one_flipped_byte__refused(settings, part):
    settings.ENCRYPTION_KEYS = key("k1", 1)
    token = crypto.encrypt("xoxb-not-really-a-token", context="t")
    assert crypto.decrypt(token, context="t") == "xoxb-not-really-a-token"
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(_flip(token, part), context="t")


def test_crypto__aes_256_gcm_envelope__a_data_key_per_value(settings):
    settings.ENCRYPTION_KEYS = key("k1", 1)
    a, b = crypto.encrypt("same", context="t"), crypto.encrypt("same", context="t")
    assert a != b and a.split(":")[2] != b.split(":")[2]  # fresh data key and nonce each time
    assert len(crypto._unb64(a.split(":")[2])) == 12 + 32 + 16  # nonce + 256-bit data key + GCM tag


def test_crypto__masked__dots_and_last_four():
    assert crypto.masked("https://hooks.example/T000/abcd1234") == "••••1234"
    assert crypto.masked("short") == "••••"


def test_rotate_encryption_key__rewraps_stored_values_old_key_readable_until_retired(settings, make_user):
    admin = make_user("root", superuser=True)
    settings.ENCRYPTION_KEYS = key("k1", 1)
    channel = delivery.channel_save(data={"name": "ops", "url": "json://hooks.example/ops-secret-path"}, by=admin)
    old_token = Channel.objects.get(pk=channel.pk).url_encrypted
    assert crypto.key_id(old_token) == "k1"
    settings.ENCRYPTION_KEYS = f"{key('k2', 2)},{key('k1', 1)}"  # grace period: both keys open values
    assert delivery.channel_url(Channel.objects.get(pk=channel.pk)) == "json://hooks.example/ops-secret-path"
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "delivery channels: 1 re-wrapped under key k2" in out.getvalue()
    assert "k1 may be removed" in out.getvalue()
    new_token = Channel.objects.get(pk=channel.pk).url_encrypted
    assert crypto.key_id(new_token) == "k2" and new_token.split(":")[3] == old_token.split(":")[3]
    settings.ENCRYPTION_KEYS = key("k2", 2)  # the old key retired
    assert delivery.channel_url(Channel.objects.get(pk=channel.pk)) == "json://hooks.example/ops-secret-path"
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(old_token, context=f"channel:{channel.name}")
