"""The console's SVG charts: the right number of bars and points for known data, labels
escaped, an empty chart that says so, and well-formed SVG every time."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from imputehub.web.console import charts

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    """The chart as XML: fails if the markup is not well formed."""
    return ET.fromstring(str(markup))  # noqa: S314 - our own output, not untrusted input


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def test_a_bar_chart_has_one_bar_per_value_with_its_label_and_figure() -> None:
    svg = parsed(charts.bar_chart([("Michigan", 3), ("TOPMed", 1.5)], title="Done"))
    bars = [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(bars) == 2
    assert float(bars[0].get("width", 0)) == pytest.approx(2 * float(bars[1].get("width", 0)))
    assert {"Michigan", "TOPMed", "3", "1.5"} <= set(texts(svg))
    assert svg.get("role") == "img"
    title = svg.find(f"{SVG}title")
    assert title is not None
    assert title.text == "Done"
    assert svg.get("aria-labelledby") == title.get("id")


def test_a_bar_chart_on_a_fixed_scale_writes_the_given_value_labels() -> None:
    svg = parsed(
        charts.bar_chart(
            [("a", 25.0)], title="Failure rate", max_value=100.0, value_labels=["25 %"]
        )
    )
    (bar,) = [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert float(bar.get("width", 0)) == pytest.approx((charts.WIDTH - 200 - 90) / 4, abs=0.1)
    assert "25 %" in texts(svg)


def test_a_line_chart_has_a_line_per_series_and_a_point_per_day() -> None:
    days = [f"2026-12-0{n}" for n in range(1, 8)]
    svg = parsed(
        charts.line_chart(
            days,
            [("submitted", [1, 2, 3, 4, 5, 6, 7]), ("failed", [0, 0, 1, 0, 0, 0, 2])],
            title="Jobs per day",
        )
    )
    assert len([p for p in svg.iter(f"{SVG}polyline") if p.get("class") == "series"]) == 2
    assert len([c for c in svg.iter(f"{SVG}circle") if c.get("class") == "point"]) == 14
    labels = texts(svg)
    assert {"submitted", "failed", "2026-12-01", "2026-12-07", "7"} <= set(labels)


def test_labels_and_titles_are_escaped() -> None:
    hostile = '<script>alert("x")</script>&'
    for markup in (
        charts.bar_chart([(hostile, 1)], title=hostile),
        charts.line_chart(["d1"], [(hostile, [1])], title=hostile),
        charts.no_data(hostile, hostile),
    ):
        assert "<script>" not in str(markup)
        assert "&lt;script&gt;" in str(markup)
        svg = parsed(markup)  # still well formed
        assert not list(svg.iter(f"{SVG}script"))


def test_empty_data_gives_a_chart_that_says_no_data() -> None:
    for markup in (
        charts.bar_chart([], title="Nothing"),
        charts.bar_chart([("a", 0), ("b", 0)], title="Zeros"),
        charts.line_chart([], [], title="Nothing"),
        charts.line_chart(["d1", "d2"], [], title="No series"),
    ):
        svg = parsed(markup)
        assert "No data for this period" in texts(svg)
        assert not [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "bar"]


def test_a_series_of_the_wrong_length_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="2 values for 3"):
        charts.line_chart(["a", "b", "c"], [("s", [1, 2])], title="t")


def test_long_labels_are_cut_to_fit() -> None:
    svg = parsed(charts.bar_chart([("x" * 60, 1)], title="t"))
    assert "x" * 25 + "\u2026" in texts(svg)
