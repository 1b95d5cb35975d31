"""A real OpenLDAP (Debian's slapd) on a free port, loaded with a small LDIF: people and groupOfNames groups."""
import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .idp import free_port

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
BASE = "dc=penguinmails,dc=test"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PASSWORD = "directory-admin-pw"

# Skipped on a bare machine (no python-ldap: it needs libldap2-dev/libsasl2-dev to build; no slapd); in CI (CI set,
# .ci/run installs them) a missing one is a failure.
try:
    import ldap  # noqa: F401
    HAVE_LDAP = True
except ImportError:
    HAVE_LDAP = False
needs_ldap = pytest.mark.skipif(
    not os.environ.get("CI") and not (HAVE_LDAP and os.path.exists(SLAPD)),
    reason="no python-ldap (the ldap extra builds against libldap2-dev and libsasl2-dev) or no slapd: "
           "apt-get install libldap2-dev libsasl2-dev slapd, then make install-test (CI does)")

LDIF = f"""dn: {BASE}
objectClass: dcObject
objectClass: organization
o: PenguinMails
dc: penguinmails

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE}
objectClass: organizationalUnit
ou: groups

dn: uid=dora,ou=people,{BASE}
objectClass: inetOrgPerson
uid: dora
cn: Dora Directory
sn: Directory
givenName: Dora
mail: dora@penguinmails.test
userPassword: dora-pw-123

dn: cn=portal-approvers,ou=groups,{BASE}
objectClass: groupOfNames
cn: portal-approvers
member: uid=dora,ou=people,{BASE}

dn: cn=portal-ops,ou=groups,{BASE}
objectClass: groupOfNames
cn: portal-ops
member: uid=dora,ou=people,{BASE}

dn: cn=portal-disabled,ou=groups,{BASE}
objectClass: groupOfNames
cn: portal-disabled
member: {ADMIN_DN}
"""


@contextlib.contextmanager
def slapd(tmp_path):
    root = Path(tmp_path) / "slapd"
    (root / "db").mkdir(parents=True)
    schema = "/etc/ldap/schema"
    modules = "/usr/lib/ldap"
    conf = root / "slapd.conf"
    conf.write_text("\n".join([
        *(f"include {schema}/{name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")),
        f"pidfile {root}/slapd.pid",
        f"modulepath {modules}",
        "moduleload back_mdb",
        "database mdb",
        "maxsize 10485760",
        f'suffix "{BASE}"',
        f'rootdn "{ADMIN_DN}"',
        f"rootpw {ADMIN_PASSWORD}",
        f"directory {root}/db",
        "",
    ]))
    port = free_port()
    uri = f"ldap://127.0.0.1:{port}"
    process = subprocess.Popen([SLAPD, "-f", str(conf), "-h", f"{uri}/", "-d", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import ldap
        import ldap.modlist

        for _ in range(100):
            try:
                conn = ldap.initialize(uri)
                conn.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
                break
            except ldap.SERVER_DOWN:
                if process.poll() is not None:
                    raise RuntimeError(f"slapd exited: {process.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.1)
        else:
            raise RuntimeError("slapd did not start")
        for block in LDIF.strip().split("\n\n"):
            lines = block.splitlines()
            dn = lines[0].split(": ", 1)[1]
            attrs = {}
            for line in lines[1:]:
                key, value = line.split(": ", 1)
                attrs.setdefault(key, []).append(value.encode())
            conn.add_s(dn, ldap.modlist.addModlist(attrs))
        yield uri, conn
    finally:
        process.terminate()
        process.wait(timeout=10)
