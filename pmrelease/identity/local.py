"""Passwords. With ``LOCAL_LOGIN_ENABLED`` off only the break-glass accounts (``BREAK_GLASS_USERNAMES``) may sign
in with one: they keep working when the IdP is down. People from the IdP or the directory never sign in with a
password here (they have none)."""
from django.conf import settings
from django.contrib.auth.backends import ModelBackend


def is_break_glass(username):
    return bool(username) and username in settings.BREAK_GLASS_USERNAMES


def local_login_allowed(username):
    return settings.LOCAL_LOGIN_ENABLED or is_break_glass(username)


class LocalBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self.get_user_model_username_field())
        if not local_login_allowed(username):
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and hasattr(user, "external_identity"):
            return None  # an SSO or directory person: their source signs them in
        return user

    @staticmethod
    def get_user_model_username_field():
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD
