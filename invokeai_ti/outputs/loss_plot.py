"""``loss.svg``: the loss of each step, its smoothed curve and the learning rate, drawn from the
loss log so it can be redrawn at any moment."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_write
from .layout import OutputLayout
from .loss_log import LossRow, read_loss_log
from .svg_chart import DASHED, Axes, Line, figure


def smoothed(values: list[float]) -> list[float]:
    """A bias-corrected moving average over about a tenth of the run (at most 100 steps).

    The correction keeps the first steps at their real level instead of rising from zero.
    """
    window = min(100, max(1, len(values) // 10))
    keep = 1 - 1 / window
    average, out = 0.0, []
    for count, value in enumerate(values, 1):
        average = keep * average + (1 - keep) * value
        out.append(average / (1 - keep**count))
    return out


def write_loss_plot(layout: OutputLayout) -> Path:
    """Loss per step, its smoothed curve and the learning rate, as ``loss.svg``."""
    drawing = loss_svg(read_loss_log(layout.loss_log))
    atomic_write(layout.loss_plot, lambda tmp: tmp.write_text(drawing, encoding="utf-8"))
    return layout.loss_plot


def loss_svg(rows: list[LossRow]) -> str:
    """The plot, its legend below the axes: inside them it covered the curve it explains."""
    steps = [row.step for row in rows]
    losses = [row.loss for row in rows]
    lines = [
        Line(steps, losses, "#a9c4e4", "loss of each step", width=0.8),
        Line(steps, smoothed(losses), "#1f5fa8", "smoothed", width=2),
        Line(steps, [row.learning_rate for row in rows], "#d9822b", "learning rate", dash=DASHED, right=True),
    ] if rows else []
    return figure([Axes(lines, y_label="loss", right_label="learning rate", empty_text="no training step yet")],
                  height=450)
