"""Reads for the public page: one consistent snapshot of everything it shows, in a handful of queries."""
import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Max, OuterRef, Prefetch, Subquery
from django.utils import timezone

from . import status as st
from . import uptime
from .models import (
    ACTIVE_MAINTENANCE,
    AffectedComponent,
    Component,
    ComponentGroup,
    ComponentStatusChange,
    Incident,
    IncidentUpdate,
    Maintenance,
    MaintenanceStatus,
    MaintenanceUpdate,
)

HISTORY_DAYS = 90


@dataclass
class Snapshot:
    now: dt.datetime
    groups: list
    components: list
    incidents: list  # published, newest first
    maintenances: list  # newest first
    intervals: dict = field(default_factory=dict)  # component id -> [uptime.Interval]
    # Set when ``incidents`` holds only some of them (``snapshot(incidents=…)``): the newest change of all of them
    latest_change: dt.datetime | None = None

    @property
    def unresolved(self):
        return [i for i in self.incidents if not i.is_resolved]

    @property
    def upcoming(self):
        return sorted((m for m in self.maintenances if m.status == MaintenanceStatus.SCHEDULED),
                      key=lambda m: m.scheduled_for)

    @property
    def active_maintenances(self):
        return [m for m in self.maintenances if m.status in ACTIVE_MAINTENANCE]

    def indicator(self):
        return st.indicator(component_statuses=[c.status for c in self.components],
                            incident_impacts=[i.impact for i in self.unresolved],
                            maintenance_active=bool(self.active_maintenances))

    def updated_at(self):
        if self.latest_change is not None:
            return self.latest_change
        stamps = [c.updated_at for c in self.components] + [i.updated_at for i in self.incidents]
        stamps += [m.updated_at for m in self.maintenances]
        return max(stamps) if stamps else self.now


def snapshot(now=None, *, incidents=None):
    """Everything the public page shows. ``incidents`` (a ``Q``): load only the published incidents it selects
    (what an incremental publish renders; ``Snapshot.updated_at`` then still covers all of them)."""
    now = now or timezone.now()
    groups = list(ComponentGroup.objects.order_by("position", "name"))
    components = list(Component.objects.select_related("group").order_by("position", "name"))
    by_id = {c.pk: c for c in components}
    affected = Prefetch("affected", queryset=AffectedComponent.objects.order_by("component__position",
                                                                                "component__name"))
    published = Incident.objects.published() if incidents is None else Incident.objects.published().filter(incidents)
    incidents_only = incidents is not None
    incidents = list(
        published.order_by("-started_at", "-id")
        .prefetch_related(Prefetch("updates", queryset=IncidentUpdate.objects.order_by("-display_at", "-id")),
                          affected))
    for incident in incidents:
        incident.affected_list = [by_id[a.component_id] for a in incident.affected.all() if a.component_id in by_id]
    maintenances = list(
        Maintenance.objects.exclude(status=MaintenanceStatus.CANCELLED).order_by("-scheduled_for", "-id")
        .prefetch_related(Prefetch("updates", queryset=MaintenanceUpdate.objects.order_by("-display_at", "-id")),
                          "components"))
    for maintenance in maintenances:
        maintenance.affected_list = [by_id[c.pk] for c in maintenance.components.all() if c.pk in by_id]
    latest_change = None
    if incidents_only:
        stamps = [c.updated_at for c in components] + [m.updated_at for m in maintenances]
        stamps.append(Incident.objects.published().aggregate(latest=Max("updated_at"))["latest"])
        latest_change = max((s for s in stamps if s is not None), default=now)
    return Snapshot(now=now, groups=groups, components=components, incidents=incidents,
                    maintenances=maintenances, intervals=component_intervals(components, now),
                    latest_change=latest_change)


def component_intervals(components, now, days=HISTORY_DAYS):
    """Each component's status intervals over the last ``days`` days (plus the status in force before)."""
    since = now - dt.timedelta(days=days + 1)
    changes = {c.pk: [] for c in components}
    rows = (ComponentStatusChange.objects.filter(component__in=components, at__gte=since, at__lte=now)
            .order_by("at", "id").values_list("component_id", "at", "new_status"))
    for component_id, at, new_status in rows:
        changes[component_id].append((at, new_status))
    # The status each component was in when the window opened (one query for all of them).
    before = (ComponentStatusChange.objects.filter(component=OuterRef("pk"), at__lt=since)
              .order_by("-at", "-id").values("new_status")[:1])
    for pk, status in (Component.objects.filter(pk__in=list(changes)).annotate(before=Subquery(before))
                       .exclude(before=None).values_list("pk", "before")):
        changes[pk].insert(0, (since, status))
    return {pk: uptime.intervals_from_changes(rows, until=now) for pk, rows in changes.items()}
