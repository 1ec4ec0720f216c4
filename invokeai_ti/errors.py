"""The one exception type that reaches the user as a sentence instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user caused and can fix.

    The CLI and the form print ``str(error)`` and exit with ``exit_code``; the message must
    already say what is wrong and how to fix it, because nothing else is shown.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class TrainingInterrupted(UserError):
    """Training was stopped on request; the checkpoint written on the way out is resumable."""

    exit_code = 130
