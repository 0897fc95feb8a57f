"""The numbers and x values of the admin's charts: nice ticks, units, dates on an axis.

Pure functions for `dbops.adminsite.charts`: which values can be drawn, ticks at 1, 2 or 5
times a power of ten, values with their unit (bytes 1,024-based as pg_size_pretty, percent
from fractions), and x values (days, moments, labels) as keys, tooltips and tick labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.utils import timezone

X = date | datetime | str  # an x value: a day, a moment, or a label

LIMIT = 1e300  # beyond this a value is not drawn (the axis arithmetic would overflow)
_BYTE_UNITS = ("bytes", "kB", "MB", "GB", "TB", "PB")
_SI = ("", "k", "M", "G", "T")


def drawable(value: float | None) -> bool:
    """True when the value can be drawn: a finite number within ±1e300."""
    return value is not None and math.isfinite(value) and abs(value) <= LIMIT


def drawn(value: float | None) -> float | None:
    """The value as a float when it can be drawn, else None."""
    return float(value) if value is not None and drawable(value) else None


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Ticks at 1, 2 or 5 times a power of ten that cover [lo, hi], about `target` steps."""
    if lo > hi:
        lo, hi = hi, lo
    # A span no chart can show, gets a span of the values' size (or 1 when they are tiny
    # too): an empty one; one under a millionth of the values (-1e300 to -1e300 + 1e284:
    # ticks as multiples of a step so small lose their float precision); one too small for
    # a power of ten (5e-324: log10 of its step would underflow).
    size = max(abs(lo), abs(hi))
    if hi - lo <= size * 1e-6 or (hi - lo) / max(target, 1) < 1e-300:
        hi = lo + (size if size >= 1e-290 else 1.0)
    raw = (hi - lo) / max(target, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))
    first, last = math.floor(lo / step), math.ceil(hi / step)
    digits = max(0, 1 - math.floor(math.log10(step)))
    ticks = [round(i * step, digits) if digits else i * step for i in range(first, last + 1)]
    # A quotient rounded to the next integer can leave an end a hair inside the range.
    if ticks[0] > lo:
        ticks.insert(0, round(ticks[0] - step, digits) if digits else ticks[0] - step)
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, digits) if digits else ticks[-1] + step)
    return ticks


def plain(value: float, decimals: int | None = None) -> str:
    if abs(value) >= 1e15:
        return f"{value:.3g}"
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def with_unit(number: str, unit: str) -> str:
    if not unit:
        return number
    return f"{number}{unit}" if not unit[0].isalnum() else f"{number} {unit}"


def format_bytes(value: float) -> str:
    """Bytes as pg_size_pretty writes them: 1,024-based, one decimal above bytes."""
    size, index = float(value), 0
    while abs(size) >= 1024 and index < len(_BYTE_UNITS) - 1:
        size, index = size / 1024, index + 1
    if index == 0:
        return f"{plain(size)} bytes"
    return f"{size:,.1f} {_BYTE_UNITS[index]}"


def format_value(value: float | None, *, unit: str = "", percent: bool = False) -> str:
    """A value as a tooltip or table shows it: '42', '93.3%', '1.5 MB', '12 ms'."""
    if value is None or not math.isfinite(value):
        return "no data"
    if percent:
        return f"{plain(round(value * 100, 1))}%"
    if unit == "B":
        return format_bytes(value)
    return with_unit(plain(value), unit)


@dataclass(frozen=True)
class Axis:
    """The y axis: ticks in display units (divided by `divisor`) and the axis title."""

    ticks: list[float]
    divisor: float
    suffix: str  # after each tick label: "k", "%", ""
    title: str

    @property
    def lo(self) -> float:
        return self.ticks[0] * self.divisor

    @property
    def hi(self) -> float:
        return self.ticks[-1] * self.divisor

    def label(self, tick: float) -> str:
        step = abs(self.ticks[1] - self.ticks[0]) if len(self.ticks) > 1 else 1.0
        decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
        return f"{plain(tick, decimals if abs(tick) < 1e15 else None)}{self.suffix}"


