from django.urls import path
from mozilla_django_oidc.views import OIDCLogoutView

from . import oidc, otp

urlpatterns = [
    path("account/2fa/setup/", otp.setup_view, name="totp-setup"),
    path("account/step-up/", otp.step_up_view, name="step-up"),
    path("oidc/authenticate/", oidc.AuthenticationRequestView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc.CallbackView.as_view(), name="oidc_authentication_callback"),
    path("oidc/logout/", OIDCLogoutView.as_view(), name="oidc_logout"),
]
