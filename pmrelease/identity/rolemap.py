"""Portal roles from the groups of the IdP or the directory.

A mapping says which source group gives which role (``RoleMapping`` rows, edited by administrators through
``mapping_save`` / ``mapping_delete``, plus ``settings.ROLE_MAPPINGS`` from the environment). At each sign-in
``sync`` makes the person's mapped role memberships follow their groups at the source: roles gained are added,
mapped roles no longer justified are removed, each change audited (who, which role, gained or lost, from which
source and groups). A role that any mapping names is *managed*: editing its memberships by hand is refused
(``check_manual_edit``, called by the admin form and the membership signal) with a message naming the source.
"""
import contextlib
import contextvars

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from .. import audit, errors
from ..models import IdentitySource, RoleGrant, RoleMapping
from ..roles import Role
from . import stepup

_syncing = contextvars.ContextVar("pm_role_sync", default=False)


def _fold(name):
    return str(name).strip().casefold()


def mappings(source=None):
    """[(source, group_name, role)]: the stored mappings and the environment's (``ROLE_MAPPINGS``)."""
    rows = [(m.source, m.group_name, m.role) for m in RoleMapping.objects.all()]
    rows += [(m["source"], m["group"], m["role"]) for m in settings.ROLE_MAPPINGS]
    return [row for row in rows if source is None or row[0] == source]


def managed_roles():
    """{role: sorted sources} of every role a mapping names."""
    result = {}
    for src, _group, role in mappings():
        result.setdefault(role, set()).add(src)
    return {role: sorted(sources) for role, sources in result.items()}


def validate_mapping(*, source, group_name, role):
    problems = {}
    if source not in IdentitySource.values:
        problems["source"] = [f"'{source}' is not a source: use one of {', '.join(IdentitySource.values)}"]
    if not str(group_name or "").strip():
        problems["group_name"] = ["This field is required."]
    elif len(str(group_name)) > 255:
        problems["group_name"] = ["at most 255 characters"]
    if role not in Role.values:
        problems["role"] = [f"'{role}' is not a role: use one of {', '.join(Role.values)}"]
    if problems:
        raise errors.ValidationFailed("; ".join(f"{k}: {v[0]}" for k, v in problems.items()), field_errors=problems)


def mapping_save(*, by, source, group_name, role, mapping=None):
    """Create (or edit) a mapping: administrators only, with a recent second factor. Audited."""
    _require_admin(by)
    validate_mapping(source=source, group_name=group_name, role=role)
    group_name = str(group_name).strip()
    with transaction.atomic():
        duplicate = RoleMapping.objects.filter(source=source, group_name=group_name, role=role)
        if mapping is not None:
            duplicate = duplicate.exclude(pk=mapping.pk)
        if duplicate.exists():
            raise errors.ValidationFailed(f"{source} group '{group_name}' is already mapped to {role}",
                                          field_errors={"group_name": ["already mapped to this role"]})
        before = None
        if mapping is None:
            mapping = RoleMapping(source=source, group_name=group_name, role=role)
        else:
            before = {"source": mapping.source, "group_name": mapping.group_name, "role": mapping.role}
            mapping.source, mapping.group_name, mapping.role = source, group_name, role
        mapping.save()
        audit.record(action="identity.mapping.save", obj=mapping, by=by, before=before,
                     after={"source": source, "group_name": group_name, "role": role})
    return mapping


def mapping_delete(*, by, mapping):
    _require_admin(by)
    with transaction.atomic():
        audit.record(action="identity.mapping.delete", obj=mapping, by=by,
                     before={"source": mapping.source, "group_name": mapping.group_name, "role": mapping.role})
        mapping.delete()


def _require_admin(by):
    if not getattr(by, "is_superuser", False):
        raise errors.PermissionDenied("only an administrator may change the role mappings")
    stepup.require(by, "change the role mappings")


def roles_for(source, groups):
    """{role: sorted source groups giving it} for a person in ``groups`` at ``source``."""
    present = {_fold(g): g for g in groups}
    result = {}
    for _src, group_name, role in mappings(source):
        if _fold(group_name) in present:
            result.setdefault(role, set()).add(present[_fold(group_name)])
    return {role: sorted(names) for role, names in result.items()}


@contextlib.contextmanager
def _sync_context():
    token = _syncing.set(True)
    try:
        yield
    finally:
        _syncing.reset(token)


def sync(*, user, source, groups):
    """Make ``user``'s mapped roles follow their ``groups`` at ``source`` (a sign-in). Returns
    (gained, lost) role names. Audited per role; roles no mapping of this source names are left alone."""
    wanted = roles_for(source, groups)
    source_roles = {role for _s, _g, role in mappings(source)}
    role_groups = {g.name: g for g in Group.objects.filter(name__in=source_roles | set(wanted))}
    gained, lost = [], []
    with transaction.atomic(), _sync_context():
        current = set(user.groups.filter(name__in=source_roles).values_list("name", flat=True))
        grants = {g.role: g for g in RoleGrant.objects.filter(user=user)}
        for role, names in sorted(wanted.items()):
            group = role_groups.get(role)
            if group is None:
                continue  # a mapping to a role whose group does not exist (yet): nothing to join
            grant = grants.get(role)
            if grant is None:
                RoleGrant.objects.create(user=user, role=role, source=source, groups=names)
            elif grant.groups != names or grant.source != source:
                grant.groups, grant.source = names, source
                grant.save(update_fields=["groups", "source"])
            if role not in current:
                user.groups.add(group)
                gained.append(role)
                audit.record(action="identity.role.gained", obj=user, by=user, object_repr=user.get_username(),
                             after={"role": role, "source": source, "groups": names})
        for role in sorted(current - set(wanted)):
            user.groups.remove(role_groups[role])
            RoleGrant.objects.filter(user=user, role=role).delete()
            lost.append(role)
            audit.record(action="identity.role.lost", obj=user, by=user, object_repr=user.get_username(),
                         before={"role": role, "source": source}, after={"groups": sorted(groups)[:50]})
    for attr in ("_pm_access", "_pm_roles"):
        if hasattr(user, attr):
            delattr(user, attr)
    return gained, lost


def check_manual_edit(role_names):
    """Refuse a hand edit of memberships in a mapped role, naming its source (outside ``sync``)."""
    if _syncing.get():
        return
    managed = managed_roles()
    touched = sorted(name for name in role_names if name in managed)
    if touched:
        where = "; ".join(f"{role} follows {' and '.join(managed[role])} groups" for role in touched)
        raise errors.ValidationFailed(
            f"membership of a mapped role is managed by its source ({where}): change the person's groups "
            "there; it takes effect at their next sign-in", field_errors={"groups": [where]})