def y_axis(lo: float, hi: float, *, y_label: str, unit: str, percent: bool, target: int) -> Axis:
    lo, hi = min(lo, 0.0), max(hi, 0.0)  # bars and counts read from zero
    if percent:
        hi = max(hi, 1.0)  # a rate reads against 100%
        return Axis(nice_ticks(lo * 100, hi * 100, target), 0.01, "%", f"{y_label} (%)")
    biggest = max(abs(lo), abs(hi))
    if unit == "B":
        index = 0
        while biggest >= 1024 and index < len(_BYTE_UNITS) - 1:
            biggest, index = biggest / 1024, index + 1
        divisor = 1024.0**index
        ticks = nice_ticks(lo / divisor, hi / divisor, target)
        return Axis(ticks, divisor, "", f"{y_label} ({_BYTE_UNITS[index]})")
    index = 0
    while biggest >= 10_000 and index < len(_SI) - 1:
        biggest, index = biggest / 1000, index + 1
    divisor = 1000.0**index
    title = f"{y_label} ({unit})" if unit else y_label
    return Axis(nice_ticks(lo / divisor, hi / divisor, target), divisor, _SI[index], title)


def x_key(x: X) -> str:
    if isinstance(x, datetime):
        return local(x).isoformat(timespec="minutes")
    if isinstance(x, date):
        return x.isoformat()
    return str(x)


def local(x: datetime) -> datetime:
    """An aware moment on the page's clock (the admin's time zone); a naive one as it is."""
    try:
        return timezone.localtime(x) if timezone.is_aware(x) else x
    except OverflowError:  # within hours of year 1 or 9999
        return x


def x_text(x: X) -> str:
    if isinstance(x, datetime):
        return f"{local(x):%Y-%m-%d %H:%M}"
    return x_key(x)


def x_tick(x: X, span: float = 0.0) -> str:
    """An x as a tick label; moments by the `span` (seconds) of the axis: the hours within a
    day, the day over more than three, both in between."""
    if isinstance(x, datetime):
        moment = local(x)
        if span <= 86_400:
            return f"{moment:%H:%M}"
        return f"{moment:%b} {moment.day}" + ("" if span > 3 * 86_400 else f" {moment:%H:%M}")
    if isinstance(x, date):
        return f"{x:%b} {x.day}"
    text = str(x)
    return text if len(text) <= 12 else text[:11] + "…"


def tick_labels(values: Sequence[X]) -> list[str]:
    """Each x as its tick label (moments labelled by how long the axis is)."""
    times = time_keys([x for x in values if isinstance(x, datetime)]) or [0.0]
    return [x_tick(x, max(times) - min(times)) for x in values]


def time_keys(values: Sequence[X]) -> list[float] | None:
    """Each x as a number on a time line when all are dates or all datetimes; else None."""
    if values and all(isinstance(x, datetime) for x in values):
        return [
            (x if timezone.is_aware(x) else x.replace(tzinfo=UTC)).timestamp()
            for x in values
            if isinstance(x, datetime)
        ]
    if all(isinstance(x, date) and not isinstance(x, datetime) for x in values):
        return [float(x.toordinal()) for x in values if isinstance(x, date)]
    return None


def positions(categories: list[X], left: float, width: float) -> list[float]:
    """Where each x sits: by time for dates and datetimes, evenly spaced otherwise."""
    if len(categories) == 1:
        return [left + width / 2]
    keys = time_keys(categories) or [float(i) for i in range(len(categories))]
    lo, hi = min(keys), max(keys)
    span = (hi - lo) or 1.0
    return [left + (k - lo) / span * width for k in keys]


def labelled(xs: Sequence[float], each: float) -> list[int]:
    """Which x values get a tick label: the newest, then each one `each` px from the last."""
    chosen: list[int] = []
    for i in range(len(xs) - 1, -1, -1):
        if not chosen or abs(xs[chosen[-1]] - xs[i]) >= each:
            chosen.append(i)
    return chosen[::-1]


def data_y(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
