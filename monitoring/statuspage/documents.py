"""The Statuspage public v2 documents (summary.json, status.json, …) built from a snapshot.

Field sets and enumerations follow Atlassian Statuspage's public API, which status aggregators, exporters and
chat integrations read: every document opens with the ``page`` envelope; ``description`` is always present
on components (null when empty); ids are strings.
"""
import datetime as dt

from django.conf import settings

from . import status as st

RECENT = 50


def ts(value):
    """ISO 8601 with milliseconds and an explicit UTC offset, as Statuspage writes them (None stays None)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value.isoformat()


def page_id():
    return settings.STATUS_PAGE_ID


def public_url(path=""):
    """The public address of the status page, or of ``path`` under it (links in documents, feed and mails)."""
    base = settings.STATUS_PUBLIC_URL
    return f"{base.rstrip('/')}/{path.lstrip('/')}" if path else base.rstrip("/")


def page(snapshot):
    return {"id": page_id(), "name": settings.STATUS_PAGE_NAME,
            "url": public_url(), "time_zone": settings.TIME_ZONE,
            "updated_at": ts(snapshot.updated_at())}


def group_id(pk):
    """Groups and components share one "components" list (in Statuspage a group is a component): their ids
    must not collide, so groups get an id space of their own."""
    return f"group-{pk}"


def component_json(component, position=None):
    return {
        "id": str(component.pk),
        "name": component.name,
        "status": component.status,
        "created_at": ts(component.created_at),
        "updated_at": ts(component.updated_at),
        "position": position if position is not None else component.position,
        "description": component.description or None,
        "showcase": component.showcase,
        "start_date": component.start_date.isoformat() if component.start_date else None,
        "group_id": group_id(component.group_id) if component.group_id else None,
        "page_id": page_id(),
        "group": False,
        "only_show_if_degraded": component.only_show_if_degraded,
    }


def group_json(group, children, position):
    return {
        "id": group_id(group.pk),
        "name": group.name,
        "status": st.worst([c.status for c in children]),
        "created_at": ts(group.created_at),
        "updated_at": ts(max([group.updated_at] + [c.updated_at for c in children])),
        "position": position,
        "description": group.description or None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": page_id(),
        "group": True,
        "only_show_if_degraded": False,
        "components": [str(c.pk) for c in children],
    }


def components_json(snapshot):
    """Top-level groups and ungrouped components by position, each group followed by its components."""
    children = {g.pk: [c for c in snapshot.components if c.group_id == g.pk] for g in snapshot.groups}
    top = [("group", g) for g in snapshot.groups] + [("component", c) for c in snapshot.components
                                                     if c.group_id is None]
    top.sort(key=lambda item: (item[1].position, item[1].name))
    result = []
    for index, (kind, obj) in enumerate(top, start=1):
        if kind == "component":
            result.append(component_json(obj, index))
            continue
        if not children[obj.pk]:
            continue
        result.append(group_json(obj, children[obj.pk], index))
        result += [component_json(c, n) for n, c in enumerate(children[obj.pk], start=1)]
    return result


def update_json(update, parent_id):
    return {
        "id": str(update.pk),
        "status": update.status,
        "body": update.body,
        "incident_id": str(parent_id),
        "created_at": ts(update.created_at),
        "updated_at": ts(update.created_at),
        "display_at": ts(update.display_at),
        "affected_components": update.affected_components or None,
    }


def incident_json(obj, *, maintenance=False):
    """An incident, or a scheduled maintenance (the incident shape plus scheduled_for/scheduled_until)."""
    components = getattr(obj, "affected_list", None)
    if components is None:
        components = list(obj.components.all())
    data = {
        "id": str(obj.pk),
        "name": obj.name,
        "status": obj.status,
        "created_at": ts(obj.created_at),
        "updated_at": ts(obj.updated_at),
        "monitoring_at": ts(getattr(obj, "monitoring_at", None)),
        "resolved_at": ts(obj.completed_at if maintenance else obj.resolved_at),
        "impact": "maintenance" if maintenance else obj.impact,
        "shortlink": public_url(f"{'maintenances' if maintenance else 'incidents'}/{obj.pk}/"),
        "started_at": ts((obj.started_at or obj.scheduled_for) if maintenance else obj.started_at),
        "page_id": page_id(),
        "incident_updates": [update_json(u, obj.pk) for u in obj.updates.all()],
        "components": [component_json(c) for c in components],
    }
    if maintenance:
        data["scheduled_for"] = ts(obj.scheduled_for)
        data["scheduled_until"] = ts(obj.scheduled_until)
    return data


def status_json(snapshot):
    indicator, description = snapshot.indicator()
    return {"indicator": indicator, "description": description}


def documents(snapshot):
    """{path under api/v2/: document} for every public JSON document."""
    p = page(snapshot)
    components = components_json(snapshot)
    unresolved = [incident_json(i) for i in snapshot.unresolved]
    upcoming = [incident_json(m, maintenance=True) for m in snapshot.upcoming]
    active = [incident_json(m, maintenance=True) for m in snapshot.active_maintenances]
    status = status_json(snapshot)
    recent_maintenances = [incident_json(m, maintenance=True) for m in snapshot.maintenances[:RECENT]]
    return {
        "summary.json": {"page": p, "components": components, "incidents": unresolved,
                         "scheduled_maintenances": active + upcoming, "status": status},
        "status.json": {"page": p, "status": status},
        "components.json": {"page": p, "components": components},
        "incidents.json": {"page": p, "incidents": [incident_json(i) for i in snapshot.incidents[:RECENT]]},
        "incidents/unresolved.json": {"page": p, "incidents": unresolved},
        "scheduled-maintenances.json": {"page": p, "scheduled_maintenances": recent_maintenances},
        "scheduled-maintenances/upcoming.json": {"page": p, "scheduled_maintenances": upcoming},
        "scheduled-maintenances/active.json": {"page": p, "scheduled_maintenances": active},
    }

