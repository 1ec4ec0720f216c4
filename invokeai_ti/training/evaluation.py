"""The fixed evaluation batch: one score of how well the vectors fit the photos, comparable across steps.

The training loss moves with every step's random photos, noise and timesteps, so it barely shows
progress. Scoring the *same* samples every time (DVAR, Voronov et al. 2023) removes that noise:
the training photos, each with noise, a timestep and a caption drawn once from the run's seed and
never again, through the training step's own loss. What is left changes only with the vectors,
and its settling says when more steps stop teaching anything (``invokeai_ti.settling``).

The batch is drawn by a ``SamplePlan`` of its own seed, so it obeys every rule of the training
samples (captions, masks, buckets: a plan step's samples share one bucket) and covers every photo
about equally. Each process scores a share of its micro-batches and the sums are added over the
processes, so every process holds the same score, and the one of a single process up to the order
of float additions.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .plan import SamplePlan, sample_seed
from .step import TrainingStep

# Enough samples that the score's own spread is well below what a few steps change, and few
# enough to cost about what three training steps of batch 4 cost.
EVALUATION_SAMPLES = 32


def evaluation_size(images: int, samples_per_step: int) -> int:
    """At least every image once and ``EVALUATION_SAMPLES`` in all, in whole plan steps."""
    wanted = max(EVALUATION_SAMPLES, images)
    return math.ceil(wanted / samples_per_step) * samples_per_step


class FixedEvaluation:
    def __init__(self, step: TrainingStep, *, images: int) -> None:
        self.step = step
        plan = step.samples.plan
        fixed = SamplePlan(
            sample_seed(plan.seed, "evaluation"), plan.num_images, plan.num_templates, plan.num_timesteps,
            buckets=plan.buckets, samples_per_step=plan.samples_per_step, noise_offset=plan.noise_offset,
            timesteps=plan.timesteps,
        )
        self.samples = dataclasses.replace(step.samples, plan=fixed)
        self.size = evaluation_size(images, plan.samples_per_step)

    def chunks(self) -> list[list[int]]:
        """This process's micro-batches of the batch's sample numbers (each in one bucket)."""
        batch = self.step.batch
        every = [list(range(first, first + batch)) for first in range(0, self.size, batch)]
        return every[self.step.rank :: self.step.processes]

    def score(self) -> float:
        """The mean loss over the fixed batch, the same on every process."""
        total = torch.zeros((), device=self.step.device, dtype=torch.float64)
        with torch.no_grad():
            for numbers in self.chunks():
                total += self.step.loss(numbers, samples=self.samples).double() * len(numbers)
        if self.step.processes > 1:
            torch.distributed.all_reduce(total)
        return float(total) / self.size
