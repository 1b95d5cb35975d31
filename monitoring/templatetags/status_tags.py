from django import template

from monitoring.statuspage import status as st

register = template.Library()


@register.filter
def status_label(value):
    """operational → Operational, in_progress → In progress, partial_outage → Partial outage."""
    if not value:
        return "—"
    return st.COMPONENT_STATUS_LABELS.get(value) or str(value).replace("_", " ").capitalize()
