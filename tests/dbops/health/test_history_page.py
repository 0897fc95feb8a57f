"""The health page's history: charts per range, a statement's chart, odd query strings."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbops.health import history
from dbops.models import HealthSnapshot
from tests.dbops.health.historydata import QUERY_TEXT, QUERYID, make_history

pytestmark = pytest.mark.django_db

HEALTH = reverse("admin:dbops_databasehealth_changelist")


@pytest.fixture
def recorded() -> list[HealthSnapshot]:
    return make_history(timezone.now())


def figures(page: str) -> list[str]:
    return re.findall(r'<figure class="cg-chart[^"]*" data-chart="(\w+)" data-series="(\d+)"', page)


def test_an_empty_history_says_how_to_start_recording(admin_client: Any) -> None:
    page = admin_client.get(HEALTH).content.decode()
    assert 'id="history-empty"' in page
    assert escape(history.CRON_LINE) in page
    assert "dbhealth --record" in page
    assert 'data-chart="line"' not in page


@pytest.mark.parametrize(("key", "snapshots"), [("24h", 24), ("7d", 73), ("30d", 73)])
def test_each_range_charts_the_recorded_figures(
    admin_client: Any, recorded: list[HealthSnapshot], key: str, snapshots: int
) -> None:
    page = admin_client.get(HEALTH, {"range": key}).content.decode()
    assert f"{snapshots} snapshot" in page
    # connections (+ max_connections), cache, database size, 5 tables, dead tuples, lag
    assert figures(page) == [
        ("line", "2"),
        ("line", "1"),
        ("line", "1"),
        ("line", "5"),
        ("line", "1"),
        ("line", "1"),
    ]
    assert "max_connections" in page
    assert "97.5%" in page  # the cache hit ratio as a percent
    assert "3.0 GB" in page  # sizes in readable units
    assert "public.t6" in page and "public.t1" not in page  # the five largest only
    current = re.search(r'<ul class="dbops-ranges".*?</ul>', page, re.S)
    assert current and f"<strong>Last {history.RANGES[key].label}</strong>" in current.group()
    assert f'href="?query={QUERYID}&amp;range={key}"' in page
    assert QUERY_TEXT in page


def test_a_statements_page_charts_its_mean_time(
    admin_client: Any, recorded: list[HealthSnapshot]
) -> None:
    page = admin_client.get(HEALTH, {"query": str(QUERYID), "range": "7d"}).content.decode()
    assert 'id="query-history"' in page
    assert QUERY_TEXT in page
    assert figures(page) == [("line", "1"), ("bar", "1")]
    assert ": 12 ms</title>" in page  # a point's tooltip: 120 ms over 10 calls
    assert 'id="check-connections"' not in page  # no live checks on a statement's page


@pytest.mark.parametrize(
    "value", ["abc", "", "1.5", "99999999999999999999999", "١٢", "12", "-1", "<b>x</b>"]
)
def test_a_wrong_query_gives_a_clean_page(
    admin_client: Any, recorded: list[HealthSnapshot], value: str
) -> None:
    response = admin_client.get(HEALTH, {"query": value})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="query-refused"' in page or 'id="query-unknown"' in page
    assert "<b>x</b>" not in page
    assert 'data-chart="line"' not in page


def test_replication_lag_is_charted_only_when_recorded(admin_client: Any) -> None:
    HealthSnapshot.objects.create(
        status=0,
        connections=1,
        max_connections=100,
        database_bytes=1,
        dead_tuples=0,
        table_sizes={"public.a": 1},
    )
    page = admin_client.get(HEALTH).content.decode()
    assert len(figures(page)) == 5
    assert "Replication lag" not in page
    assert 'id="history-statements"' not in page


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    params=st.dictionaries(
        st.sampled_from(["range", "query", "database"]),
        st.one_of(
            st.text(max_size=30),
            st.integers().map(str),
            st.sampled_from(["24h", "7d", "30d", "\x00", "-0", " 7 ", "1e309", str(QUERYID)]),
        ),
        max_size=3,
    )
)
def test_no_query_string_breaks_the_history(
    admin_client: Any, recorded: list[HealthSnapshot], params: dict[str, str]
) -> None:
    with transaction.atomic():
        response = admin_client.get(HEALTH, params)
        transaction.set_rollback(True)
    assert response.status_code == 200, params
