"""The second factor: TOTP enrolment (django-otp's TOTPDevice, the QR code drawn by segno) and the step-up prompt.
A verified code marks the session as stepped up (``stepup.mark_session``) for ``STEP_UP_MAX_AGE`` seconds."""
import base64

import segno
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from .. import audit
from . import stepup


class CodeForm(forms.Form):
    token = forms.RegexField(regex=r"^\d{6}$", label="6-digit code", strip=True,
                             error_messages={"invalid": "Enter the 6 digits your authenticator app shows."},
                             widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                           "autofocus": True, "size": 8}))


def _next(request):
    target = request.POST.get("next") or request.GET.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        return "/admin/"
    return target


def confirmed_device(user):
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def enrolment_device(user):
    """The unconfirmed device being enrolled (made on first use)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=False)
    return device


def confirm(*, request, device, token):
    """Confirm an enrolment with its first code; marks the session stepped up. Returns whether it verified."""
    if not device.verify_token(token):
        audit.record(action="identity.totp.enrol_failure", obj=request.user, by=request.user,
                     object_repr=request.user.get_username())
        return False
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=request.user, confirmed=False).delete()
        audit.record(action="identity.totp.enrol", obj=request.user, by=request.user,
                     object_repr=request.user.get_username(), after={"device": device.name})
    otp_login(request, device)
    stepup.mark_session(request, method="totp")
    return True


def verify(*, request, token):
    """A step-up: the code of the person's confirmed device. Returns whether it verified (audited both ways)."""
    device = confirmed_device(request.user)
    ok = device is not None and device.verify_token(token)
    audit.record(action="identity.step_up" if ok else "identity.step_up_failure", obj=request.user, by=request.user,
                 object_repr=request.user.get_username(), after={"method": "totp"})
    if ok:
        otp_login(request, device)
        stepup.mark_session(request, method="totp")
    return ok


def _qr_svg(url):
    return segno.make(url, error="m").svg_data_uri(scale=4)


@login_required
def setup_view(request):
    """``/account/2fa/setup/``: scan the code, type the first code it shows."""
    if confirmed_device(request.user) is not None and request.method == "GET" and "again" not in request.GET:
        return redirect(f"{settings.STEP_UP_URL}?next={_next(request)}")
    device = enrolment_device(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if confirm(request=request, device=device, token=form.cleaned_data["token"]):
            return redirect(_next(request))
        form.add_error("token", "That code is not right (or has expired): try the current one.")
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return render(request, "identity/totp_setup.html", {
        "form": form, "qr": _qr_svg(device.config_url), "secret": secret, "next": _next(request),
        "title": "Set up a second factor", "site_header": "PenguinMails Release Portal"})


@login_required
def step_up_view(request):
    """``/account/step-up/``: the second-factor prompt before an action that changes production."""
    if confirmed_device(request.user) is None:
        return redirect(f"{settings.TOTP_SETUP_URL}?next={_next(request)}")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if verify(request=request, token=form.cleaned_data["token"]):
            return redirect(_next(request))
        form.add_error("token", "That code is not right (or has expired): try the current one.")
    minutes = max(1, settings.STEP_UP_MAX_AGE // 60)
    return render(request, "identity/step_up.html", {
        "form": form, "next": _next(request), "minutes": minutes, "title": "Confirm it is you",
        "site_header": "PenguinMails Release Portal"}, status=200 if request.method == "GET" or form.is_valid() else 400)
