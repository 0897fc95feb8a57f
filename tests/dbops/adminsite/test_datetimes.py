"""The changelist's date-time cells (dbops.adminsite.datetimes) are Django's, character for
character: formats.localize(timezone.template_localtime(value)), for any format, time zone
and value, with one formatter (and its memo) for a whole page of values."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import override_settings
from django.utils import formats, timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dbops.adminsite.datetimes import LocalDateTimes, runs

FORMATS = [
    "N j, Y, P",  # Django's default DATETIME_FORMAT, the project's
    "Y-m-d H:i:s.u",
    "H:i d.m.Y",  # the time first
    "D, jS F Y g:i A",
    r"\a\t H \h j \o\f F",  # escaped characters, also right before a cut
    "l W o L t z E b w y n M m d, G f a",
    r"\n\o\w",  # no format character at all
    "c",  # the whole instant: Django per value
    "N j, Y, P T O e Z I r U",  # the time zone too
]
ZONES = ["UTC", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe", "Asia/Kathmandu"]

aware = st.datetimes(
    datetime(1900, 1, 1),
    datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, *(zoneinfo.ZoneInfo(z) for z in ZONES)]),
)
naive = st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1))


def test_a_format_is_cut_where_what_it_reads_changes() -> None:
    assert runs("N j, Y, P") == [("N j, Y, ", ("year", "month", "day")), ("P", ("hour", "minute"))]
    assert runs("H:i d.m.Y") == [("H:i ", ("hour", "minute")), ("d.m.Y", ("year", "month", "day"))]
    assert runs(r"\a\t H") == [(r"\a\t H", ("hour",))]
    assert runs(r"\n\o\w") == [(r"\n\o\w", ())]
    assert runs("N j, Y, P T") is None
    assert runs("c") is None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("use_tz", [True, False])
@hypothesis_settings(max_examples=15, deadline=None)
@given(values=st.lists(aware | naive, min_size=1, max_size=30))
def test_cells_are_what_django_shows(
    fmt: str, zone: str, use_tz: bool, values: list[datetime]
) -> None:
    with (
        override_settings(DATETIME_FORMAT=fmt, USE_TZ=use_tz),
        timezone.override(zoneinfo.ZoneInfo(zone)),
    ):
        page = LocalDateTimes()  # one per page: its memo sees every value
        for value in [*values, *values]:
            assert page.text(value) == formats.localize(timezone.template_localtime(value))


def test_a_value_that_must_not_be_converted_is_not() -> None:
    class Kept(datetime):
        convert_to_local_time = False

    value: Any = Kept(2026, 3, 29, 1, 30, tzinfo=UTC)
    with timezone.override(zoneinfo.ZoneInfo("Europe/Berlin")):
        assert LocalDateTimes().text(value) == formats.localize(timezone.template_localtime(value))
        assert LocalDateTimes().text(value).endswith("1:30 a.m.")
