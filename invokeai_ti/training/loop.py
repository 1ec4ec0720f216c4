"""The loop: steps, the processes agreeing on each one, and the files written along the way."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import TrainingInterrupted, UserError
from ..outputs.checkpoints import RunShape, write_checkpoint
from ..outputs.loss_log import LossLog, LossRow
from ..settings import TrainingSettings
from .family import ModelFamily
from .guard import StopRequest, interrupted_message, nan_message, out_of_memory_message
from .state import TrainingState
from .step import Notify, TrainingStep, largest_divisor_at_most


@dataclass(frozen=True)
class Topology:
    """This process's place in the run."""

    processes: int
    rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


class TrainingLoop:
    def __init__(
        self,
        *,
        settings: TrainingSettings,
        family: ModelFamily,
        output_dir: Path,
        state: TrainingState,
        step: TrainingStep,
        shape: RunShape,
        seed: int,
        total_steps: int,
        topology: Topology,
        tracker,
        notify: Notify,
        show_progress: bool,
        before_step: Callable[[int], None] = lambda _step: None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.family = family
        self.output_dir = output_dir
        self.state = state
        self.step_unit = step
        self.shape = shape
        self.seed = seed
        self.total_steps = total_steps
        self.topology = topology
        self.tracker = tracker
        self.notify = notify
        self.before_step = before_step
        self.show_progress = show_progress
        self.last_loss: float | None = None
        self.data = data

    def save_embedding(self, step: int, *, snapshot: bool = False) -> None:
        self.family.files.save_files(
            self.output_dir, self.settings.token, self.state.vectors, step, self.shape.model, snapshot=snapshot
        )

    def save_checkpoint(self, step: int) -> None:
        write_checkpoint(
            self.output_dir,
            step=step,
            seed=self.seed,
            shape=self.shape,
            total_steps=self.total_steps,
            files=self.family.files,
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

    def run(self, start_step: int) -> int:
        """Train from ``start_step`` to the run's last step; returns the last step reached."""
        from tqdm.auto import tqdm

        s = self.settings
        total_steps = self.total_steps
        main = self.topology.main
        progress = tqdm(
            total=total_steps, initial=start_step, disable=not (main and self.show_progress),
            unit="step", dynamic_ncols=True, desc=f"Training {s.token}",
        )
        log = LossLog(self.family.files.output_layout(self.output_dir, s.token).loss_log, start_step) if main else None
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
                    if not main:
                        if stopping and step < total_steps:
                            raise TrainingInterrupted(interrupted_message(stop.requested, step, total_steps))
                        continue
                    log.write(LossRow(step, loss_value, rate, time.monotonic() - started))
                    if self.tracker is not None:
                        self.tracker.log({"loss": loss_value, "lr": rate}, step=step)
                    progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{rate:.2e}", refresh=False)
                    progress.update(1)
                    if step % s.save_steps == 0:
                        self.save_embedding(step, snapshot=True)
                    # Every multiple, the last step and a stop: a finished run can be continued.
                    if step % s.checkpointing_steps == 0 or step >= total_steps or stopping:
                        self.save_checkpoint(step)
                    if stopping and step < total_steps:
                        self.save_embedding(step)
                        raise TrainingInterrupted(interrupted_message(stop.requested, step, total_steps))
        finally:
            progress.close()
            if log:
                log.close()
        return step

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
                    self.notify(f"Memory is short: now {unit.fold} micro-batch(es) per forward pass.")
        fits = unit.largest_batch_that_fits()
        if self.topology.main and step > 0:
            self.save_checkpoint(step)
            self.save_embedding(step)
        raise UserError(out_of_memory_message(
            step=step, batch=unit.batch, fold=unit.fold, resolution=self.shape.resolution,
            fits=fits, device="GPU" if unit.device.type == "cuda" else unit.device.type.upper(),
            checkpointing=self.settings.gradient_checkpointing,
        ))
