"""The loop: steps, the processes agreeing on each one, and the files written along the way.

Built from the run (``run.Run``), its optimizer state, its training step and what each checkpoint
records of it (``RunShape`` and the data's fingerprint). With progress bars off (output that is
not a terminal) it says where it is in plain lines instead, ten times a run.
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

# How many plain progress lines a run prints when it has no progress bar.
PROGRESS_LINES = 10


class TrainingLoop:
    """The steps of one run on this process; ``tracker`` is accelerate's (TensorBoard, wandb) or
    None, and ``before_step`` runs before each step (the previews)."""

    def __init__(
        self, run: Run, state: TrainingState, step: TrainingStep, *, shape: RunShape,
        data: dict[str, Any] | None = None, tracker: Any = None,
        before_step: Callable[[int], None] = lambda _step: None,
    ) -> None:
        self.run = run
        self.settings = run.settings
        self.state = state
        self.step_unit = step
        self.shape = shape
        self.data = data
        self.tracker = tracker
        self.before_step = before_step
        self.total_steps = run.total_steps
        self.topology = run.topology
        self.last_loss: float | None = None

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
        )

    def agree(self, step_loss: torch.Tensor, stop: bool) -> tuple[float, bool]:
        """Average gradients and loss over the processes, and stop together if any must stop.

        One process can receive SIGTERM alone; if it left without the others they would wait
        for it forever in the next all-reduce.
        """
        processes = self.topology.processes
        if processes == 1:
            return float(step_loss), stop
        for vectors in self.state.vectors:
            torch.distributed.all_reduce(vectors.grad)
            vectors.grad /= processes
        shared = torch.stack([step_loss.float(), torch.tensor(float(stop), device=step_loss.device)])
        torch.distributed.all_reduce(shared)
        return float(shared[0]) / processes, bool(shared[1] > 0)

    def train(self, start_step: int) -> int:
        """Train from ``start_step`` to the run's last step; returns the last step reached."""
        s = self.settings
        total_steps = self.total_steps
        main = self.topology.main
        progress = self.run.progress_bar(total_steps, f"Training {s.token}", initial=start_step, leave=True)
        log = LossLog(self.run.layout.loss_log, start_step) if main else None
        stop = StopRequest()
        step = start_step
        started = time.monotonic()
        try:
            with stop.installed():
                while step < total_steps:
                    # After the previous step's files: whatever runs here sees them on disk.
                    self.before_step(step)
                    self.state.optimizer.zero_grad(set_to_none=True)
                    step_loss = self.forward_backward(step)
                    loss_value, stopping = self.agree(step_loss, stop.requested is not None)
                    if not math.isfinite(loss_value):
                        raise UserError(nan_message(step + 1, s.mixed_precision))
                    rate = self.state.apply_gradients()
                    if not self.state.finite():
                        raise UserError(nan_message(step + 1, s.mixed_precision))
                    step += 1
                    self.last_loss = loss_value
                    if main:
                        row = LossRow(step, loss_value, rate, time.monotonic() - started)
                        self.record(row, log, progress, stopping)
                    if stopping and step < total_steps:
                        raise TrainingInterrupted(interrupted_message(stop.requested, step, total_steps))
        finally:
            progress.close()
            if log:
                log.close()
        return step

    def record(self, row: LossRow, log: LossLog, progress: Any, stopping: bool) -> None:
        """The main process's part of a step: the loss log, the trackers, the progress shown, and
        the snapshot and checkpoint when one is due (a stop saves both, to resume from)."""
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
        if step % s.checkpointing_steps == 0 or step >= self.total_steps or stopping:
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
        if self.topology.main and step > 0:
            self.save_checkpoint(step)
            self.save_embedding(step)
        raise UserError(out_of_memory_message(
            step=step, batch=unit.batch, fold=unit.fold, resolution=self.shape.resolution,
            fits=fits, device="GPU" if unit.device.type == "cuda" else unit.device.type.upper(),
            checkpointing=self.settings.gradient_checkpointing,
        ))
