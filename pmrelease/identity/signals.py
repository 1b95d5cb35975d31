"""Receivers (connected in PmreleaseConfig.ready): the sign-in audit trail and the guard on mapped roles."""
from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed

from . import hygiene, rolemap


def guard_mapped_roles(sender, instance, action, reverse, pk_set, **kwargs):
    """A hand edit of a mapped role's memberships (user.groups.add/remove/clear, group.user_set...) is refused."""
    if action not in ("pre_add", "pre_remove", "pre_clear"):
        return
    if reverse:  # group.user_set: the group is the instance
        names = [instance.name]
    elif pk_set is None:  # clear
        names = list(instance.groups.values_list("name", flat=True))
    else:
        names = list(Group.objects.filter(pk__in=pk_set).values_list("name", flat=True))
    rolemap.check_manual_edit(names)


def connect():
    user_logged_in.connect(hygiene.on_login, dispatch_uid="pm-identity-login")
    user_logged_out.connect(hygiene.on_logout, dispatch_uid="pm-identity-logout")
    user_login_failed.connect(hygiene.on_failure, dispatch_uid="pm-identity-failure")
    user_locked_out.connect(hygiene.on_lockout, dispatch_uid="pm-identity-lockout")
    m2m_changed.connect(guard_mapped_roles, sender=get_user_model().groups.through, dispatch_uid="pm-identity-roles")
