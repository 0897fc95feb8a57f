"""Admin parts for tables with millions of rows (issue 6.5).

Django's changelist counts the rows of every page it shows (`COUNT(*)` over the filtered
table, and once more over the whole table for "N total"). On `users` with millions of
rows and `completions` with tens of millions, those counts cost more than the page.
`EstimatedCountPaginator` asks PostgreSQL's statistics instead: `pg_class.reltuples`
(summed over partitions) for the unfiltered list, the planner's row estimate (EXPLAIN)
for a filtered or searched one, and an exact count only when the estimate is small enough
to make the count cheap. The page then says "about N" (templates/admin/pagination.html).
"""

from __future__ import annotations

import html
import json
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

EXACT_BELOW = 20_000  # below this many (estimated) rows an exact count is cheap


def table_estimate(model: Any, using: str = "default") -> int:
    """Rows in the model's table from statistics; partitions summed; -1 if never analysed."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            """
            SELECT CASE WHEN c.relkind = 'p' THEN (
                       SELECT coalesce(sum(greatest(p.reltuples, 0)), -1)
                       FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                       WHERE i.inhparent = c.oid)
                   ELSE c.reltuples END
            FROM pg_class c WHERE c.oid = %s::regclass
            """,
            [connections[using].ops.quote_name(model._meta.db_table)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else -1


def plan_estimate(queryset: Any) -> int:
    """The planner's row estimate for the queryset (no rows are read)."""
    query = queryset.order_by()
    try:
        sql, params = query.query.sql_with_params()
    except EmptyResultSet:  # .none(), or a lookup no row can match: Django's count() is 0
        return 0
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """A paginator whose count comes from statistics for large results (`approximate`)."""

    approximate = False

    # Django's cached_property, not functools': on Python 3.11 the latter holds one lock
    # for every instance of the class while the count runs, so one count blocked in the
    # database stalled every large-table changelist of the process.
    @cached_property
    def count(self) -> int:  # type: ignore[override]
        queryset = self.object_list
        if not hasattr(queryset, "query"):
            return super().count
        filtered = bool(queryset.query.where) or queryset.query.distinct
        estimate = (
            plan_estimate(queryset) if filtered else table_estimate(queryset.model, queryset.db)
        )
        if estimate < EXACT_BELOW:
            return queryset.count()
        self.approximate = True
        return estimate


class LargeTableAdmin(admin.ModelAdmin):
    """A ModelAdmin that never counts a large table exactly."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    # Django's changelist with its rows rendered by dbops.adminsite.rows (half the page's time).
    change_list_template = "admin/large_change_list.html"

    def action_checkbox(self, obj: Any) -> str:
        # The same HTML as Django's, without rendering a form widget template per row
        # (a quarter of a 50-row changelist's server time), and without format_html,
        # whose lazy-argument checks and escapes were still a tenth of the rows' time:
        # the same escaping (Django's escape() is html.escape) of the same three values.
        label = _("Select this object for an action - {}").format(html.escape(str(obj)))
        return SafeString(
            f'<input type="checkbox" name="{html.escape(helpers.ACTION_CHECKBOX_NAME)}" '
            f'value="{html.escape(str(obj.pk))}" class="action-select" aria-label="{label}">'
        )
