"""Idempotent set-up of the role groups and their model permissions (the access matrix per environment is
the releases app's: ``releases.bootstrap``)."""
from django.contrib.auth.models import Group, Permission

from .roles import ROLE_MODEL_PERMISSIONS, Role


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
