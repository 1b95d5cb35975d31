"""A fresh portal has its role groups after ``migrate`` alone (no ``seed_demo``): the post_migrate receiver."""
import pytest
from django.contrib.auth.models import Group
from django.core.management.sql import emit_post_migrate_signal

from pmrelease.roles import ROLE_MODEL_PERMISSIONS, Role


def _held():
    return {g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.select_related("content_type")}
            for g in Group.objects.all()}


@pytest.mark.django_db
def test_migrate__role_groups_exist_with_their_permissions():
    held = _held()  # this database was made by migrate; the fixtures that make groups are not used here
    for role in Role:
        assert role.value in held
        assert set(ROLE_MODEL_PERMISSIONS.get(role, [])) <= held[role.value], role


@pytest.mark.django_db
def test_post_migrate_again__idempotent_and_restores_a_removed_permission():
    group = Group.objects.get(name=Role.DEVELOPERS.value)
    group.permissions.clear()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")  # what every migrate ends with
    held = _held()
    assert set(ROLE_MODEL_PERMISSIONS[Role.DEVELOPERS]) <= held[Role.DEVELOPERS.value]
    assert Group.objects.filter(name=Role.DEVELOPERS.value).count() == 1
