"""What every health check shares: the result, the thresholds, the judging helpers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from sqlmigrations.redact import redact

OK, INFO, WARNING, CRITICAL = "ok", "info", "warning", "critical"
SEVERITY = {OK: 0, INFO: 0, WARNING: 1, CRITICAL: 2}
QUERY_TEXT_LIMIT = 300

# Defaults a deployment can override per key in settings.DB_HEALTH_THRESHOLDS.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "connections": {"warning": 70, "critical": 90},  # % of max_connections in use
    "long_running_queries": {"warning_seconds": 60, "critical_seconds": 300},
    "blocked_queries": {"warning": 1, "critical": 5},  # sessions waiting on a lock
    # % of block reads served from memory, judged once min_blocks have been read
    "cache_hit_ratio": {"warning": 99, "critical": 95, "min_blocks": 10000},
    "table_sizes": {"top": 10},
    "index_sizes": {"top": 10},
    "invalid_indexes": {"critical": 1},
    "unused_indexes": {"warning": 1, "min_size_bytes": 1024 * 1024},
    "duplicate_indexes": {"warning": 1},
    "missing_indexes": {"warning": 1, "min_rows": 10000, "index_usage_percent": 95},
    "sequences": {"warning": 75, "critical": 90},  # % of the column's or sequence's maximum
    "dead_tuples": {"warning": 20, "critical": 50, "min_dead_rows": 1000},  # % dead rows
    "slow_queries": {"warning": 1, "mean_ms": 100, "min_calls": 10, "top": 10},
    # Each standby's replay, behind the primary's WAL: 16 MB is one WAL segment (a standby
    # that keeps up stays well under it); 30 s is what a read after a write may miss.
    "replication": {
        "warning_bytes": 16 * 1024**2,
        "critical_bytes": 1024**3,
        "warning_seconds": 30,
        "critical_seconds": 300,
    },
    # WAL a slot keeps on the primary's disk (any inactive slot is a warning as well).
    "replication_slots": {"warning_bytes": 1024**3, "critical_bytes": 5 * 1024**3},
    # The read replica's own view: how old the data it serves is.
    "replica": {"warning_seconds": 30, "critical_seconds": 300},
    # The newest backup's copy in the replica: missing is a warning this long, then critical.
    "backup_replica": {"grace_seconds": 3600},
    "statement_timeout_ms": {"value": 10000},
}


@dataclass
class CheckResult:
    """The outcome of one health check."""

    name: str
    title: str
    status: str
    summary: str
    values: dict[str, float | int | None] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    unit: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    hint: str = ""

    @property
    def value(self) -> float | int | None:
        return next(iter(self.values.values()), None)

    @property
    def severity(self) -> int:
        return SEVERITY[self.status]

    def value_text(self) -> str:
        def show(key: str, value: Any) -> str:
            if key.endswith("bytes") and isinstance(value, int):
                return pretty(value)
            return f"{fmt(value)}{self.unit}"

        if len(self.values) == 1:
            return show(*next(iter(self.values.items())))
        return ", ".join(f"{k} {show(k, v)}" for k, v in self.values.items()) or "-"

    def threshold_text(self) -> str:
        def show(key: str, value: Any) -> str:
            # Sizes in bytes read better as 16.0 MB; the JSON keeps the numbers.
            return pretty(int(value)) if key.endswith("bytes") else fmt(value)

        return ", ".join(f"{k} {show(k, v)}" for k, v in self.thresholds.items()) or "-"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [[_jsonable(cell) for cell in row] for row in self.rows]
        return data


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def thresholds(check: str) -> dict[str, float]:
    """Return a check's thresholds: the defaults updated by settings.DB_HEALTH_THRESHOLDS."""
    configured = getattr(settings, "DB_HEALTH_THRESHOLDS", {}) or {}
    unknown = set(configured) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ImproperlyConfigured(
            f"DB_HEALTH_THRESHOLDS names unknown checks {sorted(unknown)}: use "
            f"{', '.join(sorted(DEFAULT_THRESHOLDS))}."
        )
    values = dict(DEFAULT_THRESHOLDS[check])
    for key, value in (configured.get(check) or {}).items():
        if key not in values:
            raise ImproperlyConfigured(
                f"DB_HEALTH_THRESHOLDS[{check!r}] has no key {key!r}: use "
                f"{', '.join(sorted(values))}."
            )
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ImproperlyConfigured(
                f"DB_HEALTH_THRESHOLDS[{check!r}][{key!r}] = {value!r} is not a number."
            )
        values[key] = value
    return values


def third_party_tables() -> list[str]:
    """Return the tables of Django's and third-party apps, left out of the index checks:
    their indexes come with those apps' migrations, not this project's SQL files."""
    if getattr(settings, "DB_HEALTH_INCLUDE_THIRD_PARTY", False):
        return []
    base = Path(settings.BASE_DIR).resolve()
    tables: set[str] = set()
    for app in apps.get_app_configs():
        path = Path(app.path).resolve()
        if path.is_relative_to(base) and "site-packages" not in path.parts:
            continue
        tables.update(m._meta.db_table for m in app.get_models(include_auto_created=True))
    return sorted(tables)


THIRD_PARTY_NOTE = (
    " Tables of Django's own and third-party apps are left out "
    "(DB_HEALTH_INCLUDE_THIRD_PARTY = True includes them)."
)


def status_above(value: float | None, limits: dict[str, float]) -> str:
    """Judge a figure where higher is worse."""
    if value is None:
        return OK
    if "critical" in limits and value >= limits["critical"]:
        return CRITICAL
    if "warning" in limits and value >= limits["warning"]:
        return WARNING
    return OK


def status_below(value: float | None, limits: dict[str, float]) -> str:
    """Judge a figure where lower is worse (ratios)."""
    if value is None:
        return OK
    if "critical" in limits and value < limits["critical"]:
        return CRITICAL
    if "warning" in limits and value < limits["warning"]:
        return WARNING
    return OK


def short(query: str | None) -> str:
    text = " ".join((query or "").split())
    text = redact(text)
    return text if len(text) <= QUERY_TEXT_LIMIT else text[: QUERY_TEXT_LIMIT - 1] + "…"


def fetch_rows(cursor: Any, query: str, params: Any = None) -> list[list[Any]]:
    cursor.execute(query, params)
    return [list(r) for r in cursor.fetchall()]


def pretty(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
