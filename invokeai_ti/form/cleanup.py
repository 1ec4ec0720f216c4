"""After a run from the form: InvokeAI's offer to delete the training logs and intermediate files.

What counts as a leftover is the output folder's owner's to say (``OutputLayout.leftovers``);
this is only the question and the deleting, after curses has given the terminal back.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..outputs.layout import OutputLayout


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
            answer = input(delete_question(last)).strip().lower() or "y"
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


def delete_question(last: Path | None) -> str:
    """InvokeAI 2.3's question, saying what stays so nobody deletes the run's way forward."""
    if last is None:
        return "Delete training logs and intermediate checkpoints? [y] "
    return f"Delete training logs and intermediate checkpoints ({last.name}, the last, is kept to continue from)? [y] "
