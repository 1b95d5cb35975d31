"""A request's evidence for the step-up check, without HTTP (the services read it from a context variable)."""
import contextlib

from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory

from pmrelease.identity import stepup


@contextlib.contextmanager
def session_of(user, *, stepped_up=False):
    """Run the block as ``user``'s signed-in session, with or without a recent second factor."""
    request = RequestFactory().get("/admin/")
    request.user = user
    request.session = SessionStore()
    if stepped_up:
        stepup.mark_session(request, method="totp")
    token = stepup.set_evidence(stepup.Evidence(kind="session", user_id=user.pk, request=request))
    try:
        yield request
    finally:
        stepup.reset(token)
