"""Charts for the console, drawn on the server as inline SVG: pure functions from numbers to
markup (no outside host, no script). Every label is escaped; the page puts the same numbers
in a table beside each chart, so the SVG itself is one labelled image for screen readers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from markupsafe import Markup

WIDTH = 640
# Colours with at least 3:1 contrast on white (WCAG non-text contrast), told apart by the
# legend's words too, never by colour alone.
PALETTE = ("#1f5f8b", "#1a6e34", "#a4262c", "#4d5661", "#7a4d00", "#6b3fa0")
INK = "#1b1f24"
GRID = "#d0d7de"


def _number(value: float) -> str:
    """A figure as the chart writes it: whole numbers without a point, else one decimal."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _svg(title: str, height: int, body: Markup) -> Markup:
    # A stable id from the content: the same chart twice on a page is the same image.
    ident = "chart-" + hashlib.sha256((title + str(body)).encode()).hexdigest()[:12]
    return Markup(
        '<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        'aria-labelledby="{ident}" viewBox="0 0 {width} {height}" width="{width}" '
        'height="{height}"><title id="{ident}">{title}</title>{body}</svg>'
    ).format(ident=ident, width=WIDTH, height=height, title=title, body=body)


def _text(x: float, y: float, text: str, anchor: str = "start", kind: str = "") -> Markup:
    """A label (escaped by Markup.format, as every value here)."""
    return Markup(
        '<text{kind} x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{ink}" '
        'font-family="system-ui, sans-serif" font-size="12">{text}</text>'
    ).format(
        kind=Markup(' class="{}"').format(kind) if kind else "",
        x=x,
        y=y,
        anchor=anchor,
        ink=INK,
        text=text,
    )


def no_data(title: str, message: str = "No data for this period") -> Markup:
    """An empty chart that says so (a chart of nothing is not an error)."""
    frame = Markup(
        '<rect x="0.5" y="0.5" width="{w}" height="79" fill="none" stroke="{grid}"/>'
    ).format(w=WIDTH - 1, grid=GRID)
    return _svg(title, 80, frame + _text(WIDTH / 2, 45, message, "middle", "no-data"))


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    max_value: float | None = None,
    value_labels: Sequence[str] | None = None,
) -> Markup:
    """Horizontal bars, one per (label, value), each with its label and value written out.

    `max_value` fixes the scale (100 for percentages); `value_labels` replaces the written
    values (e.g. durations as text). No bars, or none above zero, gives the no-data chart.
    """
    if not bars or all(value <= 0 for _, value in bars):
        return no_data(title)
    label_width, bar_height, gap, top = 200, 20, 8, 8
    room = WIDTH - label_width - 90
    scale_top = max(max_value or 0.0, max(value for _, value in bars)) or 1.0
    height = top * 2 + len(bars) * (bar_height + gap)
    body = Markup()
    for index, (label, value) in enumerate(bars):
        y = top + index * (bar_height + gap)
        width = max(0.0, value) / scale_top * room
        shown = value_labels[index] if value_labels is not None else _number(value) + unit
        text_y = y + bar_height * 0.7
        body += _text(label_width - 6, text_y, _clip(label), "end")
        body += Markup(
            '<rect class="bar" x="{x}" y="{y}" width="{w:.1f}" height="{h}" fill="{fill}"/>'
        ).format(x=label_width, y=y, w=width, h=bar_height, fill=PALETTE[0])
        body += _text(label_width + width + 6, text_y, shown)
    return _svg(title, height, body)


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
) -> Markup:
    """One line per (name, values) over `x_labels` (days), a dot per value, a legend, and
    the first, middle and last x labels written under the axis."""
    if not x_labels or not series:
        return no_data(title)
    for name, values in series:
        if len(values) != len(x_labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(x_labels)}")
    left, right, top, plot_height = 44, 16, 28, 180
    height = top + plot_height + 40
    room = WIDTH - left - right
    peak = max((max(values) for _, values in series if values), default=0.0) or 1.0
    step = room / max(1, len(x_labels) - 1)
    bottom = top + plot_height

    def x_at(index: int) -> float:
        return left + (index * step if len(x_labels) > 1 else room / 2)

    def y_at(value: float) -> float:
        return bottom - max(0.0, value) / peak * plot_height

    line = Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"/>')
    body = line.format(left, bottom, WIDTH - right, bottom, GRID)
    body += line.format(left, top, left, bottom, GRID)
    body += _text(left - 6, top + 4, _number(peak), "end")
    body += _text(left - 6, bottom, "0", "end")
    last = len(x_labels) - 1
    for index in sorted({0, len(x_labels) // 2, last}):
        anchor = "start" if index == 0 else ("end" if index == last else "middle")
        body += _text(x_at(index), bottom + 18, x_labels[index], anchor)
    radius = 3 if len(x_labels) <= 31 else 1.5  # 90 days of dots would hide the lines
    legend_x = left
    for number, (name, values) in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        points = " ".join(f"{x_at(i):.1f},{y_at(v):.1f}" for i, v in enumerate(values))
        body += Markup(
            '<polyline class="series" points="{}" fill="none" stroke="{}" stroke-width="2"/>'
        ).format(points, colour)
        for i, v in enumerate(values):
            body += Markup(
                '<circle class="point" cx="{:.1f}" cy="{:.1f}" r="{}" fill="{}"/>'
            ).format(x_at(i), y_at(v), radius, colour)
        body += Markup('<rect x="{}" y="6" width="12" height="12" fill="{}"/>').format(
            legend_x, colour
        )
        body += _text(legend_x + 16, 16, _clip(name))
        legend_x += 24 + 8 * min(len(name), 24)
    return _svg(title, height, body)


def _clip(label: str, limit: int = 26) -> str:
    """Long names cut to fit beside the bars (the table beside the chart has them whole)."""
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"
