"""Filter pieces every app's filtersets use: a date-time filter whose input the database can always compare.

Python accepts UTC offsets up to ±23:59; PostgreSQL's ``timestamptz`` only ±15:59 (``DataError: time zone
displacement out of range``, a 500). ``IsoDateTimeFilter`` refuses anything beyond ±15:59 with a 400 naming the
parameter, and hands the database the instant in UTC.
"""
import datetime as dt

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

MAX_OFFSET = dt.timedelta(hours=15, minutes=59)


class BoundedIsoDateTimeField(IsoDateTimeField):
    default_error_messages = {
        "offset": "the UTC offset must be between -15:59 and +15:59 (ISO 8601, e.g. 2026-01-01T00:00:00+02:00)",
    }

    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return None
        offset = result.utcoffset()
        if offset is not None and abs(offset) > MAX_OFFSET:
            raise forms.ValidationError(self.error_messages["offset"], code="offset")
        return result.astimezone(dt.UTC) if offset is not None else result


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """django-filter's ISO 8601 filter, offsets bounded to what the database accepts (400 beyond)."""

    field_class = BoundedIsoDateTimeField
