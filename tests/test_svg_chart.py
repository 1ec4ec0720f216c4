"""The charts of the loss plot and the report: drawn as SVG, with round ticks covering the data."""

from __future__ import annotations

import math
from xml.etree import ElementTree

import pytest

from invokeai_ti.outputs.learning_log import NormRow
from invokeai_ti.outputs.learning_report import score_axes, size_axes
from invokeai_ti.outputs.svg_chart import figure, nice_ticks, tick_text

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("low, high, integer", [
    (0.0862, 0.0921, False), (0, 0.0055, False), (1, 200, True), (1, 7, True), (-3.5, 12.25, False), (5, 5, True)])
def test_ticks_are_round_evenly_spaced_and_cover_the_data(low, high, integer):
    ticks = nice_ticks(low, high, integer=integer)
    assert ticks[0] <= low and ticks[-1] >= high and 3 <= len(ticks) <= 12
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 5)), f"{step} is not 1, 2 or 5 times a power of ten"
    if integer:
        assert all(float(t).is_integer() for t in ticks)
    labels = [tick_text(t, ticks) for t in ticks]
    assert len(set(labels)) == len(labels), f"labels tell the ticks apart: {labels}"


def test_the_learning_figure_marks_the_recommended_and_settled_steps_and_the_size_limits():
    history = [(0, 0.10), (10, 0.09), (20, 0.085), (30, 0.0852), (40, 0.0851)]
    norms = [NormRow(step, "clip_l", 0.3, 0.3 + step / 100, 0.1) for step in range(1, 41)]
    drawing = ElementTree.fromstring(figure([score_axes(history), size_axes(norms)]))
    legend = [text.text for text in drawing.findall(f".//{SVG}g[@class='legend']/{SVG}text")]
    assert legend == ["recommended: step 20", "settled by step 40", "clip_l largest vector",
                      "clip_l vocabulary median", "clip_l 5 x median"]
    assert len(drawing.findall(f".//{SVG}circle")) == len(history), "each evaluation is a point"


def test_an_empty_chart_says_why_instead_of_drawing_axes():
    drawing = ElementTree.fromstring(figure([score_axes([])]))
    texts = [text.text for text in drawing.findall(f".//{SVG}text")]
    assert texts == ["fixed evaluation batch", "no evaluation scored"]
