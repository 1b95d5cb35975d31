"""Who may operate the status page: superusers, the operations role, or holders of monitoring.change_incident."""
from pmrelease import errors
from pmrelease.roles import Role, user_roles


def can_operate(user):
    """Operators of the status page: superusers, the operations role, or holders of change_incident."""
    if not getattr(user, "is_authenticated", False):
        return False
    return (user.is_superuser or Role.OPERATIONS.value in user_roles(user)
            or user.has_perm("monitoring.change_incident"))


def require_operator(by):
    if by is None:  # the system itself (deployment engine, beat)
        return
    if not can_operate(by):
        raise errors.PermissionDenied(
            f"{getattr(by, 'username', 'anonymous')} may not operate the status page "
            f"(needs the '{Role.OPERATIONS.value}' role or the monitoring.change_incident permission)")
