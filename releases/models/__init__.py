"""Models of the releases app: environments (with their access matrix), releases (with their plans,
approvals and release-note items) and deployments (targets, gates, health checks, steps, results)."""
from .configuration import (
    ConfigPolicy,
    ConfigVersion,
    DeploymentConfigDiff,
    ImmutableVersion,
    ReleaseConfigPin,
    SecretBackend,
    SecretReference,
)
from .deployments import *  # noqa: F403
from .deployments import __all__ as _deployment_names
from .environments import Attachment, DeploymentTier, Environment, EnvironmentAccess
from .releases import (
    ApprovalDecision,
    ApproverRole,
    CommunicationPlan,
    Level,
    Likelihood,
    NoteKind,
    OnFailure,
    Prerequisite,
    PrerequisiteStatus,
    PrerequisiteType,
    Release,
    ReleaseApproval,
    ReleaseNoteItem,
    ReleaseStatus,
    ReleaseType,
    RiskAssessment,
    RollbackMethod,
    RollbackPlan,
    RollbackStep,
    RollbackStrategy,
    RollbackStrategyType,
    TestingRequirement,
)

__all__ = [
    "ConfigPolicy", "ConfigVersion", "DeploymentConfigDiff", "ImmutableVersion", "ReleaseConfigPin",
    "SecretBackend", "SecretReference",
    "ApprovalDecision", "ApproverRole", "Attachment", "CommunicationPlan", "DeploymentTier", "Environment", "EnvironmentAccess",
    "Level", "Likelihood", "NoteKind", "OnFailure", "Prerequisite", "PrerequisiteStatus", "PrerequisiteType",
    "Release", "ReleaseApproval", "ReleaseNoteItem", "ReleaseStatus", "ReleaseType", "RiskAssessment",
    "RollbackMethod", "RollbackPlan", "RollbackStep", "RollbackStrategy", "RollbackStrategyType",
    "TestingRequirement", *_deployment_names,
]
