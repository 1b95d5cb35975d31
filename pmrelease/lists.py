"""Lists that grow forever (the audit trail, deployments): what keeps their pages as fast with years of history
as on the first day.

- ``KeysetPages``: cursor (keyset) pagination for the API, on an indexed ordering: page N costs what page 1
  costs, and no ``COUNT(*)`` is run. The answer is ``{"next", "previous", "results"}``; ``next`` and
  ``previous`` are links with an opaque ``cursor`` parameter (documented in the OpenAPI schema).
- ``BoundedCountPaginator``: the admin's paginator, counting at most ``COUNT_LIMIT`` rows (the change list
  then says "more than …" instead of scanning the whole table on every page).
- ``distinct_values``: the distinct values of an indexed column by a skip scan (one index probe per value,
  not a scan of every row), for the admin's list filters.
"""
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property
from rest_framework.pagination import CursorPagination

COUNT_LIMIT = 10_000
MAX_DISTINCT = 500


class KeysetPages(CursorPagination):
    """Cursor pages newest first by ``ordering`` (a subclass names another indexed one), ``?page_size=`` up to
    1000."""

    ordering = ("-id",)
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_paginated_response_schema(self, schema):
        result = super().get_paginated_response_schema(schema)
        result["properties"]["next"]["description"] = (
            "The next (older) page: this URL with an opaque `cursor` parameter; null on the last page.")
        result["properties"]["previous"]["description"] = (
            "The previous (newer) page: this URL with an opaque `cursor` parameter; null on the first page.")
        return result


class BoundedCountPaginator(Paginator):
    """A paginator whose count stops at ``COUNT_LIMIT`` + 1 rows: ``SELECT COUNT(*) FROM (… LIMIT n)``."""

    count_limit = COUNT_LIMIT

    @cached_property
    def count(self):
        return self.object_list[:self.count_limit + 1].count()

    @property
    def capped(self):
        return self.count > self.count_limit


def distinct_values(model, field_name, *, limit=MAX_DISTINCT):
    """The distinct non-null values of ``model.field_name`` in the database's order, at most ``limit`` of them:
    a recursive query that asks the column's index for the next greater value until there is none, so its cost
    is (number of values) × log(rows) instead of a scan of every row. Works on PostgreSQL and SQLite."""
    field = model._meta.get_field(field_name)
    table, column = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(field.column)
    sql = (f"WITH RECURSIVE t(v) AS (SELECT MIN({column}) FROM {table} "
           f"UNION ALL SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > t.v) FROM t WHERE t.v IS NOT NULL) "
           "SELECT v FROM t WHERE v IS NOT NULL LIMIT %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [field.to_python(row[0]) for row in cursor.fetchall()]
