from django.conf import settings

from . import oidc


def identity(request):
    """What the login page offers (templates/admin/login.html)."""
    return {"sso_enabled": oidc.enabled(), "sso_name": settings.OIDC_PROVIDER_NAME,
            "local_login_enabled": settings.LOCAL_LOGIN_ENABLED}
