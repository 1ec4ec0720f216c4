"""What reaches the user as a sentence instead of a traceback: a ``Problem`` a check found, and
the ``UserError`` that stops a run.

Every check that can refuse a run before it starts (``TrainingSettings.problems``,
``workflow.check_run``, the data folder's, the captions', the device's, the form's own) returns
``Problem`` values: the text for a person, and the setting that fixes it. The command line prints
the text; the form prints it too and puts the cursor on that setting's field, so no front end has
to guess the field from the words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing to fix before a run can start.

    ``text`` says what is wrong and how to fix it; it may be a fragment ("the trigger term is
    empty; type a word") or a whole sentence. ``field`` is the name of the ``TrainingSettings``
    field to change, or None when no setting fixes it (a package to install, say).
    """

    text: str
    field: str | None = None

    @property
    def sentence(self) -> str:
        return as_sentence(self.text)

    def __str__(self) -> str:
        return self.sentence


def as_sentence(text: str) -> str:
    """``text`` with a capital first letter and a full stop, as every message to the user ends.

    Only a first word of plain lower-case letters is capitalised: a file name (``photo.jpg``), a
    flag or ``checkpoint-20`` is spelt as it is on disk.
    """
    text = text.strip()
    if not text:
        return text
    first = text.split(maxsplit=1)[0]
    if first.isalpha() and first.islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def sentences(problems: Iterable[Problem]) -> str:
    """Several problems as the command line prints them: one sentence a line."""
    return "\n".join(problem.sentence for problem in problems)


class UserError(Exception):
    """A problem the user caused and can fix.

    The CLI and the form print ``str(error)`` and exit with ``exit_code``; the message must
    already say what is wrong and how to fix it, because nothing else is shown. It is made a
    sentence here (``as_sentence``), so a check's fragment reads the same from every front end.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(as_sentence(message))
        if exit_code is not None:
            self.exit_code = exit_code


class TrainingInterrupted(UserError):
    """Training was stopped on request; the checkpoint written on the way out is resumable."""

    exit_code = 130
