"""A changelist's date-time cells, formatted once per distinct date and time of day.

Django shows a date-time cell as `formats.localize(timezone.template_localtime(value))`:
per value it reads USE_TZ and the current time zone, looks DATETIME_FORMAT up, then
builds a DateFormat that splits the format string and calls one method per character.
On the 50-row profiles changelist (two date-time columns) that was a tenth of the page's
server time (bench/admin_bench.py, docs/benchmarks.md).

Here the setting, the time zone and the format are read once per page, and the format
is cut, at its format characters, into runs that read only the date ("N j, Y, ") or
only some of the time of day ("P": the hour and minute). Django's DateFormat still
formats each run, once per distinct value of what the run reads, and the cell is the
runs joined: the same text, because DateFormat formats a format string piece by piece
and cutting at an unescaped format character keeps every piece whole. A format with a
character that reads the time zone or the whole instant (e, I, O, T, Z, c, r, U) is
formatted by Django per value, as before.

A cell can also show a time on another clock than the page's, naming the zone (a
household's times, chores.admin): `zoned`, with the same memo. A ModelAdmin method has no
page to keep a formatter on, so `page()` makes one for the page being rendered and
`current()` finds it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.utils import formats, timezone
from django.utils.dateformat import DateFormat, re_formatchars

# DateFormat's characters that read only the (local) date.
DATE_CHARS = frozenset("bdDEFjlLmMnNoStwWyYz")
# Those that read only the time of day, and which of its fields each reads.
TIME_CHARS = {
    "a": ("hour",),
    "A": ("hour",),
    "g": ("hour",),
    "G": ("hour",),
    "h": ("hour",),
    "H": ("hour",),
    "f": ("hour", "minute"),
    "i": ("minute",),
    "P": ("hour", "minute"),
    "s": ("second",),
    "u": ("microsecond",),
}
_DATE = ("year", "month", "day")


def _nothing(value: Any) -> tuple[()]:
    return ()


def runs(format_string: str) -> list[tuple[str, tuple[str, ...]]] | None:
    """The format cut into (run, fields it reads); None when a character needs more."""
    cuts: list[tuple[int, tuple[str, ...]]] = []  # where each run starts, what it reads
    for match in re_formatchars.finditer(format_string):
        char = match.group(1)
        if char in DATE_CHARS:
            reads: tuple[str, ...] = _DATE
        elif char in TIME_CHARS:
            reads = ("time",)
        else:
            return None  # the time zone or the whole instant
        if cuts and cuts[-1][1] == reads:
            continue
        cuts.append((match.start() if cuts else 0, reads))
    if not cuts:
        return [(format_string, ())]  # only text: the same for every value
    result = []
    for i, (start, reads) in enumerate(cuts):
        end = cuts[i + 1][0] if i + 1 < len(cuts) else len(format_string)
        run = format_string[start:end]
        if reads == ("time",):  # only the fields this run's characters read
            chars = {m.group(1) for m in re_formatchars.finditer(run)}
            fields = {f for c in chars for f in TIME_CHARS[c]}
            reads = tuple(f for f in ("hour", "minute", "second", "microsecond") if f in fields)
        result.append((run, reads))
    return result


class LocalDateTimes:
    """Formats aware or naive datetimes as Django's changelist does, for one page."""

    def __init__(self) -> None:
        self.use_tz = settings.USE_TZ
        self.zone = timezone.get_current_timezone()
        self.format = formats.get_format("DATETIME_FORMAT")
        cut = runs(self.format)
        # Per run: its format, what it reads (one C call), its texts by what it read.
        self.runs: list[tuple[str, Callable[[Any], Any], dict[Any, str]]] | None = (
            None
            if cut is None
            else [(run, attrgetter(*reads) if reads else _nothing, {}) for run, reads in cut]
        )

    def local(self, value: datetime.datetime) -> datetime.datetime:
        """timezone.template_localtime(value), with the page's setting and time zone."""
        if (
            self.use_tz
            and value.utcoffset() is not None
            and getattr(value, "convert_to_local_time", True)
        ):
            return value.astimezone(self.zone)
        return value

    def text(self, value: datetime.datetime) -> str:
        """formats.localize(timezone.template_localtime(value)) for a datetime."""
        return self._format(self.local(value))

    def zoned(self, value: datetime.datetime, zone: datetime.tzinfo) -> str:
        """The text of an aware `value` on `zone`'s clock, then the zone's abbreviation and
        name: "Dec. 3, 2026, 8 p.m. EST (America/New_York)"."""
        local = value.astimezone(zone)
        return f"{self._format(local)} {local.tzname()} ({zone})"

    def _format(self, value: datetime.datetime) -> str:
        """DATETIME_FORMAT of a value already on the clock it is shown on."""
        if self.runs is None:
            return DateFormat(value).format(self.format)
        parts = []
        for run, reads, memo in self.runs:
            key = reads(value)
            part = memo.get(key)
            if part is None:
                part = memo[key] = DateFormat(value).format(run)
            parts.append(part)
        return "".join(parts)


_page: ContextVar[LocalDateTimes | None] = ContextVar("admin_page_datetimes", default=None)


@contextmanager
def page() -> Iterator[LocalDateTimes]:
    """One formatter for the page rendered in this block: its memo sees every cell."""
    formatter = LocalDateTimes()
    token = _page.set(formatter)
    try:
        yield formatter
    finally:
        _page.reset(token)


def current() -> LocalDateTimes:
    """The formatter of the page being rendered, or a new one outside `page()`."""
    return _page.get() or LocalDateTimes()
