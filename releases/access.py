"""Per-environment access, enforced by services, the API and the admin alike."""
from pmrelease import errors, tokens
from pmrelease.identity import stepup
from pmrelease.roles import AccessLevel, Capability, Role, user_roles

from .models import DeploymentTier, Environment, EnvironmentAccess

# What changes production: in a production-tier environment (production, dr) these need a recent second factor.
STEP_UP_CAPABILITIES = (Capability.DEPLOY, Capability.CONFIGURE)


def access_levels(user):
    """{environment_id: level} for a user: the highest level any of their groups holds; a request through an
    API token restricted to environments has no access anywhere else (``pmrelease.tokens``)."""
    if not getattr(user, "is_authenticated", False):
        return {}
    cached = getattr(user, "_pm_access", None)
    if cached is not None:
        return cached
    if user.is_superuser:
        levels = {pk: AccessLevel.ADMIN for pk in Environment.objects.values_list("pk", flat=True)}
    else:
        levels = {}
        rows = EnvironmentAccess.objects.filter(group__user=user).values_list("environment_id", "level")
        for env_id, level in rows:
            levels[env_id] = max(levels.get(env_id, AccessLevel.NONE), level)
    restriction = tokens.environment_restriction(user)
    if restriction is not None:
        allowed = set(Environment.objects.filter(name__in=restriction).values_list("pk", flat=True))
        levels = {pk: level for pk, level in levels.items() if pk in allowed}
    user._pm_access = levels
    return levels


def access_level(user, environment):
    return AccessLevel(access_levels(user).get(environment.pk, AccessLevel.NONE))


def can(user, environment, capability):
    return access_level(user, environment) >= capability.value


def require(user, environments, capability):
    """Raise PermissionDenied naming the first environment where the user lacks the capability."""
    for env in environments:
        level = access_level(user, env)
        if level < capability.value:
            raise errors.PermissionDenied(
                f"{getattr(user, 'username', 'anonymous')} has {level.label} access to {env.name}; "
                f"to {capability.label} you need {AccessLevel(capability.value).label} access or more"
            )
    if capability in STEP_UP_CAPABILITIES:
        require_step_up(user, environments, capability.label)


def changes_production(environments):
    """The production-tier environments among ``environments`` (production and its disaster-recovery mirror)."""
    return [env for env in environments if env.tier == DeploymentTier.PRODUCTION]


def require_step_up(user, environments, what):
    """The one step-up check of the environment actions: a production-tier environment among ``environments``
    needs ``user``'s recent second factor (pmrelease.identity.stepup), anything else does not."""
    production = changes_production(environments)
    if production:
        stepup.require(user, f"{what} in {', '.join(env.name for env in production)}")


def may_report(user, environment):
    """Whether ``user`` may report testing-gate results in ``environment``: the REPORT capability, or an API
    token with the ``gates:report`` scope restricted to that environment (no other right needed)."""
    return tokens.grants(user, "gates:report", environment.name) or can(user, environment, Capability.REPORT)


def require_report(user, environment):
    if not may_report(user, environment):
        require(user, [environment], Capability.REPORT)


def report_environments(user):
    """The environments where ``user`` may report gate results through its token's own grant."""
    token = tokens.token_of(user)
    if token is None or "gates:report" not in token.scopes or not token.environments:
        return Environment.objects.none()
    return Environment.objects.filter(name__in=token.environments)


def visible_environments(user):
    levels = access_levels(user)
    ids = [pk for pk, level in levels.items() if level >= Capability.VIEW.value]
    return Environment.objects.filter(pk__in=ids)


def is_approver(user):
    return getattr(user, "is_superuser", False) or Role.APPROVERS.value in user_roles(user)


def forget(user):
    """Drop cached roles and access after a change to the user's groups."""
    for attr in ("_pm_access", "_pm_roles"):
        if hasattr(user, attr):
            delattr(user, attr)
