"""Line charts as SVG text, for the loss plot and the report's learning figure.

The report is redrawn at every preview and at the end of a run. Drawn with matplotlib, importing
it alone cost 0.74 s of CPU and 22-27 MiB of memory, the run's peak on a small model
(docs/benchmarks.md). A chart of a few lines needs none of it: SVG is text that any browser draws
sharp at every size, and the report embeds it like its other images.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

FONT = 12
# Rough width of one character of the 12 px sans-serif font, to lay the legend out in rows.
CHAR_WIDTH = 6.8
LEGEND_ROW = 18
# The stroke-dasharray of a dashed line, and of a legend entry's sample.
DASHED = "6 4"


@dataclass(frozen=True)
class Line:
    """A series of points joined by a line; ``right`` puts it on the chart's second, right axis."""

    xs: Sequence[float]
    ys: Sequence[float]
    colour: str
    label: str = ""
    width: float = 1.5
    dash: str = ""
    markers: bool = False
    right: bool = False


@dataclass(frozen=True)
class Rule:
    """A straight line across the chart at one value: vertical at a step, else horizontal."""

    value: float
    colour: str
    label: str = ""
    vertical: bool = False
    dash: str = DASHED
    width: float = 1.2


@dataclass(frozen=True)
class Axes:
    """One chart: its lines, rules and axis titles; ``from_zero`` starts the left axis at 0."""

    lines: Sequence[Line] = ()
    rules: Sequence[Rule] = ()
    title: str = ""
    x_label: str = "step"
    y_label: str = ""
    right_label: str = ""
    from_zero: bool = False
    empty_text: str = ""


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) covering low-high."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def tick_text(value: float, ticks: Sequence[float]) -> str:
    """The tick's number with as few digits as tell the ticks apart."""
    spread = max(abs(t) for t in ticks) if ticks else abs(value)
    if spread and (spread < 1e-2 or spread >= 1e5):
        return f"{value:.3g}"
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step))) if step else 0
    return f"{value:.{decimals}f}"


class _Scale:
    def __init__(self, low: float, high: float, start: float, end: float):
        self.low, self.high, self.start, self.end = low, high, start, end

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.start + (value - self.low) / span * (self.end - self.start)


def _range(values: list[float], from_zero: bool) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if from_zero:
        low = min(0.0, low)
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        return low - (0 if from_zero else pad), high + pad
    pad = (high - low) * 0.05
    return (low if from_zero else low - pad), high + pad


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = FONT, extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
            f"{html.escape(text)}</text>")


def _dash(dash: str) -> str:
    return f' stroke-dasharray="{dash}"' if dash else ""


def _polyline(line: Line, sx: _Scale, sy: _Scale) -> str:
    points = [(sx(x), sy(y)) for x, y in zip(line.xs, line.ys) if math.isfinite(y)]
    out = (f'<polyline class="series" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}" fill="none" '
           f'stroke="{line.colour}" stroke-width="{line.width}" stroke-linejoin="round"{_dash(line.dash)}/>')
    if line.markers:
        out += "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{line.colour}"/>' for x, y in points)
    return out


def _legend_entries(axes: Axes) -> list[tuple[str, str, str]]:
    """(label, colour, dash) of every labelled line and rule, in drawing order."""
    entries = [(line.label, line.colour, line.dash) for line in axes.lines if line.label]
    return entries + [(rule.label, rule.colour, rule.dash) for rule in axes.rules if rule.label]


def _legend_rows(entries: list[tuple[str, str, str]], width: float) -> list[list[tuple[str, str, str]]]:
    rows: list[list[tuple[str, str, str]]] = [[]]
    used = 0.0
    for entry in entries:
        size = _legend_width(entry[0])
        if rows[-1] and used + size > width:
            rows.append([])
            used = 0.0
        rows[-1].append(entry)
        used += size
    return rows if rows[0] else []


def _legend_width(label: str) -> float:
    """A legend entry's sample line, the gap after it and its label's estimated width."""
    return 34 + len(label) * CHAR_WIDTH


@dataclass(frozen=True)
class _Box:
    """The plot area of one chart, in the figure's pixels."""

    left: float
    x0: float
    x1: float
    y0: float
    y1: float
    right: float


