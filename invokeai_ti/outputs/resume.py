"""Continuing a run from a checkpoint: whether it can, and what it changes when it does.

The trainer and the form ask the same questions (``RunShape.differences``, ``nothing_left``), so
the form never closes on a resume the trainer would refuse, and both name a difference in the
same words ("batch size 2 (checkpoint) vs 3 (now)"); only the way out is worded for each: flags
here, fields in ``form.following`` and ``form.submit``.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..data.folder import data_changes
from ..errors import UserError
from .checkpoints import Checkpoint
from .run_shape import RunShape

# Schedules whose shape depends on the total number of steps: continuing with a larger total
# rebuilds them, so the learning rate changes at the resume step.
DECAYING_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial")


def flag(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return shlex.quote(f"--{name}={value}")


def checkpoint_flags(shape: RunShape, names: list[str]) -> list[str]:
    """The command-line words that give a run the checkpoint's values of ``names``."""
    words = []
    for name in names:
        value = getattr(shape, name)
        if name == "model":
            words.append(flag("model", value))
        elif name == "token":
            words.append(flag("placeholder_token", value))
        elif name == "num_processes":
            words.append(f"accelerate launch --num_processes={value}")
        elif name != "token_dims":  # the model decides it, and the model is named already
            words.append(flag(name, value))
    return words


def mismatch_message(checkpoint: Checkpoint, now: RunShape) -> str | None:
    """Why the command line cannot continue this checkpoint, with both ways out."""
    differences = checkpoint.shape.differences(now)
    if not differences:
        return None
    fixes = " ".join(checkpoint_flags(checkpoint.shape, checkpoint.shape.differing(now)))
    return (
        f"The checkpoint {checkpoint.path} was made by a different run: {'; '.join(differences)}. "
        f"To continue it, run with the checkpoint's values ({fixes}); to start a new run with "
        "these settings, leave out --resume_from_checkpoint."
    )


def nothing_left(checkpoint: Checkpoint, total_steps: int) -> bool:
    return checkpoint.step >= total_steps


def nothing_left_message(checkpoint: Checkpoint, total_steps: int, *, by_epochs: bool) -> str:
    more = "--num_train_epochs" if by_epochs else "--max_train_steps"
    return (
        f"{checkpoint.path.name} is already at step {checkpoint.step} of the {total_steps} this "
        f"run asks for, so there is nothing to train; to train more, run the same command with a "
        f"larger {more}."
    )


def check_resumable(
    checkpoint: Checkpoint, now: RunShape, total_steps: int, *, by_epochs: bool,
    data: dict[str, Any] | None = None,
) -> None:
    """Refuse, in one message, a resume that would be another run or would train nothing."""
    if (message := mismatch_message(checkpoint, now)) is not None:
        raise UserError(message)
    if data is not None and (message := data_message(checkpoint, data)) is not None:
        raise UserError(message)
    if nothing_left(checkpoint, total_steps):
        raise UserError(nothing_left_message(checkpoint, total_steps, by_epochs=by_epochs))


def data_message(checkpoint: Checkpoint, now: dict[str, Any]) -> str | None:
    """Why a resume over a changed data folder is refused: it would train another sample order."""
    if checkpoint.data is None:
        return None
    changes = data_changes(checkpoint.data, now)
    if not changes:
        return None
    return (
        f"The data folder changed since {checkpoint.path.name} was saved ({'; '.join(changes)}), "
        "so the resumed run would not continue the same one; put the folder back as it was to "
        "continue it, or leave out --resume_from_checkpoint to start a new run with this data."
    )


def continue_schedule(lr_scheduler: Any, step: int) -> tuple[float, float]:
    """Put the restored schedule on this run's curve at ``step``; the rates before and after.

    A restored optimizer keeps the rate the checkpoint's schedule set for the next step. The
    schedule's curve is rebuilt from this run's total, so recomputing the rate at ``step`` makes
    the next step use the new curve at once. For a schedule that does not depend on the total
    (constant, constant with warm-up), or an unchanged total, it computes the very same number,
    which is what keeps a continued run bit-identical to one that planned the steps from the start.
    """
    before = float(lr_scheduler.get_last_lr()[0])
    lr_scheduler.last_epoch = step - 1
    lr_scheduler.step()
    return before, float(lr_scheduler.get_last_lr()[0])


def schedule_note(
    scheduler: str, checkpoint: Checkpoint, total_steps: int, before: float, after: float
) -> str | None:
    """One line saying what continuing does to a decaying schedule; None when nothing changes."""
    if scheduler not in DECAYING_SCHEDULERS:
        return None
    if checkpoint.total_steps == total_steps or (checkpoint.total_steps is None and before == after):
        return None
    planned = "" if checkpoint.total_steps is None else f" instead of {checkpoint.total_steps}"
    return (
        f"The {scheduler} learning-rate schedule is rebuilt for {total_steps} steps{planned}, so "
        f"the learning rate jumps from {before:.4g} to {after:.4g} at step {checkpoint.step}."
    )
