"""The report's account of the learning beyond the loss: the vectors' size and the step to pick.

Read from ``vector_norms.csv`` and ``evaluation.csv`` (``outputs.learning_log``), so, like the
rest of the report, it can be redrawn at any moment and agrees with what is on disk:

- a summary line naming the vectors' size against the vocabulary's median norm, and whether it
  passed the size at which a trigger starts to drown the rest of a prompt;
- a summary line with the step where the fixed evaluation batch's score settled, the step that is
  the run's result (``outputs.run_result``) and the one installed, and the command that installs
  another (``invokeai_ti.settling`` decides the step, as it did for ``--stop_when_settled``
  during the run);
- one figure: the score with the settled step marked, and the vectors' norm beside the median.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

from ..settling import settled, too_few_scores
from .layout import OutputLayout, invokeai_name
from .learning_log import NormRow, read_evaluation, read_norms
from .svg_chart import Axes, Line, Rule, figure

# Where the world model's learning benchmark (docs/benchmarks.md, 36 fidelity runs and 8 editability
# tasks, every snapshot binned by its norm) turns down: past 5 times the vocabulary's median norm
# (0.78 there) the share of snapshots right fell for fidelity (85% -> 78% -> 74% -> 66%) and for new
# shapes asked of a colour (90% -> 77%). A demo run ends at 4.2 times, drawing 8 of 8 right.
OVERSIZE = 5.0


def oversize_message(step: int, encoder: str, norm: float, median: float) -> str:
    return (
        f"At step {step} the trigger's vectors ({encoder}) are {norm / median:.1f} times the "
        f"vocabulary's median norm ({norm:.3g} against {median:.3g}), past the {OVERSIZE:g} times at "
        "which a trigger starts to drown the rest of the prompt; pick an earlier step from the "
        "report, or train with --preserve_embedding_norm or --learn_direction_only."
    )


def last_norms(rows: list[NormRow]) -> list[NormRow]:
    last = max(row.step for row in rows)
    return [row for row in rows if row.step == last]


def size_summary(rows: list[NormRow]) -> str:
    """The vectors' size at the last step, per encoder, against the vocabulary's median norm."""
    parts = []
    for row in last_norms(rows):
        ratio = row.largest_norm / row.vocabulary_median
        over = " (past the size at which a trigger starts to drown the prompt)" if ratio > OVERSIZE else ""
        name = "" if row.encoder == "text encoder" else f"{html.escape(row.encoder)}: "
        parts.append(f"{name}{row.largest_norm:.3g}, {ratio:.1f} times the vocabulary's median norm "
                     f"({row.vocabulary_median:.3g}){over}")
    return "; ".join(parts)


def recommendation(
    history: list[tuple[int, float]], last_step: int, install: Callable[[int | str], str],
    result: int | None = None, installed: int | None = None,
) -> str:
    """Where the score settled, which step is the run's result and which is installed, and the
    command that installs another, as report HTML. ``result`` is the step the final files hold
    (``outputs.run_result``), ``installed`` the step whose file is installed (None: none is)."""
    found = settled(history)
    if found is None:
        said = (f"the evaluation score had not settled by step {last_step}: more steps may still teach "
                "something")
    elif found.best == last_step:
        said = f"the evaluation score settled by step {found.step}; the last step scored best"
    else:
        said = (f'the evaluation score settled by step {found.step}; step {found.best} scored best: '
                f'<a href="#step-{found.best}">its snapshot</a> ')
        if result == found.best:
            said += (f"is the run's result (<code>learned_embeds.bin</code>), as --stop_when_settled asks; the "
                     f"last step's is <code>{html.escape(invokeai_name(last_step))}</code>")
        else:
            said += "is the recommended one"
    recommended = None if found is None else found.best
    if installed is None:
        if recommended is None or recommended == result:
            return said
        return f"{said}, and <code>{html.escape(install(recommended))}</code> installs it"
    if recommended is not None and recommended != installed:
        other = f"<code>{html.escape(install(recommended))}</code> installs the recommended one instead"
    else:
        other = f"<code>{html.escape(install('N'))}</code> installs step N instead"
    return f"{said}. Step {installed} is installed; {other}"


def summary_rows(
    layout: OutputLayout, install: Callable[[int | str], str], result: int | None = None,
    installed: int | None = None, settings: Mapping[str, Any] | None = None,
) -> list[tuple[str, str]]:
    rows = []
    norms = read_norms(layout.norm_log)
    if norms:
        rows.append(("Vector size", size_summary(norms)))
    history = read_evaluation(layout.evaluation_log)
    if history:
        rows.append(("Step to pick", recommendation(history, history[-1][0], install, result, installed)))
    elif settings and settings.get("evaluation_scored") is False:
        rows.append(("Step to pick", html.escape(unscored(settings))))
    return rows


def unscored(settings: Mapping[str, Any]) -> str:
    """Why a run recommends no step, from its recorded settings."""
    total_steps, every = settings.get("total_steps"), settings.get("validation_steps")
    if not (isinstance(total_steps, int) and isinstance(every, int) and every > 0):
        return "The fixed evaluation batch was not scored."
    return too_few_scores(total_steps, every) + "."


def learning_figure(layout: OutputLayout) -> bytes | None:
    """The evaluation score (settled step marked) and the vectors' norm beside the median, as SVG."""
    history = read_evaluation(layout.evaluation_log)
    norms = read_norms(layout.norm_log)
    if not history and not norms:
        return None
    return figure([score_axes(history), size_axes(norms)], height=360).encode("utf-8")


def score_axes(history: list[tuple[int, float]]) -> Axes:
    rules = []
    if (found := settled(history)) is not None:
        rules = [Rule(found.best, "#2a9d3a", f"recommended: step {found.best}", vertical=True),
                 Rule(found.step, "#999999", f"settled by step {found.step}", vertical=True, dash="2 3")]
    lines = [Line([s for s, _ in history], [v for _, v in history], "#1f5fa8", markers=True)] if history else []
    return Axes(lines, rules, title="fixed evaluation batch", y_label="loss", empty_text="no evaluation scored")


def size_axes(norms: list[NormRow]) -> Axes:
    colours = ["#d9822b", "#7b3fb5"]
    lines, rules = [], []
    for index, encoder in enumerate(dict.fromkeys(row.encoder for row in norms)):
        mine = [row for row in norms if row.encoder == encoder]
        colour = colours[index % len(colours)]
        label = "" if encoder == "text encoder" else f"{encoder} "
        median = mine[0].vocabulary_median
        lines.append(Line([r.step for r in mine], [r.largest_norm for r in mine], colour, f"{label}largest vector"))
        rules += [Rule(median, colour, f"{label}vocabulary median", dash="2 3"),
                  Rule(OVERSIZE * median, colour, f"{label}{OVERSIZE:g} x median", width=0.8)]
    return Axes(lines, rules, title="size of the learned vectors", y_label="norm", from_zero=True,
                empty_text="no step yet")