def _axes_svg(axes: Axes, left: float, top: float, width: float, height: float) -> str:
    """One chart drawn in the box left/top/width/height, its legend in rows below its axes."""
    right_lines = [line for line in axes.lines if line.right]
    pad_left, pad_right = 62, (62 if right_lines else 16)
    rows = _legend_rows(_legend_entries(axes), width - pad_left - pad_right)
    legend_height = len(rows) * LEGEND_ROW + (6 if rows else 0)
    box = _Box(left, left + pad_left, left + width - pad_right, top + (22 if axes.title else 8),
               top + height - 40 - legend_height, left + width)
    parts = [f'<rect class="plot-area" x="{box.x0:.1f}" y="{box.y0:.1f}" width="{box.x1 - box.x0:.1f}" '
             f'height="{box.y1 - box.y0:.1f}" fill="white" stroke="#888"/>']
    if axes.title:
        parts.append(_text((box.x0 + box.x1) / 2, top + 15, axes.title, size=FONT + 1))
    xs = [x for line in axes.lines for x in line.xs] + [r.value for r in axes.rules if r.vertical]
    if not xs:
        parts.append(_text((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, axes.empty_text or "nothing yet"))
        return "".join(parts)
    x_ticks = nice_ticks(min(xs), max(xs), count=6, integer=True)
    sx = _Scale(x_ticks[0], x_ticks[-1], box.x0, box.x1)
    y_values = [y for line in axes.lines if not line.right for y in line.ys]
    y_ticks = nice_ticks(*_range(y_values + [r.value for r in axes.rules if not r.vertical], axes.from_zero))
    sy = _Scale(y_ticks[0], y_ticks[-1], box.y1, box.y0)
    parts += _grid(axes, box, x_ticks, y_ticks, sx, sy)
    parts += [_rule(rule, box, sx, sy) for rule in axes.rules]
    parts += [_polyline(line, sx, sy) for line in axes.lines if not line.right]
    if right_lines:
        parts += _right_axis(axes, right_lines, box, sx)
    parts += _legend(rows, box.x0, box.y1 + 46)
    return "".join(parts)


def _grid(axes: Axes, box: _Box, x_ticks: list[float], y_ticks: list[float], sx: _Scale, sy: _Scale) -> list[str]:
    """The ticks, their numbers, the horizontal grid lines and the two axis titles."""
    parts = []
    for tick in x_ticks:
        x = sx(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{box.y1:.1f}" x2="{x:.1f}" y2="{box.y1 + 5:.1f}" stroke="#888"/>')
        parts.append(_text(x, box.y1 + 18, tick_text(tick, x_ticks)))
    for tick in y_ticks:
        y = sy(tick)
        parts.append(f'<line x1="{box.x0:.1f}" y1="{y:.1f}" x2="{box.x1:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(_text(box.x0 - 6, y + 4, tick_text(tick, y_ticks), anchor="end"))
    middle = (box.y0 + box.y1) / 2
    parts.append(_text((box.x0 + box.x1) / 2, box.y1 + 34, axes.x_label))
    parts.append(_text(box.left + 14, middle, axes.y_label,
                       extra=f' transform="rotate(-90 {box.left + 14:.1f} {middle:.1f})"'))
    return parts


def _rule(rule: Rule, box: _Box, sx: _Scale, sy: _Scale) -> str:
    if rule.vertical:
        x1 = x2 = sx(rule.value)
        y1, y2 = box.y0, box.y1
    else:
        x1, x2 = box.x0, box.x1
        y1 = y2 = sy(rule.value)
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{rule.colour}" '
            f'stroke-width="{rule.width}"{_dash(rule.dash)}/>')


def _right_axis(axes: Axes, lines: list[Line], box: _Box, sx: _Scale) -> list[str]:
    """The second axis, from zero (a learning rate), and the lines drawn against it."""
    ticks = nice_ticks(*_range([y for line in lines for y in line.ys], True))
    sr = _Scale(ticks[0], ticks[-1], box.y1, box.y0)
    parts = [_text(box.x1 + 6, sr(tick) + 4, tick_text(tick, ticks), anchor="start") for tick in ticks]
    x, middle = box.right - 10, (box.y0 + box.y1) / 2
    parts.append(_text(x, middle, axes.right_label, extra=f' transform="rotate(90 {x:.1f} {middle:.1f})"'))
    return parts + [_polyline(line, sx, sr) for line in lines]


def _legend(rows: list[list[tuple[str, str, str]]], left: float, top: float) -> list[str]:
    parts, y = [], top
    for row in rows:
        x = left
        parts.append('<g class="legend">')
        for label, colour, dash in row:
            parts.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 24:.1f}" y2="{y:.1f}" stroke="{colour}" '
                         f'stroke-width="2"{_dash(dash)}/>')
            parts.append(_text(x + 30, y + 4, label, anchor="start"))
            x += _legend_width(label)
        parts.append("</g>")
        y += LEGEND_ROW
    return parts


def figure(charts: Sequence[Axes], width: int = 900, height: int = 380) -> str:
    """The charts side by side, each with its legend below it, as one standalone SVG document."""
    share = width / max(1, len(charts))
    body = "".join(_axes_svg(axes, index * share, 0, share, height) for index, axes in enumerate(charts))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" fill="#222">'
            f'<rect width="{width}" height="{height}" fill="white"/>{body}</svg>')
