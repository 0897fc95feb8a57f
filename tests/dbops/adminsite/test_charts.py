"""The admin's SVG charts: valid XML whatever the data, escaped names, nice axes (D10)."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dbops.adminsite.charts import Series, bar_chart, line_chart, sparkline
from dbops.adminsite.chartscale import drawable, format_value, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

values = st.one_of(
    st.none(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
)
names = st.text(min_size=0, max_size=20) | st.sampled_from(['<b>"Tom & Jerry"</b>', "a'b"])
DAY = date(2026, 12, 1)


@st.composite
def series_lists(draw: st.DrawFn) -> list[Series]:
    """0-4 series of 0-400 points over dates or datetimes, or 0-40 over strings."""
    kind = draw(st.sampled_from(["date", "datetime", "str", "mixed"]))
    length = draw(st.integers(min_value=0, max_value=400 if kind in {"date", "datetime"} else 40))
    if kind == "date":
        xs: list = [DAY + timedelta(days=i) for i in range(length)]
    elif kind == "datetime":
        xs = [datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=17 * i) for i in range(length)]
    elif kind == "str":
        xs = draw(st.lists(names, min_size=length, max_size=length, unique=True))
    else:  # days, naive and aware moments and labels together, in any order
        x = st.one_of(st.dates(), st.datetimes(), st.datetimes(timezones=st.just(UTC)), names)
        xs = draw(st.lists(x, min_size=length, max_size=length, unique_by=str))
    count = draw(st.integers(min_value=0, max_value=4))
    column = st.lists(values, min_size=length, max_size=length)
    return [Series(draw(names), list(zip(xs, draw(column), strict=True))) for _ in range(count)]


def as_attribute(name: str) -> str:
    """The name as an XML parser reads it back from an attribute."""
    kept = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", "", name)
    return re.sub("[\t\n]", " ", kept.replace("\r\n", "\n").replace("\r", "\n"))


def parse(html: str) -> ET.Element:
    return ET.fromstring(html)


GEOMETRY = ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height", "data-y")


def assert_numbers_finite(figure: ET.Element) -> None:
    """Every coordinate, path and tick label is a finite number: no nan, no inf."""
    for element in figure.iter():
        for name in GEOMETRY:
            if element.get(name) is not None:
                assert math.isfinite(float(element.get(name))), (name, element.get(name))
        for number in re.findall(r"[-\w.+]+", element.get("d", "").replace("M", " ")):
            assert math.isfinite(float(number.lstrip("L"))), element.get("d")
    for axis in figure.iter(f"{SVG}g"):
        if "cg-axis-y" in axis.get("class", ""):
            for label in axis.iter(f"{SVG}text"):
                assert not re.search(r"nan|inf", label.text or "", re.IGNORECASE), label.text


def series_groups(figure: ET.Element) -> list[ET.Element]:
    return [g for g in figure.iter(f"{SVG}g") if "cg-series" in g.get("class", "").split()]


def check_figure(html: str, series: list[Series], kind: str, mark: str) -> None:
    figure = parse(html)  # raises on anything that is not well-formed
    assert figure.tag == "figure"
    assert figure.get("data-chart") == kind
    assert figure.get("data-series") == str(len(series))
    assert_numbers_finite(figure)
    drawn = [sum(drawable(v) for _x, v in s.points) for s in series]
    if not any(drawn):
        assert figure.find(".//p[@class='cg-chart-empty']") is not None
        assert not series_groups(figure)
        return
    groups = series_groups(figure)
    assert [g.get("data-series-name") for g in groups] == [as_attribute(s.name) for s in series]
    for group, count in zip(groups, drawn, strict=True):
        marks = [m for m in group if m.tag == f"{SVG}{mark}"]
        assert len(marks) == count
        for m in marks:
            assert m.find(f"{SVG}title") is not None
            assert math.isfinite(float(m.get("data-y")))
    axis = next(g for g in figure.iter(f"{SVG}g") if "cg-axis-x" in g.get("class", ""))
    ticks = [(float(t.get("x")), len(t.text or "")) for t in axis.iter(f"{SVG}text")]
    for (x1, len1), (x2, len2) in itertools.pairwise(ticks):  # labels never overlap
        assert x2 - x1 >= 3.5 * (len1 + len2), ticks
    legend = figure.find("ul[@class='cg-legend']")
    assert (legend is not None) == (len(series) > 1)
    svg = figure.find(f"{SVG}svg")
    assert svg.get("role") == "img"
    assert svg.find(f"{SVG}title") is not None


@EXAMPLES
@given(series=series_lists(), percent=st.booleans(), unit=st.sampled_from(["", "ms", "B", "%"]))
def test_a_line_chart_is_valid_svg_for_any_data(
    series: list[Series], percent: bool, unit: str
) -> None:
    html = line_chart(series, title="Trend <&>", y_label="Count", unit=unit, percent=percent)
    check_figure(html, series, "line", "circle")


@EXAMPLES
@given(series=series_lists(), stacked=st.booleans(), unit=st.sampled_from(["", "ms", "B"]))
def test_a_bar_chart_is_valid_svg_for_any_data(
    series: list[Series], stacked: bool, unit: str
) -> None:
    html = bar_chart(series, title="Bars", y_label="Count", unit=unit, stacked=stacked)
    check_figure(html, series, "bar", "rect")


@EXAMPLES
@given(points=st.lists(values, max_size=400), label=names)
def test_a_sparkline_is_valid_svg_for_any_data(points: list[float | None], label: str) -> None:
    figure = parse(sparkline(points, label=label, unit="ms"))
    circles = list(figure.iter(f"{SVG}circle"))
    assert len(circles) == sum(drawable(v) for v in points)


def test_a_sparkline_names_its_points_by_their_x_values() -> None:
    days = [date(2026, 12, 1) + timedelta(days=n) for n in range(3)]
    figure = parse(sparkline([1.0, None, 3.0], label="Done", xs=days))
    circles = list(figure.iter(f"{SVG}circle"))
    assert [c.get("data-x") for c in circles] == ["2026-12-01", "2026-12-03"]
    assert circles[-1].findtext(f"{SVG}title") == "Done · 2026-12-03: 3"
    with pytest.raises(ValueError, match="2 x values for 3 values"):
        sparkline([1.0, 2.0, 3.0], label="Done", xs=days[:2])


@EXAMPLES
@given(
    lo=st.floats(min_value=-1e300, max_value=1e300),
    hi=st.floats(min_value=-1e300, max_value=1e300),
    target=st.integers(min_value=2, max_value=10),
)
@example(lo=0.0, hi=5e-324, target=5)
@example(lo=2.2250738585e-313, hi=2.225073858507e-311, target=2)  # found by a CI run
@example(lo=-1e-310, hi=1e-310, target=3)
@example(lo=-1e300, hi=-1e300, target=2)
@example(lo=-9.999999995939094e299, hi=-9.999999996050002e299, target=2)
@example(lo=-9.999999999999995e299, hi=-9.999999999999993e299, target=2)
def test_ticks_are_nice_and_cover_the_range(lo: float, hi: float, target: int) -> None:
    ticks = nice_ticks(lo, hi, target)
    assert ticks[0] <= min(lo, hi) and ticks[-1] >= max(lo, hi)
    assert 2 <= len(ticks) <= 4 * target + 2
    steps = [b - a for a, b in itertools.pairwise(ticks)]
    step = steps[0]
    assert step > 0
    assert all(math.isclose(s, step, rel_tol=1e-6) for s in steps)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5, 10))


def test_names_and_labels_are_escaped() -> None:
    name = '<script>alert("x")</script> & Co'
    html = line_chart(
        [Series(name, [(DAY, 1.0)]), Series("b", [(DAY, 2.0)])], title=name, y_label=name
    )
    assert "<script>" not in html
    figure = parse(html)
    assert figure.find(f".//{SVG}g[@data-series-name]").get("data-series-name") == name
    assert figure.find("figcaption").text == name


def test_a_tooltip_names_the_series_the_day_and_the_value_with_its_unit() -> None:
    html = line_chart(
        [Series("Latency", [(DAY, 12.5), (DAY + timedelta(days=1), None)])],
        title="t",
        y_label="Time",
        unit="ms",
    )
    titles = [t.text for t in parse(html).iter(f"{SVG}title")]
    assert "Latency · 2026-12-01: 12.5 ms" in titles


def test_none_is_a_gap_in_the_line() -> None:
    points = [(DAY + timedelta(days=i), v) for i, v in enumerate([1, 2, None, 4, 5])]
    html = line_chart([Series("s", points)], title="t", y_label="y")
    path = parse(html).find(f".//{SVG}path[@class='cg-line']").get("d")
    assert path.count("M") == 2 and path.count("L") == 2


def test_points_given_out_of_order_are_joined_in_time_order() -> None:
    points = [(DAY + timedelta(days=i), float(i)) for i in (3, 0, 2, 1)]
    path = parse(line_chart([Series("s", points)], title="t", y_label="y"))
    d = path.find(f".//{SVG}path[@class='cg-line']").get("d")
    xs = [float(step.split()[0]) for step in re.split("[ML]", d) if step.strip()]
    assert xs == sorted(xs) and len(xs) == 4


def test_bytes_are_drawn_in_megabytes_and_percent_as_percent() -> None:
    sizes = [(DAY + timedelta(days=i), float(i * 3 * 1024 * 1024)) for i in range(5)]
    figure = parse(line_chart([Series("size", sizes)], title="t", y_label="Size", unit="B"))
    labels = [t.text for t in figure.iter(f"{SVG}text")]
    assert "Size (MB)" in labels
    assert labels[:4] == ["0", "5", "10", "15"]
    assert "size · 2026-12-05: 12.0 MB" in [t.text for t in figure.iter(f"{SVG}title")]
    rates = [(DAY + timedelta(days=i), v) for i, v in enumerate([0.5, 0.75, 0.9])]
    figure = parse(line_chart([Series("rate", rates)], title="t", y_label="Rate", percent=True))
    labels = [t.text for t in figure.iter(f"{SVG}text")]
    assert "100%" in labels and "Rate (%)" in labels
    assert "rate · 2026-12-02: 75%" in [t.text for t in figure.iter(f"{SVG}title")]


def test_negative_bars_hang_below_zero() -> None:
    html = bar_chart([Series("delta", [("a", 5.0), ("b", -5.0)])], title="t", y_label="y")
    bars = list(parse(html).iter(f"{SVG}rect"))
    zero = next(
        float(line.get("y1"))
        for line in parse(html).iter(f"{SVG}line")
        if "cg-zero" in line.get("class", "")
    )
    up, down = bars
    assert float(up.get("y")) + float(up.get("height")) == pytest.approx(zero, abs=0.01)
    assert float(down.get("y")) == pytest.approx(zero, abs=0.01)
    assert float(up.get("height")) == pytest.approx(float(down.get("height")), abs=0.01)


def test_stacked_bars_sit_on_each_other() -> None:
    html = bar_chart(
        [Series("a", [("x", 2.0)]), Series("b", [("x", 3.0)])],
        title="t",
        y_label="y",
        stacked=True,
    )
    first, second = parse(html).iter(f"{SVG}rect")
    assert float(second.get("y")) + float(second.get("height")) == pytest.approx(
        float(first.get("y"))
    )


def test_a_single_point_and_an_all_zero_series_are_drawn() -> None:
    single = parse(line_chart([Series("one", [(DAY, 7.0)])], title="t", y_label="y"))
    assert len(list(single.iter(f"{SVG}circle"))) == 1
    zeros = [(DAY + timedelta(days=i), 0.0) for i in range(10)]
    flat = parse(line_chart([Series("zero", zeros)], title="t", y_label="y"))
    assert len(list(flat.iter(f"{SVG}circle"))) == 10
    axis = next(g for g in flat.iter(f"{SVG}g") if "cg-axis-y" in g.get("class", ""))
    ticks = [float(t.text) for t in axis.iter(f"{SVG}text") if t.get("class") is None]
    assert ticks[0] == 0 and ticks[-1] > 0  # a flat line on an axis from zero up


def test_no_series_is_the_empty_state() -> None:
    for chart in (line_chart, bar_chart):
        figure = parse(chart([], title="Nothing", y_label="y"))
        assert figure.get("data-series") == "0"
        assert figure.find("p[@class='cg-chart-empty']") is not None


def test_date_labels_are_thinned_to_fit_and_the_newest_is_labelled() -> None:
    points = [(DAY + timedelta(days=i), float(i)) for i in range(365)]
    figure = parse(line_chart([Series("s", points)], title="t", y_label="y"))
    axis = next(g for g in figure.iter(f"{SVG}g") if "cg-axis-x" in g.get("class", ""))
    labels = [t.text for t in axis.iter(f"{SVG}text")]
    assert 3 <= len(labels) <= 11
    last = DAY + timedelta(days=364)
    assert labels[-1] == f"{last:%b} {last.day}"


def test_moments_are_labelled_by_hours_within_a_day_and_by_days_over_a_month() -> None:
    def labels(step: timedelta) -> list[str]:
        start = datetime(2026, 12, 1, tzinfo=UTC)
        points = [(start + step * i, 1.0) for i in range(30)]
        figure = parse(line_chart([Series("s", points)], title="t", y_label="y"))
        axis = next(g for g in figure.iter(f"{SVG}g") if "cg-axis-x" in g.get("class", ""))
        return [t.text for t in axis.iter(f"{SVG}text")]

    assert labels(timedelta(minutes=30))[-1] == "14:30"
    assert labels(timedelta(hours=2))[-1] == "Dec 3 10:00"
    assert labels(timedelta(days=1))[-1] == "Dec 30"


def test_the_numbers_are_in_a_table_below_the_chart() -> None:
    html = bar_chart(
        [Series("Done", [(DAY, 3.0), (DAY + timedelta(days=1), None)])],
        title="t",
        y_label="y",
        x_label="Day",
    )
    rows = parse(html).findall(".//details/table/tbody/tr")
    assert [[c.text for c in row] for row in rows] == [
        ["2026-12-01", "3"],
        ["2026-12-02", "no data"],
    ]


@pytest.mark.parametrize(
    ("value", "kwargs", "text"),
    [
        (1536, {"unit": "B"}, "1.5 kB"),
        (12, {"unit": "B"}, "12 bytes"),
        (0.933, {"percent": True}, "93.3%"),
        (1234567, {}, "1,234,567"),
        (2.5, {"unit": "ms"}, "2.5 ms"),
        (None, {}, "no data"),
    ],
)
def test_values_are_formatted_with_their_unit(value: float | None, kwargs: dict, text: str) -> None:
    assert format_value(value, **kwargs) == text
