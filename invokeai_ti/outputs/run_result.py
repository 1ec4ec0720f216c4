"""Which step's embedding is a run's result: the one its final files hold and the one installed.

Without ``--stop_when_settled`` it is the last step's, and the report recommends the settled
step's snapshot beside it. With it, the user asked for the settled choice: the step that scored
best where the evaluation score settled (``invokeai_ti.settling``). Such a run keeps its last
step's files under their step name (``learned_embeds-steps-N.bin`` and the rest) and its final
names hold the best step's, so whatever reads the output folder (InvokeAI's install, the
exported pipeline, diffusers, AUTOMATIC1111) takes the step the run chose, never the second best.

The step is decided from the files on disk (the settings record, the loss log, the evaluation
log), so the trainer that writes the result and the report, the end lines, the form's question
and ``--install-step`` that read it later always name the same step.
"""

from __future__ import annotations

import json
import shutil

from ..files import atomic_write
from ..settling import settled
from .layout import OutputLayout
from .learning_log import read_evaluation
from .loss_log import read_loss_log


def last_step(layout: OutputLayout) -> int | None:
    """The last step trained (the loss log's last row); None before the first."""
    rows = read_loss_log(layout.loss_log)
    return rows[-1].step if rows else None


def asked_to_stop_when_settled(layout: OutputLayout) -> bool:
    """What the run's settings record says of ``--stop_when_settled``; an unreadable one says no."""
    try:
        record = json.loads(layout.settings_record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("stop_when_settled") is True


def result_step(layout: OutputLayout) -> int | None:
    """The step whose embedding the final files hold; None before the first step."""
    last = last_step(layout)
    if last is None or not asked_to_stop_when_settled(layout):
        return last
    found = settled([(step, score) for step, score in read_evaluation(layout.evaluation_log) if step <= last])
    return last if found is None else found.best


def write_result(layout: OutputLayout, step: int) -> None:
    """Make the final names hold the snapshot of ``step`` (every file a save writes), each copy
    atomic, so a crash leaves either the last step's file or the chosen one, never half of one."""
    for snapshot, final in zip(layout.embeddings(step).all(), layout.embeddings().all()):
        atomic_write(final, lambda tmp, source=snapshot: shutil.copyfile(source, tmp))
