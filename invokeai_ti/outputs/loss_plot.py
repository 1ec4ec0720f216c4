"""``loss.png``: the loss of each step, its smoothed curve and the learning rate, drawn from the
loss log so it can be redrawn at any moment."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_write
from .layout import OutputLayout
from .loss_log import LossRow, read_loss_log


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
    """Loss per step, its smoothed curve and the learning rate, as ``loss.png``."""
    figure = loss_figure(read_loss_log(layout.loss_log))
    atomic_write(layout.loss_plot, lambda tmp: figure.savefig(tmp, format="png"))
    return layout.loss_plot


def loss_figure(rows: list[LossRow]):
    """The plot, its legend below the axes: inside them it covered the curve it explains."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(9, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if rows:
        steps = [row.step for row in rows]
        losses = [row.loss for row in rows]
        axes.plot(steps, losses, color="#a9c4e4", linewidth=0.8, label="loss of each step")
        axes.plot(steps, smoothed(losses), color="#1f5fa8", linewidth=2, label="smoothed")
        rate_axes = axes.twinx()
        rate_axes.set_ylabel("learning rate")
        rates = [row.learning_rate for row in rows]
        rate_axes.plot(steps, rates, color="#d9822b", linewidth=1.2, linestyle="--", label="learning rate")
        rate_axes.set_ylim(0, max(rates) * 1.1 or 1)
        rate_axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        lines = axes.get_lines() + rate_axes.get_lines()
        figure.legend(lines, [line.get_label() for line in lines], loc="outside lower center",
                      ncols=len(lines), frameon=False)
    else:
        axes.text(0.5, 0.5, "no training step yet", ha="center", va="center", transform=axes.transAxes)
    return figure
