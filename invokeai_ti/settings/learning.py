"""How the vectors learn: the run's length (repeats, epochs, steps), the batch, the learning rate
and its schedule, and the AdamW optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import Problem
from .fields import choice_problem, setting

LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)


@dataclass
class LearningSettings:
    """The run's length, batch, learning rate and optimizer (the start of ``--help``'s training group)."""

    repeats: int = setting(100, "how many times the images repeat in one epoch", group="training")
    seed: int | None = setting(
        None, "random seed (default: a random one, recorded in the output folder)", group="training"
    )
    train_batch_size: int | None = setting(
        None,
        "images per step on each device (default: 8 on a GPU of 12 GB or more where "
        "memory-efficient attention runs, else 3; an SDXL model's follows the GPU's memory, 1 to 8)",
        group="training", label="Batch Size (reduce if you run out of memory)", slider=(1, 50),
    )
    num_train_epochs: int | None = setting(
        None, "train for this many epochs instead of --max_train_steps", group="training"
    )
    max_train_steps: int = setting(
        3000, "number of optimizer steps (most image sets converge in 2000-3000)",
        group="training", label="Max Training Steps", slider=(10, 10000),
    )
    gradient_accumulation_steps: int = setting(
        4, "batches accumulated before each optimizer step", group="training",
        label="Gradient Accumulation Steps", slider=(1, 10),
    )
    gradient_checkpointing: bool = setting(
        False, "trade compute for memory in the UNet and text encoder", group="training"
    )
    learning_rate: float = setting(
        5e-4, "learning rate before scaling (may be raised to 5e-3)", group="training",
        label="Learning Rate",
    )
    scale_lr: bool = setting(
        True, "multiply the learning rate by GPUs x batch size x accumulation steps",
        group="training", label="Scale learning rate by number of GPUs, steps and batch size",
    )
    lr_scheduler: str = setting(
        "constant", "learning-rate schedule", group="training", choices=LR_SCHEDULERS,
        label="Learning rate scheduler",
    )
    lr_warmup_steps: int = setting(
        0, "optimizer steps of learning-rate warm-up", group="training", label="Warmup Steps",
        slider=(0, 100),
    )
    lr_num_cycles: int = setting(1, "restarts of cosine_with_restarts", group="training")
    lr_power: float = setting(1.0, "power of the polynomial schedule", group="training")
    adam_beta1: float = setting(0.9, "AdamW beta1", group="training")
    adam_beta2: float = setting(0.999, "AdamW beta2", group="training")
    adam_weight_decay: float = setting(1e-2, "AdamW weight decay", group="training")
    adam_epsilon: float = setting(1e-8, "AdamW epsilon", group="training")

    def learning_problems(self) -> list[Problem]:
        found = []
        rate = self.learning_rate
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            found.append(Problem(f"the learning rate must be a positive number such as 5e-4, not {rate}",
                                 "learning_rate"))
        found.append(choice_problem(self.lr_scheduler, "learning rate scheduler", LR_SCHEDULERS, "lr_scheduler"))
        return [problem for problem in found if problem is not None]
