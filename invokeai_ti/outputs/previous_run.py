"""A new run in a folder that holds an earlier one: the earlier run's files move out of its way.

Left in place they would pass for the new run's: an earlier ``checkpoint-3000`` would outrank the
new ``checkpoint-500`` for ``latest`` and the pruning, its ``learned_embeds-steps-N`` snapshots
would be offered for installing beside the new run's steps, and its loss log and previews would
mix into the new report. So every file of the earlier run goes, together, into
``previous-run/``, where nothing is deleted: a run set aside before it is moved inside it whole.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from .checkpoints import list_checkpoints
from .layout import SET_ASIDE, OutputLayout


def earlier_run_summary(layout: OutputLayout, logging_dir: Path) -> str | None:
    """The earlier run's files in a few words ("checkpoint-100 and older, 5 snapshots, samples/,
    loss_log.csv, ..."), or None when the folder holds none."""
    files = layout.run_files(logging_dir)
    if not files:
        return None
    checkpoints = list_checkpoints(layout.folder)
    snapshots = set(layout.snapshots())
    steps = layout.snapshot_steps()
    parts = [f"{checkpoints[-1][1].name} and older"] if checkpoints else []
    if steps:
        parts.append(f"the snapshots of step{'s' if len(steps) > 1 else ''} {', '.join(map(str, steps))}")
    listed = {path for _, path in checkpoints} | snapshots
    parts += [path.name + ("/" if path.is_dir() else "") for path in files
              if path not in listed and not path.name.startswith(".")]
    return ", ".join(parts)


def set_aside_previous_run(layout: OutputLayout, logging_dir: Path) -> str | None:
    """Move every file of the earlier run in ``layout.folder`` into ``previous-run/``; returns
    the sentence that says so, or None when there was nothing to move.

    The files are gathered in a staging folder first and renamed into place, so ``previous-run/``
    always holds one whole run; a staging folder an interruption left behind holds the first part
    of the same earlier run, and the rest joins it.
    """
    summary = earlier_run_summary(layout, logging_dir)
    if summary is None:
        return None
    files = layout.run_files(logging_dir)
    aside = layout.set_aside
    staging = layout.folder / f".{SET_ASIDE}.partial"
    staging.mkdir(exist_ok=True)
    for path in files:
        target = staging / path.relative_to(layout.folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    os.replace(staging, aside)
    return (
        f"Starting a new run: the earlier run's files ({summary}) were moved to {aside}; to "
        f"continue that run, move {SET_ASIDE} to a folder of its own and resume there "
        "(--output_dir that folder --resume_from_checkpoint latest)."
    )


def set_aside_problem(layout: OutputLayout, checkpoint: Path) -> None:
    """Refuse to resume a set-aside run in the folder of the run that replaced it: their loss
    logs, snapshots and previews would mix."""
    aside = layout.set_aside.resolve()
    if checkpoint.resolve().is_relative_to(aside):
        raise UserError(
            f"{checkpoint} belongs to the earlier run set aside in {aside}, and resuming it in "
            f"{layout.folder} would mix its files with the run there; move {aside} to a folder of "
            "its own and resume there with --output_dir that folder --resume_from_checkpoint latest."
        )
