"""What stands around a run so that no finished work is ever lost.

Ctrl-C and SIGTERM become "save and stop after this step"; a NaN, an interruption or the GPU
running out of memory each end in one sentence that says what happened and what to do next,
with the last checkpoint and embedding on disk.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StopRequest:
    """Turns Ctrl-C and SIGTERM into "save and stop at the end of this step".

    A second Ctrl-C exits at once: every file is written atomically, so nothing is corrupted.
    """

    def __init__(self) -> None:
        self.requested: str | None = None

    def _handle(self, signum: int, _frame: object) -> None:
        if self.requested is not None:
            os._exit(130)
        self.requested = signal.Signals(signum).name

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for signum in previous:
            signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def interrupted_message(signal_name: str | None, step: int, total_steps: int) -> str:
    return (
        f"Training stopped by {signal_name or 'another process'} at step {step} of {total_steps}; "
        "the checkpoint and the embedding so far are saved. To continue, run the same command "
        "with --resume_from_checkpoint latest, or open the form again with the same trigger "
        "(resume is ticked for you)."
    )


def nan_message(step: int, precision: str | None) -> str:
    cause = (
        "fp16 overflowed; train with --mixed_precision bf16 or no"
        if precision == "fp16"
        else "the learning rate is probably too high; lower --learning_rate or turn off --scale_lr"
    )
    return (
        f"Training stopped at step {step} because the loss became NaN or infinite: {cause}. "
        "The last good embedding and checkpoint were kept."
    )


def out_of_memory_message(
    *, step: int, batch: int, fold: int, resolution: int, fits: int, device: str, checkpointing: bool
) -> str:
    """What did not fit, what does (measured), and the switches that help."""
    carried = batch * fold
    what = f"a forward pass of {carried} image{'s' if carried > 1 else ''} at {resolution} px"
    if fits:
        advice = f"--train_batch_size {fits} fits on this {device} (measured just now)"
    else:
        advice = f"not even one image at {resolution} px fits on this {device}; lower --resolution"
    helps = [] if checkpointing else ["--gradient_checkpointing"]
    helps.append("a smaller --resolution")
    return (
        f"The {device} ran out of memory at step {step + 1} on {what}: {advice}; "
        f"{' or '.join(helps)} also help. The last checkpoint and embedding are kept: resume with "
        "--resume_from_checkpoint latest and the smaller batch size (raise "
        "--gradient_accumulation_steps to keep the same samples per step)."
    )
