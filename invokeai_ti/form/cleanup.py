"""After a run from the form: InvokeAI's offer to delete the training logs and intermediate files.

What counts as a leftover is the output folder's owner's to say (``OutputLayout.leftovers``);
this is only the question and the deleting, after curses has given the terminal back. The
question names every folder it deletes, so a resumable checkpoint is never deleted without the
question saying so.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..outputs.layout import CHECKPOINT_PATTERN, SET_ASIDE, OutputLayout

# Checkpoint folders named one by one in the question; more are named as a range with their count.
CHECKPOINTS_NAMED = 4


def ask_to_delete_leftovers(layout: OutputLayout, logging_dir: Path) -> None:
    """InvokeAI's question, default yes when a person presses Enter; ``layout`` says what goes.

    Without a terminal (a script, a pipe, end of input) nobody said yes, so nothing is deleted.
    """
    output_dir = layout.folder
    leftovers = layout.leftovers(logging_dir)
    if not leftovers:
        return
    last = layout.last_checkpoint()
    answer = ""
    if sys.stdin.isatty():
        try:
            answer = input(delete_question(layout, leftovers, last)).strip().lower() or "y"
        except EOFError:
            answer = ""
    if not answer.startswith("y"):
        print(f"Kept the training logs and intermediate checkpoints in {output_dir}.")
        return
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    print(f"Deleted the training logs and intermediate checkpoints in {output_dir}"
          + (f"; {last.name} is kept to continue from." if last else "."))


def deleted_names(layout: OutputLayout, leftovers: list[Path]) -> list[str]:
    """What the question says it deletes: every folder by name (checkpoints in step order, a long
    series as a range with its count), the snapshots as one item, and each other file."""
    checkpoints = sorted((int(m.group(1)), path.name) for path in leftovers
                         if (m := CHECKPOINT_PATTERN.match(path.name)) and path.is_dir())
    names = [name for _, name in checkpoints]
    if len(names) > CHECKPOINTS_NAMED:
        names = [f"{names[0]} to {names[-1]} ({len(names)} checkpoint folders)"]
    snapshots = set(layout.snapshots())
    if steps := layout.snapshot_steps():
        names.append(f"the learned_embeds-steps-N snapshots of step{'s' if len(steps) > 1 else ''} "
                     + ", ".join(map(str, steps)))
    named = {name for _, name in checkpoints}
    names += [path.name + ("/" if path.is_dir() else "") for path in leftovers
              if path.name not in named and path not in snapshots]
    return names


def delete_question(layout: OutputLayout, leftovers: list[Path], last: Path | None) -> str:
    """InvokeAI 2.3's question, naming what goes and what stays so nobody deletes the run's way
    forward, or an earlier run's, unknowingly."""
    kept = [f"{last.name}, the last, is kept to continue from"] if last else []
    if layout.set_aside.exists():
        kept.append(f"the earlier run in {SET_ASIDE}/ is kept")
    what = "; ".join([f"deletes {', '.join(deleted_names(layout, leftovers))}", *kept])
    return f"Delete training logs and intermediate checkpoints ({what})? [y] "
