"""The health page's history: charts of the recorded snapshots and of one statement.

The figures come from dbops.health.history; this module only turns them into charts and
the context of the templates. Query-string values are parsed leniently: an unknown
`range` is the 24-hour range, a `query` that is not a known statement id says so on the
page. Statement texts are the normalized ones `record` stored (values masked).
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from dbops.adminsite.charts import Series, bar_chart, line_chart
from dbops.health import history


def _ranges(span: history.Range, extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "key": r.key,
            "label": r.label,
            "url": "?" + urlencode({**extra, "range": r.key}),
            "current": r is span,
        }
        for r in history.RANGES.values()
    ]


def _bucket_text(span: history.Range) -> str:
    minutes = int(span.bucket.total_seconds() // 60)
    return f"{minutes}-minute" if minutes < 120 else f"{minutes / 60:g}-hour"


def figures_context(params: QueryDict) -> dict[str, Any]:
    """Return the context of the history section of the health page."""
    span = history.parse_range(params.get("range"))
    latest = history.latest_snapshot()
    context: dict[str, Any] = {
        "range": span,
        "ranges": _ranges(span, {}),
        "bucket": _bucket_text(span),
        "cron_line": history.CRON_LINE,
        "retention_days": history.history_days(),
        "latest": latest,
        "latest_status": history.STATUS_NAMES.get(latest.status, "") if latest else "",
        "charts": [],
        "statements": [],
    }
    if latest is None:
        return context
    figures = history.figure_series(span)
    context["snapshots"] = figures.snapshots
    context["charts"] = _figure_charts(figures)
    context["statements"] = history.latest_statements(latest)
    return context


def _figure_charts(figures: history.History) -> list[SafeString]:
    charts = [
        line_chart(
            [
                Series("Connections", figures.connections),
                Series("max_connections", figures.max_connections),
            ],
            title="Connections",
            y_label="connections",
        ),
        line_chart(
            [Series("Cache hit ratio", figures.cache_hit_ratio)],
            title="Cache hit ratio",
            y_label="reads from memory",
            percent=True,
        ),
        line_chart(
            [Series("Database size", figures.database_bytes)],
            title="Database size",
            y_label="size",
            unit="B",
        ),
        line_chart(
            [Series(name, points) for name, points in figures.tables.items()],
            title=f"The {len(figures.tables)} largest tables",
            y_label="size with indexes",
            unit="B",
        ),
        line_chart(
            [Series("Dead tuples", figures.dead_tuples)],
            title="Dead tuples",
            y_label="dead rows",
        ),
    ]
    if any(v is not None for _, v in figures.lag_seconds):
        charts.append(
            line_chart(
                [Series("Replay lag", figures.lag_seconds)],
                title="Replication lag (time)",
                y_label="lag",
                unit="s",
            )
        )
    if any(v is not None for _, v in figures.lag_bytes):
        charts.append(
            line_chart(
                [Series("WAL to replay", figures.lag_bytes)],
                title="Replication lag (WAL)",
                y_label="WAL behind",
                unit="B",
            )
        )
    return charts


def query_context(params: QueryDict) -> dict[str, Any]:
    """Return the context of one statement's page (`?query=<queryid>`)."""
    span = history.parse_range(params.get("range"))
    raw = params.get("query", "")
    queryid = history.parse_queryid(raw)
    context: dict[str, Any] = {
        "range": span,
        "bucket": _bucket_text(span),
        "raw_query": raw[:40],
        "queryid": queryid,
        "sample": None,
        "charts": [],
    }
    if queryid is None:
        return context
    context["ranges"] = _ranges(span, {"query": queryid})
    sample = history.statement_sample(queryid)
    context["sample"] = sample
    if sample is None:
        return context
    series = history.statement_series(queryid, span)
    context["resets"] = series.resets
    context["charts"] = [
        line_chart(
            [Series("Mean time", series.mean_ms)],
            title="Mean time between snapshots",
            y_label="mean time",
            unit="ms",
        ),
        bar_chart(
            [Series("Calls", series.calls)],
            title="Calls between snapshots",
            y_label="calls",
        ),
    ]
    return context
