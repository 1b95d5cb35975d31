"""The seed's roles (as auth groups) and the per-environment access levels they are granted."""
from dataclasses import dataclass

from django.db import models


class Role(models.TextChoices):
    DEVELOPERS = "developers", "Developers"
    QA = "qa", "QA"
    PRODUCT = "product", "Product"
    SUPPORT = "support", "Support"
    OPERATIONS = "operations", "Operations"
    SECURITY = "security", "Security"
    APPROVERS = "approvers", "Approvers"


class AccessLevel(models.IntegerChoices):
    """Ordered: a higher level includes everything a lower one allows."""

    NONE = 0, "none"
    READ = 1, "read-only"
    LIMITED = 2, "limited"
    FULL = 3, "full"
    ADMIN = 4, "administrative"


@dataclass(frozen=True)
class _Capability:
    value: int  # the minimum access level
    label: str


class Capability:
    """What an access level lets a person do in an environment."""

    VIEW = _Capability(AccessLevel.READ, "view the environment and what is deployed there")
    APPROVE = _Capability(AccessLevel.READ, "approve releases that target the environment")
    REPORT = _Capability(AccessLevel.LIMITED, "report test results for deployments to the environment")
    DEPLOY = _Capability(AccessLevel.FULL, "deploy to the environment and report deployment outcomes")
    CONFIGURE = _Capability(AccessLevel.ADMIN, "edit the environment's specification and access")


# Every role requests changes and sees the change schedule (the services check environment access and the
# approval policy; windows and freezes are edited with administrative access to the environment).
_CHANGES = ["changes.view_changerequest", "changes.add_changerequest", "changes.change_changerequest",
            "changes.view_changewindow", "changes.view_changefreeze", "changes.view_changetemplate",
            "changes.view_approvalrule", "changes.view_environmentchangepolicy"]
_CHANGE_SCHEDULE = [f"changes.{action}_{model}" for model in ("changewindow", "changefreeze")
                    for action in ("add", "change", "delete")]

# Model permissions each role group holds (app_label.codename), on top of its environment access.
ROLE_MODEL_PERMISSIONS = {
    Role.DEVELOPERS: [*_CHANGES,
        "releases.view_environment", "releases.view_release", "releases.add_release", "releases.change_release",
    ],
    Role.QA: [*_CHANGES, "releases.view_environment", "releases.view_release", "releases.change_release"],
    Role.PRODUCT: [*_CHANGES,
        "releases.view_environment", "releases.view_release", "releases.add_release", "releases.change_release",
    ],
    Role.SUPPORT: [*_CHANGES, "releases.view_environment", "releases.view_release"],
    Role.OPERATIONS: [*_CHANGES, *_CHANGE_SCHEDULE,
        "releases.view_environment", "releases.change_environment", "releases.view_release",
        "releases.add_release", "releases.change_release", "pmrelease.view_auditevent",
        # the status page is run by operations
        *(f"monitoring.{action}_{model}" for model in ("component", "componentgroup", "incident", "maintenance",
                                                        "incidentpolicy", "subscriber")
          for action in ("view", "add", "change")),
    ],
    Role.SECURITY: [*_CHANGES,
        "releases.view_environment", "releases.view_release", "pmrelease.view_auditevent",
    ],
    Role.APPROVERS: [*_CHANGES,  # release managers: plan and approve
        "releases.view_environment", "releases.view_release", "releases.add_release", "releases.change_release",
        "pmrelease.view_auditevent",
    ],
}


def user_roles(user):
    """The role names of a user's groups (cached on the user object for the request)."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_pm_roles", None)
    if cached is None:
        groups = user.groups.all()  # prefetched with the user (a list of votes' approvers, say) or read now
        cached = frozenset(g.name for g in groups) if groups._result_cache is not None else frozenset(
            user.groups.values_list("name", flat=True))
        user._pm_roles = cached
    return cached
