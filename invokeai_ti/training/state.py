"""What an optimizer step changes, carried together: the vectors and the optimisation around them.

Checkpoints save it and a resume restores it through ``state_dict`` / ``load_state_dict``, the
protocol every torch object here already speaks; the loop advances it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..settings import TrainingSettings
from .vector_size import VectorSize


@dataclass
class TrainingState:
    # One parameter per text encoder, each its own width, in the family's encoder order.
    vectors: tuple[torch.nn.Parameter, ...]
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    grad_scaler: torch.amp.GradScaler | None
    size: VectorSize | None = None

    @classmethod
    def create(
        cls,
        vectors: tuple[torch.nn.Parameter, ...],
        settings: TrainingSettings,
        *,
        samples_per_step: int,
        total_steps: int,
        device: torch.device,
        size: VectorSize | None = None,
    ) -> TrainingState:
        """One AdamW over the new vectors only, its schedule, and a loss scaler for fp16 on CUDA.

        Learning only the direction, AdamW steps unit directions at the direction's own rate.
        """
        from diffusers.optimization import get_scheduler

        s = settings
        rate = s.direction_learning_rate if size is not None and size.mode == "direction" else s.learning_rate
        if size is not None:
            size.start(vectors)
        optimizer = torch.optim.AdamW(
            list(vectors),
            lr=rate * (samples_per_step if s.scale_lr else 1),
            betas=(s.adam_beta1, s.adam_beta2),
            weight_decay=s.adam_weight_decay,
            eps=s.adam_epsilon,
        )
        lr_scheduler = get_scheduler(
            s.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=s.lr_warmup_steps,
            num_training_steps=total_steps,
            num_cycles=s.lr_num_cycles,
            power=s.lr_power,
        )
        on_cuda = device.type == "cuda"
        grad_scaler = torch.amp.GradScaler("cuda") if s.mixed_precision == "fp16" and on_cuda else None
        return cls(vectors, optimizer, lr_scheduler, grad_scaler, size)

    def apply_gradients(self) -> float:
        """One optimizer step, the vectors' size held where asked; returns the learning rate it used."""
        if self.size is not None:
            self.size.before_step(self.vectors)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        if self.size is not None:
            self.size.after_step(self.vectors)
        rate = self.lr_scheduler.get_last_lr()[0]
        self.lr_scheduler.step()
        return rate

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint keeps of the run's progress, by part."""
        return {
            "vectors": tuple(vectors.detach() for vectors in self.vectors),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "grad_scaler": None if self.grad_scaler is None else self.grad_scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``; a loss scale saved by an fp16 run is ignored by one without."""
        with torch.no_grad():
            for target, saved in zip(self.vectors, state["vectors"], strict=True):
                target.copy_(saved.to(target.device, target.dtype))
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if self.grad_scaler is not None and state.get("grad_scaler") is not None:
            self.grad_scaler.load_state_dict(state["grad_scaler"])

    def finite(self) -> bool:
        return all(bool(torch.isfinite(vectors).all()) for vectors in self.vectors)
