"""CSV export of the audit trail (used by the admin and the API)."""
import csv
import json

HEADER = [
    "id", "created_at", "actor", "action", "object_type", "object_id", "object", "before", "after", "reason",
    "request_id", "prev_hash", "hash",
]


class _Echo:
    def write(self, value):
        return value


def audit_csv_rows(queryset):
    """Yield CSV lines for the given events (streamed: the trail can be long)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    for e in queryset.iterator(chunk_size=2000):
        yield writer.writerow([
            e.id, e.created_at.isoformat(), e.actor_username, e.action, e.object_type, e.object_id,
            e.object_repr, json.dumps(e.before, sort_keys=True) if e.before is not None else "",
            json.dumps(e.after, sort_keys=True) if e.after is not None else "", e.reason, e.request_id,
            e.prev_hash, e.hash,
        ])
