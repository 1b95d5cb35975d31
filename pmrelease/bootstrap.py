"""Idempotent set-up of the role groups and their model permissions (the access matrix per environment is
the releases app's: ``releases.bootstrap``). Runs after every ``migrate`` (``post_migrate`` of the last
installed app, once the permissions of every app exist), so a fresh portal has its role groups without
``seed_demo``."""
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from .roles import ROLE_MODEL_PERMISSIONS, Role


def ensure_role_groups():
    """The role groups, each holding (at least) its model permissions: {name: group}."""
    dotted = {d for role in Role for d in ROLE_MODEL_PERMISSIONS.get(role, [])}
    wanted = Q(pk__in=[])
    for name in dotted:
        app_label, codename = name.split(".")
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    perms = {f"{p.content_type.app_label}.{p.codename}": p
             for p in Permission.objects.filter(wanted).select_related("content_type")}
    groups = {}
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role.value)
        found = [perms[d] for d in ROLE_MODEL_PERMISSIONS.get(role, []) if d in perms]
        if found:
            group.permissions.add(*found)
        groups[role.value] = group
    return groups


def after_migrate(sender, using="default", **kwargs):
    """``post_migrate`` receiver: the role groups, once per migrate (or test flush), after the last app's
    permissions were created."""
    from django.db import router

    if sender is list(apps.get_app_configs())[-1] and router.allow_migrate_model(using, Group):
        ensure_role_groups()
