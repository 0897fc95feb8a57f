"""Server-side SVG charts for the admin: lines, bars and sparklines (D10).

Pure Python building SVG text: no JavaScript, nothing to vendor, drawn the same under the
admin's strict Content-Security-Policy, and testable as XML. Colours and fonts come from
classes (`cg-s0`..`cg-s7`, `cg-axis`, ...) styled by `dbops/static/dbops/charts.css` in the
admin's light and dark themes; nothing here writes a `style`. Every text that reaches the
SVG (titles, labels, series names, x values) is escaped: household and member names are
user data.

Values: `None`, NaN, infinities and magnitudes beyond 1e300 are not drawn (a gap in a line,
no bar). With `percent=True` the values are fractions (0.93 is drawn as 93%). A `unit` of
"B" draws bytes in kB/MB/GB (1024-based, as PostgreSQL's pg_size_pretty); any other unit
("ms", "points") is appended to the numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from dbops.adminsite.chartscale import (
    Axis,
    X,
    data_y,
    drawn,
    format_value,
    labelled,
    positions,
    tick_labels,
    time_keys,
    x_key,
    x_text,
    y_axis,
)

WIDTH = 560  # the viewBox; the page scales it to its column (about 500 px in two columns)
PALETTE = 8  # cg-s0 .. cg-s7, then the colours repeat
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class Series:
    """One named line or set of bars: (x, value) pairs; a value None is a gap."""

    name: str
    points: Sequence[tuple[X, float | None]]


def _text(value: object) -> str:
    """Escape for SVG/HTML text and attributes; drop characters XML cannot carry."""
    return str(escape(_XML_INVALID.sub("", str(value))))


def _values(series: Sequence[Series]) -> list[float]:
    return [v for s in series for _x, raw in s.points if (v := drawn(raw)) is not None]


def _categories(series: Sequence[Series]) -> list[X]:
    """Every x value once, in time order when they are all dates or all datetimes."""
    seen: dict[str, X] = {}
    for s in series:
        for x, _value in s.points:
            seen.setdefault(x_key(x), x)
    values = list(seen.values())
    keys = time_keys(values)
    if keys is not None:
        values = [x for _key, x in sorted(zip(keys, values, strict=True), key=lambda p: p[0])]
    return values


# -- the figure ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    height: int
    left: float = 68.0
    right: float = 24.0
    top: float = 14.0
    bottom: float = 44.0

    @property
    def plot_width(self) -> float:
        return WIDTH - self.left - self.right

    @property
    def plot_bottom(self) -> float:
        return self.height - self.bottom

    @property
    def plot_height(self) -> float:
        return self.plot_bottom - self.top


def _empty(kind: str, count: int, title: str) -> SafeString:
    return mark_safe(
        f'<figure class="cg-chart cg-chart-none" data-chart="{kind}" data-series="{count}">'
        f'<figcaption class="cg-chart-title">{_text(title)}</figcaption>'
        '<p class="cg-chart-empty">No data for this period.</p></figure>'
    )


def _legend(series: Sequence[Series]) -> str:
    if len(series) < 2:
        return ""
    items = "".join(
        f'<li><span class="cg-swatch cg-s{i % PALETTE}"></span>{_text(s.name)}</li>'
        for i, s in enumerate(series)
    )
    return f'<ul class="cg-legend">{items}</ul>'


def _table(
    series: Sequence[Series], categories: list[X], x_label: str, unit: str, percent: bool
) -> str:
    values = [{x_key(x): v for x, v in s.points} for s in series]
    head = "".join(f'<th scope="col">{_text(s.name)}</th>' for s in series)
    rows = []
    for x in categories:
        key = x_key(x)
        cells = "".join(
            f"<td>{_text(format_value(v.get(key), unit=unit, percent=percent))}</td>"
            for v in values
        )
        rows.append(f'<tr><th scope="row">{_text(x_text(x))}</th>{cells}</tr>')
    return (
        '<details class="cg-chart-data"><summary>Show the numbers</summary>'
        f'<table><thead><tr><th scope="col">{_text(x_label)}</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def _describe(kind: str, series: Sequence[Series], categories: list[X], fmt: dict[str, Any]) -> str:
    parts = [
        f"{kind.capitalize()} chart of {len(series)} series over {len(categories)} points, "
        f"{x_text(categories[0])} to {x_text(categories[-1])}."
    ]
    for s in series:
        values = _values([s])
        if values:
            parts.append(
                f"{s.name}: from {format_value(min(values), **fmt)} to "
                f"{format_value(max(values), **fmt)}, last {format_value(values[-1], **fmt)}."
            )
    return " ".join(parts)


def _axes(frame: _Frame, axis: Axis, y: Callable[[float], float], x_label: str) -> list[str]:
    out = ['<g class="cg-axis cg-axis-y">']
    for tick in axis.ticks:
        ty = y(tick * axis.divisor)
        out.append(
            f'<line class="cg-grid{" cg-zero" if tick == 0 else ""}" x1="{frame.left}" '
            f'y1="{ty:.1f}" x2="{WIDTH - frame.right}" y2="{ty:.1f}"/>'
            f'<text x="{frame.left - 6}" y="{ty:.1f}" text-anchor="end" '
            f'dominant-baseline="middle">{_text(axis.label(tick))}</text>'
        )
    mid = frame.top + frame.plot_height / 2
    out.append(
        f'<text class="cg-axis-title" transform="translate(14 {mid:.1f}) rotate(-90)" '
        f'text-anchor="middle">{_text(axis.title)}</text></g>'
    )
    if x_label:
        out.append(
            f'<text class="cg-axis-title" x="{frame.left + frame.plot_width / 2:.1f}" '
            f'y="{frame.height - 4}" text-anchor="middle">{_text(x_label)}</text>'
        )
    return out


def _x_ticks(frame: _Frame, categories: list[X], xs: list[float]) -> str:
    base = frame.plot_bottom
    out = [
        f'<g class="cg-axis cg-axis-x"><line class="cg-baseline" x1="{frame.left}" '
        f'y1="{base}" x2="{WIDTH - frame.right}" y2="{base}"/>'
    ]
    labels = tick_labels(categories)
    each = 7.0 * max(len(label) for label in labels) + 16  # about 7 px a character at 12 px
    for i in labelled(xs, each):
        out.append(
            f'<line class="cg-tick" x1="{xs[i]:.1f}" y1="{base}" x2="{xs[i]:.1f}" '
            f'y2="{base + 4}"/><text x="{xs[i]:.1f}" y="{base + 16}" text-anchor="middle">'
            f"{_text(labels[i])}</text>"
        )
    out.append("</g>")
    return "".join(out)


def _figure(kind: str, series: Sequence[Series], title: str, body: list[str], extra: str) -> str:
    return (
        f'<figure class="cg-chart" data-chart="{kind}" data-series="{len(series)}">'
        f'<figcaption class="cg-chart-title">{_text(title)}</figcaption>'
        f"{''.join(body)}{_legend(series)}{extra}</figure>"
    )


def _svg_open(height: int, title: str, desc: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="cg-svg" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">'
        f"<title>{_text(title)}</title><desc>{_text(desc)}</desc>"
    )


def _point_title(name: str, x: X, value: float, fmt: dict[str, Any]) -> str:
    return f"<title>{_text(f'{name} · {x_text(x)}: {format_value(value, **fmt)}')}</title>"


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    unit: str = "",
    x_label: str = "",
    percent: bool = False,
    height: int = 260,
) -> SafeString:
    """Lines over x (dates and datetimes spaced by time); None values are gaps."""
    categories = _categories(series)
    values = _values(series)
    if not values:
        return _empty("line", len(series), title)
    frame = _Frame(height=height, bottom=44.0 if x_label else 28.0)
    fmt = {"unit": unit, "percent": percent}
    axis = y_axis(
        min(values), max(values), y_label=y_label, unit=unit, percent=percent,
        target=max(2, int(frame.plot_height // 45)),
    )  # fmt: skip

    def y(value: float) -> float:
        return frame.plot_bottom - (value - axis.lo) / (axis.hi - axis.lo) * frame.plot_height

    xs = positions(categories, frame.left, frame.plot_width)
    where = {x_key(x): (i, xs[i]) for i, x in enumerate(categories)}
    body = [_svg_open(height, title, _describe("line", series, categories, fmt))]
    body += _axes(frame, axis, y, x_label)
    body.append(_x_ticks(frame, categories, xs))
    dense = len(categories) > 45
    for i, s in enumerate(series):
        path: list[str] = []
        points: list[str] = []
        pen_down = False
        for x, raw in sorted(s.points, key=lambda point: where[x_key(point[0])][0]):
            v = drawn(raw)
            if v is None:
                pen_down = False
                continue
            px, py = where[x_key(x)][1], y(v)
            path.append(f"{'L' if pen_down else 'M'}{px:.1f} {py:.1f}")
            pen_down = True
            points.append(
                f'<circle class="cg-point{" cg-dense" if dense else ""}" cx="{px:.1f}" '
                f'cy="{py:.1f}" r="{3 if dense else 3.5}" data-x="{_text(x_key(x))}" '
                f'data-y="{data_y(v)}">{_point_title(s.name, x, v, fmt)}</circle>'
            )
        line = f'<path class="cg-line" d="{" ".join(path)}"/>' if path else ""
        body.append(
            f'<g class="cg-series cg-s{i % PALETTE}" data-series-name="{_text(s.name)}">'
            f"{line}{''.join(points)}</g>"
        )
    body.append("</svg>")
    return mark_safe(
        _figure("line", series, title, body, _table(series, categories, x_label, unit, percent))
    )


def bar_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    unit: str = "",
    x_label: str = "",
    stacked: bool = False,
    height: int = 260,
) -> SafeString:
    """Bars per x, side by side per series (or stacked); negative bars hang below zero."""
    categories = _categories(series)
    keys = [x_key(x) for x in categories]
    index = {k: i for i, k in enumerate(keys)}
    values = _values(series)
    if not values:
        return _empty("bar", len(series), title)
    frame = _Frame(height=height, bottom=44.0 if x_label else 28.0)
    fmt = {"unit": unit, "percent": False}
    if stacked:
        up = [0.0] * len(keys)
        down = [0.0] * len(keys)
        for s in series:
            for x, raw in s.points:
                if (v := drawn(raw)) is not None:
                    (up if v >= 0 else down)[index[x_key(x)]] += v
        lo, hi = min(down), max(up)
    else:
        lo, hi = min(values), max(values)
    axis = y_axis(
        lo, hi, y_label=y_label, unit=unit, percent=False,
        target=max(2, int(frame.plot_height // 45)),
    )  # fmt: skip

    def y(value: float) -> float:
        return frame.plot_bottom - (value - axis.lo) / (axis.hi - axis.lo) * frame.plot_height

    band = frame.plot_width / len(categories)
    inner = band * (0.8 if band >= 4 else 1.0)
    width = inner if stacked else inner / max(1, len(series))
    centres = [frame.left + band * (i + 0.5) for i in range(len(categories))]
    body = [_svg_open(height, title, _describe("bar", series, categories, fmt))]
    body += _axes(frame, axis, y, x_label)
    body.append(_x_ticks(frame, categories, centres))
    base_up = [0.0] * len(keys)
    base_down = [0.0] * len(keys)
    zero = y(0.0)
    for i, s in enumerate(series):
        bars: list[str] = []
        for x, raw in s.points:
            v = drawn(raw)
            if v is None:
                continue
            c = index[x_key(x)]
            if stacked:
                bucket = base_up if v >= 0 else base_down
                start = bucket[c]
                bucket[c] += v
                y1, y2 = y(start), y(bucket[c])
                left = centres[c] - inner / 2
            else:
                y1, y2 = zero, y(v)
                left = centres[c] - inner / 2 + width * i
            top, tall = min(y1, y2), abs(y2 - y1)
            bars.append(
                f'<rect class="cg-bar" x="{left:.2f}" y="{top:.2f}" width="{width:.2f}" '
                f'height="{tall:.2f}" data-x="{_text(x_key(x))}" data-y="{data_y(v)}">'
                f"{_point_title(s.name, x, v, fmt)}</rect>"
            )
        body.append(
            f'<g class="cg-series cg-s{i % PALETTE}" data-series-name="{_text(s.name)}">'
            f"{''.join(bars)}</g>"
        )
    body.append("</svg>")
    return mark_safe(
        _figure("bar", series, title, body, _table(series, categories, x_label, unit, False))
    )


def sparkline(
    values: Sequence[float | None],
    *,
    label: str,
    unit: str = "",
    xs: Sequence[X] | None = None,
) -> SafeString:
    """A small line without axes, with the last value beside it; None values are gaps.

    `xs` (as many as the values: dates, datetimes or strings) name each point in its
    tooltip and data-x; without them a point is named by its position, from 1.
    """
    if xs is not None and len(xs) != len(values):
        raise ValueError(f"sparkline {label!r}: {len(xs)} x values for {len(values)} values")
    shown = [v for raw in values if (v := drawn(raw)) is not None]
    if not shown:
        return mark_safe(
            f'<figure class="cg-chart cg-sparkline cg-chart-none" data-chart="sparkline" '
            f'data-series="0"><span class="cg-chart-empty">{_text(label)}: no data</span>'
            "</figure>"
        )
    w, h, pad = 120.0, 28.0, 3.0
    lo, hi = min(shown), max(shown)
    span = (hi - lo) or 1.0
    step = (w - 2 * pad) / max(1, len(values) - 1)
    path: list[str] = []
    points: list[str] = []
    pen_down = False
    for i, raw in enumerate(values):
        v = drawn(raw)
        if v is None:
            pen_down = False
            continue
        px = pad + step * i if len(values) > 1 else w / 2
        py = h - pad - (v - lo) / span * (h - 2 * pad) if hi != lo else h / 2
        path.append(f"{'L' if pen_down else 'M'}{px:.1f} {py:.1f}")
        pen_down = True
        name = x_text(xs[i]) if xs is not None else str(i + 1)
        text = f"{label} · {name}: {format_value(v, unit=unit)}"
        data_x = x_key(xs[i]) if xs is not None else str(i)
        points.append(
            f'<circle class="cg-point cg-dense" cx="{px:.1f}" cy="{py:.1f}" r="2" '
            f'data-x="{_text(data_x)}" data-y="{data_y(v)}"><title>{_text(text)}</title></circle>'
        )
    last = format_value(shown[-1], unit=unit)
    return mark_safe(
        '<figure class="cg-chart cg-sparkline" data-chart="sparkline" data-series="1">'
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="cg-svg" '
        f'viewBox="0 0 {w:.0f} {h:.0f}" width="{w:.0f}" height="{h:.0f}">'
        f"<title>{_text(f'{label}: last {last}')}</title>"
        f'<g class="cg-series cg-s0" data-series-name="{_text(label)}">'
        f'<path class="cg-line" d="{" ".join(path)}"/>{"".join(points)}</g></svg>'
        f'<span class="cg-spark-value">{_text(last)}</span></figure>'
    )
