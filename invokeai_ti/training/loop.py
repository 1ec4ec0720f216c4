"""The loop: steps, the processes agreeing on each one, and the files written along the way.

Built from the run (``run.Run``), its optimizer state, its training step and what each checkpoint
records of it (``RunShape`` and the data's fingerprint). With progress bars off (output that is
not a terminal) it says where it is in plain lines instead, ten times a run.

A step never waits for the device to tell the host its results: each step's loss and the
vectors' size stay on the device until the loop next *looks* at them, at most every
``LOOK_SECONDS`` and before anything acts on them (an evaluation, a snapshot, a checkpoint, the
last step, a stop). Only then are they read, in one transfer, checked for NaN and written: the
same rows and files, and a NaN names the first step whose loss it was, without the GPU draining
its queue after every step. Several processes read every step, since they must stop together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from ..errors import TrainingInterrupted, UserError
from ..outputs.checkpoints import RunShape, write_checkpoint
from ..outputs.loss_log import LossLog, LossRow
from .guard import StopRequest, interrupted_message, nan_message, out_of_memory_message
from .run import Run
from .state import TrainingState
from .step import TrainingStep, largest_divisor_at_most
from .watch import LearningWatch

# How many plain progress lines a run prints when it has no progress bar.
PROGRESS_LINES = 10
# How long the steps' losses may wait on the device before the loop reads, checks and logs them.
LOOK_SECONDS = 1.0


class TrainingLoop:
    """The steps of one run on this process; ``tracker`` is accelerate's (TensorBoard, wandb) or
    None, and ``before_step`` runs before each step (the previews)."""

    def __init__(
        self, run: Run, state: TrainingState, step: TrainingStep, *, shape: RunShape,
        data: dict[str, Any] | None = None, tracker: Any = None,
        before_step: Callable[[int], None] = lambda _step: None,
        watch: LearningWatch | None = None,
    ) -> None:
        self.run = run
        self.settings = run.settings
        self.state = state
        self.step_unit = step
        self.shape = shape
        self.data = data
        self.watch = watch
        self.tracker = tracker
        self.before_step = before_step
        self.total_steps = run.total_steps
        self.topology = run.topology
        self.last_loss: float | None = None
        self.outputs: tuple[LossLog | None, Any] = (None, None)
        # Steps made but not yet looked at: (step, loss on the device, learning rate, seconds).
        self.unread: list[tuple[int, torch.Tensor, float, float]] = []

    def save_embedding(self, step: int, *, snapshot: bool = False) -> None:
        self.run.files.save_files(
            self.run.layout.folder, self.settings.token, self.state.vectors, step, self.shape.model,
            snapshot=snapshot,
        )

    def save_checkpoint(self, step: int) -> None:
        write_checkpoint(
            self.run.layout.folder,
            step=step,
            seed=self.run.seed,
            shape=self.shape,
            total_steps=self.total_steps,
            files=self.run.files,
            state=self.state,
            keep=self.settings.checkpoints_total_limit,
            data=self.data,
            evaluation=None if self.watch is None else self.watch.history,
        )

    def agree(self, step_loss: torch.Tensor, stop: bool) -> tuple[torch.Tensor, bool]:
        """Average gradients and loss over the processes, and stop together if any must stop.

        One process can receive SIGTERM alone; if it left without the others they would wait
        for it forever in the next all-reduce. The loss stays on the device.
        """
        processes = self.topology.processes
        if processes == 1:
            return step_loss.detach(), stop
        for vectors in self.state.vectors:
            torch.distributed.all_reduce(vectors.grad)
            vectors.grad /= processes
        shared = torch.stack([step_loss.float(), torch.tensor(float(stop), device=step_loss.device)])
        torch.distributed.all_reduce(shared)
        return shared[0] / processes, bool(shared[1] > 0)

    def must_look(self, step: int, stopping: bool, last_look: float) -> bool:
        """Whether this step's results are read now: before anything acts on them, and at least
        every ``LOOK_SECONDS`` so progress and the logs keep up."""
        s = self.settings
        return (
            self.topology.processes > 1 or stopping or step >= self.total_steps
            or step % s.preview_every == 0 or step % s.save_steps == 0 or step % s.checkpointing_steps == 0
            or time.monotonic() - last_look >= LOOK_SECONDS
        )

    def look(self) -> list[LossRow]:
        """The unread steps' rows, read from the device in one transfer; NaN stops the run at the
        first step it reached, before anything is saved or evaluated."""
        unread, self.unread = self.unread, []
        losses = torch.stack([loss.float() for _, loss, _, _ in unread]).tolist()
        for (step, _, _, _), loss in zip(unread, losses):
            if not math.isfinite(loss):
                raise UserError(nan_message(step, self.settings.mixed_precision))
        if not self.state.finite():
            raise UserError(nan_message(unread[-1][0], self.settings.mixed_precision))
        if self.watch is not None:
            self.watch.look()
        self.last_loss = losses[-1]
        return [LossRow(step, loss, rate, seconds) for (step, _, rate, seconds), loss in zip(unread, losses)]

    def train(self, start_step: int) -> int:
        """Train from ``start_step`` to the run's last step; returns the last step reached."""
        s = self.settings
        total_steps = self.total_steps
        main = self.topology.main
        progress = self.run.progress_bar(total_steps, f"Training {s.token}", initial=start_step, leave=True)
        log = LossLog(self.run.layout.loss_log, start_step) if main else None
        self.outputs = (log, progress)
        stop = StopRequest()
        step = start_step
        started = last_look = time.monotonic()
        try:
            with stop.installed():
                while step < total_steps:
                    # After the previous step's files: whatever runs here sees them on disk.
                    self.before_step(step)
                    self.state.optimizer.zero_grad(set_to_none=True)
                    step_loss = self.forward_backward(step)
                    loss, stopping = self.agree(step_loss, stop.requested is not None)
                    rate = self.state.apply_gradients()
                    step += 1
                    self.unread.append((step, loss, rate, time.monotonic() - started))
                    if self.watch is not None:
                        self.watch.note(step)
                    if not self.must_look(step, stopping, last_look):
                        continue
                    rows, last_look = self.look(), time.monotonic()
                    # Every process: the evaluation is shared out, and so is the decision to stop.
                    settled = self.watch is not None and self.watch.after_step(step)
                    if main:
                        self.record_rows(rows, stopping, settled)
                    if stopping and step < total_steps:
                        raise TrainingInterrupted(interrupted_message(stop.requested, step, total_steps))
                    if settled:
                        break
        finally:
            progress.close()
            if log:
                log.close()
            if self.watch is not None:
                self.watch.close()
        return step

    def record_rows(self, rows: list[LossRow], stopping: bool = False, settled: bool = False) -> None:
        """The rows just read; only the last can be a step that saves, since saving steps are read
        as soon as they are made."""
        log, progress = self.outputs
        for row in rows:
            last = row is rows[-1]
            self.record(row, log, progress, stopping and last, settled and last)

    def record(self, row: LossRow, log: LossLog, progress: Any, stopping: bool, settled: bool = False) -> None:
        """The main process's part of a step: the loss log, the trackers, the progress shown, and
        the snapshot and checkpoint when one is due (a stop saves both, to resume from; a run that
        settled ends here, so its last checkpoint is this step's)."""
        s, step = self.settings, row.step
        log.write(row)
        if self.tracker is not None:
            self.tracker.log({"loss": row.loss, "lr": row.learning_rate}, step=step)
        progress.set_postfix(loss=f"{row.loss:.4f}", lr=f"{row.learning_rate:.2e}", refresh=False)
        progress.update(1)
        if not self.run.show_progress and step % max(1, self.total_steps // PROGRESS_LINES) == 0:
            self.run.notify(f"Step {step} of {self.total_steps}: loss {row.loss:.4f}.")
        if step % s.save_steps == 0:
            self.save_embedding(step, snapshot=True)
        # Every multiple, the last step and a stop: a finished run can be continued.
        if step % s.checkpointing_steps == 0 or step >= self.total_steps or stopping or settled:
            self.save_checkpoint(step)
        if stopping and step < self.total_steps:
            self.save_embedding(step)

    def forward_backward(self, step: int) -> torch.Tensor:
        """The step's passes; running out of memory keeps the work so far and says what fits."""
        unit = self.step_unit
        while True:
            try:
                return unit(step)
            except torch.OutOfMemoryError:
                self.state.optimizer.zero_grad(set_to_none=True)
                if unit.fold == 1:
                    break
                unit.fold = largest_divisor_at_most(unit.accumulation, unit.fold // 2)
                if self.topology.main:
                    self.run.say(f"Memory is short: now {unit.fold} micro-batch(es) per forward pass.")
        fits = unit.largest_batch_that_fits()
        rows = self.look() if self.unread else []
        if self.topology.main and step > 0:
            self.record_rows(rows)
            self.save_checkpoint(step)
            self.save_embedding(step)
        raise UserError(out_of_memory_message(
            step=step, batch=unit.batch, fold=unit.fold, resolution=self.shape.resolution,
            fits=fits, device="GPU" if unit.device.type == "cuda" else unit.device.type.upper(),
            checkpointing=self.settings.gradient_checkpointing,
        ))
