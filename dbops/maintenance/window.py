"""The maintenance window ("Sun 03:00-05:00 UTC") and the time budget ("1h30m").

A window is days, a time range and a time zone name: `Sun 03:00-05:00 UTC`,
`Mon-Fri 01:30-02:30 Europe/London`, `Sat,Sun 23:00-01:00 UTC` (it crosses midnight: it
starts on Saturday and on Sunday, and each ends the next morning), `daily 02:00-04:00 UTC`.
The times are wall-clock times of the zone, so the window follows its daylight saving.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WINDOW_EXAMPLE = '"Sun 03:00-05:00 UTC" or "Mon-Fri 01:30-02:30 Europe/London"'
BUDGET_EXAMPLE = '"30m", "1h30m" or "90s"'
MAX_BUDGET_SECONDS = 24 * 3600
_TIME = r"([0-9]{2}):([0-9]{2})"
_WINDOW = re.compile(rf"(\S+)\s+{_TIME}-{_TIME}\s+(\S+)", re.ASCII)
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", re.ASCII)
_BUDGET = re.compile(r"(?:([0-9]{1,5})h)?(?:([0-9]{1,5})m)?(?:([0-9]{1,5})s)?", re.ASCII)


class WindowError(ValueError):
    """A window or budget that does not parse; the message shows the form to use."""


@dataclass(frozen=True)
class Window:
    """Days of the week (0 = Monday), a start and an end minute of the day, a zone name.

    end <= start: the window crosses midnight and ends the next day (end 0 is midnight).
    """

    days: frozenset[int]
    start: int  # minutes after midnight, 0..1439
    end: int  # minutes after midnight, 0..1439, != start
    zone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @property
    def minutes(self) -> int:
        return (self.end - self.start) % 1440

    def __str__(self) -> str:
        return f"{_days_text(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)} {self.zone}"

    def opened(self, now: datetime) -> datetime | None:
        """Return when the occurrence of the window that holds `now` opened, or None."""
        local = now.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        for back in (0, 1):  # opened today, or (crossing midnight) yesterday
            day = local.date() - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            since = minute + back * 1440 - self.start
            if 0 <= since < self.minutes:
                return _at(day, self.start, self.tz)
        return None

    def seconds_left(self, now: datetime) -> float:
        """Return the seconds until the window that holds `now` closes (0 outside it)."""
        opened = self.opened(now)
        if opened is None:
            return 0.0
        day = opened.date() + timedelta(days=1 if self.crosses_midnight else 0)
        closes = _at(day, self.end, self.tz)
        return max(0.0, (closes.astimezone(UTC) - now.astimezone(UTC)).total_seconds())

    def contains(self, now: datetime) -> bool:
        return self.seconds_left(now) > 0


def _at(day: date, minute: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _days_text(days: frozenset[int]) -> str:
    """Days as the window writes them: daily, or runs of three or more as ranges."""
    if len(days) == 7:
        return "daily"
    parts, ordered = [], sorted(days)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{DAYS[ordered[i]]}-{DAYS[ordered[j]]}")
        else:
            parts.extend(DAYS[k] for k in ordered[i : j + 1])
        i = j + 1
    return ",".join(parts)


def _day(text: str, window: str) -> int:
    for number, name in enumerate(DAYS):
        if text.lower() == name.lower():
            return number
    raise WindowError(
        f"{window!r}: {text!r} is not a day: use Mon, Tue, Wed, Thu, Fri, Sat or Sun "
        f"(a list: Sat,Sun; a range: Mon-Fri; or daily), e.g. {WINDOW_EXAMPLE}"
    )


def _parse_days(text: str, window: str) -> frozenset[int]:
    if text.lower() == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        if not dash:
            days.add(_day(first, window))
            continue
        a, b = _day(first, window), _day(last, window)
        days.update(n % 7 for n in range(a, a + (b - a) % 7 + 1))  # Fri-Mon wraps
    return frozenset(days)


def _minute(hours: str, minutes: str, window: str) -> int:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return 0  # 24:00 is the next midnight
    if h > 23 or m > 59:
        raise WindowError(
            f"{window!r}: {hours}:{minutes} is not a time of day: use HH:MM from 00:00 to "
            f"23:59 (24:00 for midnight at the end), e.g. {WINDOW_EXAMPLE}"
        )
    return h * 60 + m


def parse_window(text: str) -> Window:
    """Parse `DAYS HH:MM-HH:MM ZONE`; raise WindowError saying what to write instead."""
    match = _WINDOW.fullmatch(text.strip())
    if not match:
        raise WindowError(
            f"{text!r} is not a maintenance window: write the days, the time range and the "
            f"time zone, e.g. {WINDOW_EXAMPLE}"
        )
    days_text, h1, m1, h2, m2, zone = match.groups()
    days = _parse_days(days_text, text)
    start, end = _minute(h1, m1, text), _minute(h2, m2, text)
    if start == end:
        raise WindowError(
            f"{text!r} starts and ends at {_hhmm(start)}: give a window of at least a "
            f"minute, e.g. {WINDOW_EXAMPLE}"
        )
    try:
        if not _ZONE.fullmatch(zone) or ".." in zone:
            raise ValueError(zone)
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError, OSError):
        raise WindowError(
            f"{text!r}: {zone!r} is not a time zone: use a name of the tz database such as "
            f"UTC or Europe/London, e.g. {WINDOW_EXAMPLE}"
        ) from None
    return Window(days, start, end, zone)


def parse_budget(text: str) -> int:
    """Parse `1h30m`, `30m`, `90s` into seconds (more than 0, at most 24h)."""
    match = _BUDGET.fullmatch(text.strip())
    if not text.strip() or not match:
        raise WindowError(
            f"{text!r} is not a time budget: use hours, minutes and seconds, e.g. {BUDGET_EXAMPLE}"
        )
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not 0 < total <= MAX_BUDGET_SECONDS:
        raise WindowError(
            f"{text!r} is not a time budget between 1s and 24h: e.g. {BUDGET_EXAMPLE}"
        )
    return total


def budget_text(seconds: int) -> str:
    """Write seconds as parse_budget reads them: 5400 -> 1h30m."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")
