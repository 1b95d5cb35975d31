"""Models of the releases app: environments and releases (core), deployments and their gates."""
from .core import *  # noqa: F403
from .core import (  # noqa: F401  (explicit names for readers and linters)
    ApprovalDecision,
    ChangeKind,
    CommunicationPlan,
    DeploymentTier,
    Environment,
    EnvironmentAccess,
    Level,
    Likelihood,
    OnFailure,
    Prerequisite,
    PrerequisiteStatus,
    PrerequisiteType,
    Release,
    ReleaseApproval,
    ReleaseChange,
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
from .deployments import *  # noqa: F403,E402
