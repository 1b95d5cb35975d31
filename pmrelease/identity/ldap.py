"""The directory alternative to OIDC (django-auth-ldap, the optional ``ldap`` extra): bind as the person (after a
user search), read their groups with a group search, and synchronise their mapped roles from the groups' names
(cn) and DNs. Settings come from the environment (``AUTH_LDAP_*``, pmrelease.settings); a person the directory
refuses (wrong password, removed, in ``AUTH_LDAP_DENY_GROUP``) gets no session. Directory people have no password
here: django-auth-ldap never stores it."""
from django.db import transaction
from django.utils import timezone
from django_auth_ldap.backend import LDAPBackend

from .. import audit
from ..models import ExternalIdentity, IdentitySource
from . import rolemap

BACKEND = "pmrelease.identity.ldap.Backend"


class Backend(LDAPBackend):
    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        with transaction.atomic():
            if user.has_usable_password() or not user.is_staff:
                user.set_unusable_password()
                user.is_staff = True  # the portal is the admin: everyone signs in there
                user.save(update_fields=["password", "is_staff"])
            identity, created = ExternalIdentity.objects.update_or_create(
                user=user, defaults={"source": IdentitySource.LDAP, "subject": ldap_user.dn,
                                     "last_sign_in_at": timezone.now()})
            if created:
                audit.record(action="identity.user.create", obj=user, by=user, object_repr=user.get_username(),
                             after={"source": "ldap", "subject": ldap_user.dn, "email": user.email})
            groups = sorted(set(ldap_user.group_names) | set(ldap_user.group_dns))
            rolemap.sync(user=user, source=IdentitySource.LDAP, groups=groups)
        return user
