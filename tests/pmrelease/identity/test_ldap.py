"""Sign-in through a real OpenLDAP (slapd): bind after a user search, groups from a group search mapped to roles,
a role lost when the group membership is removed, refused when disabled in the directory; no password stored."""
import environ
import pytest
from django.contrib.auth import get_user_model

from pmrelease.models import AuditEvent, ExternalIdentity, RoleMapping

from .directory import ADMIN_DN, ADMIN_PASSWORD, BASE, needs_ldap, slapd

pytestmark = [pytest.mark.integration, pytest.mark.django_db, needs_ldap]

DORA = f"uid=dora,ou=people,{BASE}"


@pytest.fixture
def directory(tmp_path, settings, monkeypatch, groups):
    from pmrelease.identity import ldap_settings

    with slapd(tmp_path) as (uri, conn):
        for name, value in {"AUTH_LDAP_BIND_DN": ADMIN_DN, "AUTH_LDAP_BIND_PASSWORD": ADMIN_PASSWORD,
                            "AUTH_LDAP_USER_BASE": f"ou=people,{BASE}", "AUTH_LDAP_GROUP_BASE": f"ou=groups,{BASE}",
                            "AUTH_LDAP_DENY_GROUP": f"cn=portal-disabled,ou=groups,{BASE}"}.items():
            monkeypatch.setenv(name, value)
        settings.AUTH_LDAP_SERVER_URI = uri
        for name, value in ldap_settings.from_env(environ.Env()).items():
            setattr(settings, name, value)
        settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "pmrelease.identity.ldap.Backend"]
        RoleMapping.objects.create(source="ldap", group_name="portal-approvers", role="approvers")
        RoleMapping.objects.create(source="ldap", group_name=f"cn=portal-ops,ou=groups,{BASE}", role="operations")
        yield conn


def _sign_in(client, password="dora-pw-123"):
    client.logout()
    return client.post("/admin/login/?next=/admin/", {"username": "dora", "password": password})


def test_ldap__groups_map_to_roles__role_lost__refused_when_disabled(client, directory):
    import ldap

    assert _sign_in(client).status_code == 302
    dora = get_user_model().objects.get(username="dora")
    assert dora.email == "dora@penguinmails.test" and dora.is_staff
    assert set(dora.groups.values_list("name", flat=True)) == {"approvers", "operations"}
    assert ExternalIdentity.objects.get(user=dora).subject == DORA
    assert not dora.has_usable_password()
    assert AuditEvent.objects.filter(action="auth.login", object_id=str(dora.pk), after__source="ldap").exists()
    assert _sign_in(client, "wrong").status_code == 200

    # removed from portal-ops in the directory: the next sign-in takes operations away
    directory.modify_s(f"cn=portal-ops,ou=groups,{BASE}", [(ldap.MOD_ADD, "member", [ADMIN_DN.encode()]),
                                                          (ldap.MOD_DELETE, "member", [DORA.encode()])])
    assert _sign_in(client).status_code == 302
    assert set(dora.groups.values_list("name", flat=True)) == {"approvers"}
    lost = AuditEvent.objects.get(action="identity.role.lost", object_id=str(dora.pk))
    assert lost.before == {"role": "operations", "source": "ldap"}

    # disabled in the directory (the deny group): refused, no session
    directory.modify_s(f"cn=portal-disabled,ou=groups,{BASE}", [(ldap.MOD_ADD, "member", [DORA.encode()])])
    assert _sign_in(client).status_code == 200
    assert "_auth_user_id" not in client.session
