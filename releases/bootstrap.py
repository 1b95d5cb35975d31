"""Idempotent set-up of the seed's access matrix: which role group holds which level in each environment."""
from pmrelease.roles import AccessLevel, Role

from .models import EnvironmentAccess, RollbackTrigger

# The seed's access matrix, per environment name: role -> level. Roles not named get NONE.
DEFAULT_ACCESS_MATRIX = {
    "local": {
        Role.DEVELOPERS: AccessLevel.FULL,
        Role.QA: AccessLevel.READ,
        Role.OPERATIONS: AccessLevel.ADMIN,
    },
    "development": {
        Role.DEVELOPERS: AccessLevel.FULL,
        Role.QA: AccessLevel.READ,
        Role.SECURITY: AccessLevel.READ,  # automated scanning
        Role.PRODUCT: AccessLevel.READ,
        Role.APPROVERS: AccessLevel.READ,
        Role.OPERATIONS: AccessLevel.ADMIN,
    },
    "qa": {
        Role.DEVELOPERS: AccessLevel.LIMITED,
        Role.QA: AccessLevel.FULL,
        Role.PRODUCT: AccessLevel.READ,
        Role.SECURITY: AccessLevel.READ,
        Role.APPROVERS: AccessLevel.READ,
        Role.OPERATIONS: AccessLevel.ADMIN,
    },
    "staging": {
        Role.DEVELOPERS: AccessLevel.LIMITED,
        Role.QA: AccessLevel.FULL,  # full testing access
        Role.PRODUCT: AccessLevel.READ,  # demo access
        Role.SECURITY: AccessLevel.READ,  # full monitoring
        Role.APPROVERS: AccessLevel.READ,
        Role.OPERATIONS: AccessLevel.ADMIN,
    },
    "production": {
        Role.SUPPORT: AccessLevel.LIMITED,  # limited debugging access
        Role.SECURITY: AccessLevel.READ,  # 24/7 monitoring
        Role.APPROVERS: AccessLevel.READ,
        Role.OPERATIONS: AccessLevel.ADMIN,
    },
    "dr": {
        Role.SECURITY: AccessLevel.READ,
        Role.APPROVERS: AccessLevel.READ,
        Role.OPERATIONS: AccessLevel.ADMIN,
    },
}


def ensure_access_matrix(environments, groups):
    """Create the seed's default access rows that do not exist yet (operator edits are kept)."""
    for env in environments:
        for role, level in DEFAULT_ACCESS_MATRIX.get(env.name, {}).items():
            EnvironmentAccess.objects.get_or_create(
                environment=env, group=groups[role.value], defaults={"level": AccessLevel(level)},
            )


def ensure_default_triggers(environment):
    """The seed's rollback triggers as a production environment's defaults, unless it has some already."""
    from .deploy.triggers import DEFAULTS, SEED_TRIGGERS

    if not environment.is_production or RollbackTrigger.objects.filter(environment=environment).exists():
        return []
    return RollbackTrigger.objects.bulk_create([RollbackTrigger(environment=environment, position=i,
                                                                **{**DEFAULTS, **spec})
                                                for i, spec in enumerate(SEED_TRIGGERS)])
