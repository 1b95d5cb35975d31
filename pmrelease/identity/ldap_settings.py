"""django-auth-ldap's settings from the environment (imported by pmrelease.settings only when AUTH_LDAP_SERVER_URI
is set, so that python-ldap stays an optional extra)."""


def from_env(env):
    import ldap
    from django_auth_ldap.config import GroupOfNamesType, LDAPSearch

    settings = {
        "AUTH_LDAP_BIND_DN": env.str("AUTH_LDAP_BIND_DN", default=""),
        "AUTH_LDAP_BIND_PASSWORD": env.str("AUTH_LDAP_BIND_PASSWORD", default=""),
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(env.str("AUTH_LDAP_USER_BASE"), ldap.SCOPE_SUBTREE,
                                            env.str("AUTH_LDAP_USER_FILTER", default="(uid=%(user)s)")),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(env.str("AUTH_LDAP_GROUP_BASE"), ldap.SCOPE_SUBTREE,
                                             env.str("AUTH_LDAP_GROUP_FILTER", default="(objectClass=groupOfNames)")),
        "AUTH_LDAP_GROUP_TYPE": GroupOfNamesType(name_attr="cn"),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_FIND_GROUP_PERMS": False,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,  # group changes take effect at the next sign-in
        "AUTH_LDAP_START_TLS": env.bool("AUTH_LDAP_START_TLS", default=False),
        "AUTH_LDAP_CONNECTION_OPTIONS": {ldap.OPT_NETWORK_TIMEOUT: env.float("AUTH_LDAP_TIMEOUT", default=5)},
    }
    deny = env.str("AUTH_LDAP_DENY_GROUP", default="")
    if deny:
        settings["AUTH_LDAP_DENY_GROUP"] = deny
    require = env.str("AUTH_LDAP_REQUIRE_GROUP", default="")
    if require:
        settings["AUTH_LDAP_REQUIRE_GROUP"] = require
    return settings
