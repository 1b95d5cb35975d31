"""Idempotent set-up of the role groups, their permissions, and the environments' access matrix."""
from django.contrib.auth.models import Group, Permission

from .roles import DEFAULT_ACCESS_MATRIX, ROLE_MODEL_PERMISSIONS, AccessLevel, Role


def ensure_role_groups():
    groups = {}
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role.value)
        wanted = []
        for dotted in ROLE_MODEL_PERMISSIONS.get(role, []):
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is not None:
                wanted.append(perm)
        group.permissions.add(*wanted)
        groups[role.value] = group
    return groups


def ensure_access_matrix(environments, groups):
    """Create the seed's default access rows that do not exist yet (operator edits are kept)."""
    from releases.models import EnvironmentAccess

    for env in environments:
        for role, level in DEFAULT_ACCESS_MATRIX.get(env.name, {}).items():
            EnvironmentAccess.objects.get_or_create(
                environment=env, group=groups[role.value], defaults={"level": AccessLevel(level)},
            )
