"""The admin's front page: the figures an admin checks first, one card each.

Each card needs the view permission of what it shows and links to its page. Each is a
query or two that an index serves: no exact COUNT(*) over a large table (D7), bounded
counts ("1,000+") and statistics instead; the usage figures come from the analytics
rollups (V12), never from `completions`. A card whose data cannot be read (a table
missing, a privilege lacking, the migrations folder gone) says "unavailable" and the
page still renders; the cause goes to the log.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.redact import redact

logger = logging.getLogger(__name__)

BOUND = 1_000  # counts stop here: "1,000+"
# Households with a completion on one of the last 7 days of their own time zones: the
# index-only range scan of household_daily_stats_day (day, household_id) INCLUDE completions.
ACTIVE_HOUSEHOLDS_SQL = (
    "SELECT count(DISTINCT household_id) FROM household_daily_stats "
    "WHERE day > %s AND completions > 0"
)
# What cannot be read makes a card "unavailable" rather than the page an error.
UNREADABLE = (DatabaseError, SqlMigrationError, OSError)


@dataclass
class Card:
    """One card of the dashboard."""

    key: str
    title: str
    url: str
    figure: str = ""  # the card's main figure
    caption: str = ""  # what the figure counts
    lines: list[str] = field(default_factory=list)  # details under it (escaped when shown)
    status: str = ""  # "ok", "warning" or "critical": a badge
    charts: list[tuple[str, SafeString]] = field(default_factory=list)  # (label, sparkline)
    unavailable: bool = False


def command(text: str, name: str) -> SafeString:
    """`text` with a command in <code> in place of its {}."""
    return format_html(text.replace("{}", "<code>{}</code>"), name)


def thousands(n: int) -> str:
    return number_format(n, force_grouping=True)


def up_to_bound(n: int) -> str:
    """A count made with LIMIT BOUND + 1: "1,000+" beyond BOUND."""
    return f"{thousands(BOUND)}+" if n > BOUND else thousands(n)


def bounded(queryset: QuerySet[Any]) -> str:
    """Count the rows up to BOUND (one index range scan, stopped early)."""
    return up_to_bound(queryset.order_by()[: BOUND + 1].count())


def _url(name: str, query: str = "") -> str:
    try:
        return reverse(name) + query
    except NoReverseMatch:
        return ""


def profiles(card: Card) -> None:
    from accounts.models import UserProfile
    from dbops.adminsite.kit import EXACT_BELOW

    # One round trip: the table's size from statistics, counted exactly only while that is
    # cheap (the count's InitPlan runs only when its CASE branch is taken, as the
    # changelist's paginator decides), and the new profiles up to BOUND (users_created_at).
    table = connection.ops.quote_name(UserProfile._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.reltuples, CASE WHEN c.reltuples < %s THEN (SELECT count(*) FROM {table})"
            f" END, (SELECT count(*) FROM (SELECT 1 FROM {table} WHERE created_at >= %s"
            " LIMIT %s) s) FROM pg_class c WHERE c.oid = %s::regclass",
            [EXACT_BELOW, timezone.now() - timedelta(days=7), BOUND + 1, table],
        )
        estimate, exact, new = cursor.fetchone()
    card.figure = thousands(exact) if exact is not None else f"about {thousands(int(estimate))}"
    card.caption = "profiles"
    card.lines.append(f"{up_to_bound(new)} new in the last 7 days")


def activity(card: Card) -> None:
    from chores.analytics.read import freshness, service_days, utc_today
    from dbops.adminsite.charts import sparkline
    from dbops.connections.routers import reporting_connection

    state = freshness()
    if state.through_day is None:
        card.figure = "—"
        card.caption = "no rollups yet"
        card.lines.append(command("Run {} to fill them.", "manage.py analytics refresh"))
        return
    today = utc_today()
    with reporting_connection().cursor() as cursor:
        cursor.execute(ACTIVE_HOUSEHOLDS_SQL, [today - timedelta(days=7)])
        (active,) = cursor.fetchone()
    card.figure = thousands(active)
    card.caption = "households with a completion in the last 7 days"
    behind = (today - state.through_day).days
    through = f"Rollups through {state.through_day:%Y-%m-%d}"
    if behind > 1:
        through += f" ({behind} days behind: run {{}})"
        card.lines.append(command(through, "manage.py analytics refresh"))
    else:
        card.lines.append(through)
    days = service_days(30, today=today)
    for label, values in (
        ("Completions per day, 30 days", [d.completions for d in days]),
        ("Active users per day, 30 days", [d.active_users for d in days]),
    ):
        card.charts.append((label, sparkline(values, label=label, xs=[d.day for d in days])))


def overdue(card: Card) -> None:
    from chores.models import Assignment

    # Open and past due: a range scan of the partial index assignments_household_open_due.
    now = timezone.now().replace(microsecond=0)
    late = Assignment.objects.filter(status=Assignment.Status.OPEN, due_at__lt=now)
    if card.url:  # the same rows, listed
        card.url += "&" + urlencode({"due_at__lt": now.isoformat()})
    card.figure = bounded(late)
    card.caption = "open and past their due time"
    card.status = "ok" if card.figure == "0" else "warning"


def migrations(card: Card) -> None:
    from sqlmigrations import states

    overview = states.read_overview()  # reads the files and the history; takes no lock
    counts = overview.counts()
    pending = counts[states.PENDING]
    problems = counts[states.FAILED] + counts[states.EDITED] + counts[states.MISSING]
    card.figure = overview.schema_version or "empty"
    card.caption = "schema version"
    card.lines.append(f"{pending} pending, {problems} problems")
    card.status = "critical" if problems else "warning" if pending else "ok"


def database_health(card: Card) -> None:
    from dbops.health.activity import check_connections
    from dbops.models import HealthSnapshot

    latest = HealthSnapshot.objects.order_by("-taken_at", "-id").first()  # its taken_at index
    if latest is not None:
        card.status = ("ok", "warning", "critical")[latest.status]
        card.figure = card.status
        card.caption = f"recorded {timesince(latest.taken_at)} ago"
        card.lines.append(f"{latest.connections} of {latest.max_connections} connections")
        if latest.cache_hit_ratio is not None:
            card.lines.append(f"cache hit ratio {latest.cache_hit_ratio:.1%}")
        return
    # No history recorded yet: the health page's connections check, live (two small reads).
    with connection.cursor() as cursor:
        result = check_connections(cursor)
    card.status = result.status
    card.figure = result.status
    card.caption = "live check of the connections"
    card.lines.append(result.summary)
    card.lines.append(
        command("No history yet: {} from cron keeps it.", "manage.py dbhealth --record")
    )


def analytics_url() -> str:
    """The usage analytics page, or the households list while there is none."""
    from chores.models import ServiceDailyStats

    if admin.site.is_registered(ServiceDailyStats):
        return _url("admin:chores_servicedailystats_changelist")
    return _url("admin:chores_household_changelist")


@dataclass(frozen=True)
class Spec:
    """A card: what it is called, who may see it, where it links, how it is read."""

    key: str
    title: str
    permission: str  # the view permission of what it shows
    url: Callable[[], str]
    fill: Callable[[Card], None]


CARDS = (
    Spec(
        "profiles",
        "Profiles",
        "accounts.view_userprofile",
        lambda: _url("admin:accounts_userprofile_changelist"),
        profiles,
    ),
    Spec(
        "activity",
        "Active households this week",
        "chores.view_servicedailystats",
        analytics_url,
        activity,
    ),
    Spec(
        "overdue",
        "Overdue assignments",
        "chores.view_assignment",
        lambda: _url("admin:chores_assignment_changelist", "?status__exact=open"),
        overdue,
    ),
    Spec(
        "migrations",
        "Migrations",
        "sqlmigrations.view_flywayschemahistory",
        lambda: _url("admin:sqlmigrations_flywayschemahistory_changelist"),
        migrations,
    ),
    Spec(
        "health",
        "Database health",
        "dbops.view_databasehealth",
        lambda: _url("admin:dbops_databasehealth_changelist"),
        database_health,
    ),
)


@contextlib.contextmanager
def _contained() -> Iterator[None]:
    """A savepoint when the request is in a transaction, so a failed card spoils nothing."""
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
    else:
        yield


def cards(request: HttpRequest) -> list[Card]:
    """The cards the request's user may see, each read or marked unavailable."""
    shown = []
    for spec in CARDS:
        if not request.user.has_perm(spec.permission):
            continue
        card = Card(spec.key, spec.title, spec.url())
        try:
            with _contained():
                spec.fill(card)
        except UNREADABLE as err:
            logger.warning("dashboard card %s unavailable: %s", spec.key, redact(str(err)).strip())
            card = Card(spec.key, spec.title, card.url, figure="unavailable", unavailable=True)
        shown.append(card)
    return shown
