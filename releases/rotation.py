"""Secret rotation arithmetic (the seed's policy: automatic, frequency 30 d, grace 7 d). Pure: no Django.

With ``due_at = last_rotated + frequency``:

- ``ok``        now < due_at − grace
- ``due``       due_at − grace ≤ now < due_at      (rotate now: the grace period before the deadline)
- ``in_grace``  due_at ≤ now < due_at + grace      (past due: the old value is still accepted)
- ``overdue``   now ≥ due_at + grace
- ``unknown``   never rotated (no last rotation known): treated as overdue by the report
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

OK, DUE, IN_GRACE, OVERDUE, UNKNOWN = "ok", "due", "in_grace", "overdue", "unknown"
ATTENTION = (DUE, IN_GRACE, OVERDUE, UNKNOWN)


@dataclass(frozen=True)
class Rotation:
    state: str
    due_at: datetime | None
    grace_ends_at: datetime | None

    def as_dict(self):
        return {"state": self.state, "due_at": self.due_at.isoformat() if self.due_at else None,
                "grace_ends_at": self.grace_ends_at.isoformat() if self.grace_ends_at else None}


def rotation(*, last_rotated, frequency_days, grace_days, now):
    if last_rotated is None:
        return Rotation(UNKNOWN, None, None)
    if frequency_days <= 0:
        raise ValueError("frequency_days must be positive")
    if grace_days < 0:
        raise ValueError("grace_days must not be negative")
    due_at = last_rotated + timedelta(days=frequency_days)
    grace = timedelta(days=grace_days)
    if now < due_at - grace:
        state = OK
    elif now < due_at:
        state = DUE
    elif now < due_at + grace:
        state = IN_GRACE
    else:
        state = OVERDUE
    return Rotation(state, due_at, due_at + grace)


def parse_duration_days(text):
    """'30d' → 30, '2w' → 14, '12h' → 0.5 (the seed writes frequencies so)."""
    text = str(text).strip().lower()
    units = {"d": 1, "w": 7, "h": 1 / 24}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"a duration is a number and a unit (h, d, w), e.g. 30d — not {text!r}")
    return int(text[:-1]) * units[text[-1]]
