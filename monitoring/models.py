"""The monitoring app's models, defined by concern and re-exported here so Django registers them under the
``monitoring`` app label (migrations, permissions and admin URLs keep their names)."""
from .alerting.models import ActiveAlert, AlertEvent, AlertRule, AlertState, Severity
from .metrics.models import MetricBucket, MetricsConfig, ProviderKind
from .reliability.models import DoraReport, ServiceLevelObjective, Sli
from .statuspage.models import (
    AffectedComponent,
    Component,
    ComponentGroup,
    ComponentStatusChange,
    Delivery,
    Incident,
    IncidentPolicy,
    IncidentUpdate,
    Maintenance,
    MaintenanceUpdate,
    PublishRequest,
    Subscriber,
)

__all__ = [
    "AffectedComponent", "Component", "ComponentGroup", "ComponentStatusChange", "Delivery", "Incident",
    "IncidentPolicy", "IncidentUpdate", "Maintenance", "MaintenanceUpdate", "PublishRequest", "Subscriber",
    "MetricBucket", "MetricsConfig", "ProviderKind", "DoraReport", "ServiceLevelObjective", "Sli",
    "ActiveAlert", "AlertEvent", "AlertRule", "AlertState", "Severity",
]
