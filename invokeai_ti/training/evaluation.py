"""The fixed evaluation batch: one score of how well the vectors fit the photos, comparable across steps.

The training loss moves with every step's random photos, noise and timesteps, so it barely shows
progress. Scoring the *same* samples every time (DVAR, Voronov et al. 2023) removes that noise:
the training photos, each with noise, a timestep and a caption drawn once from the run's seed and
never again, through the training step's own loss. What is left changes only with the vectors,
and its settling says when more steps stop teaching anything (``invokeai_ti.settling``).

The batch is drawn by a ``SamplePlan`` of its own seed, so it obeys every rule of the training
samples (captions, masks, buckets: a plan step's samples share one bucket) and covers every photo
about equally. Each process scores a share of the forward passes and the sums are added over the
processes, so every process holds the same score, and the one of a single process up to the order
of float additions.

The batch is scored in as few forward passes as memory allows, not at the training's micro-batch:
without gradients a pass keeps no activations for a backward, so it carries several times the
samples of a training pass within the training step's own memory, and on a CPU at batch 1
thirty-two small passes cost more than the steps of a short run (docs/benchmarks.md). The score is the same mean over the same samples whatever the
passes, up to the order of float additions, so the settling and the step it recommends do not
depend on how it was split.
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
# A pass without gradients holds a few layers' activations at a time where a training pass keeps
# every layer's for the backward: on the tiny test model at 128 px a sample costs 1.2 MiB of peak
# memory scored and 8.6 MiB trained, and a model of more layers widens the gap. So a scoring pass
# of this many times the training pass's samples stays below the training step's own peak, and
# the evaluation never raises the run's memory (docs/benchmarks.md).
PASS_FACTOR = 4
# And at most this many latent cells (the latent grid's height x width, summed over the pass's
# samples): 32 samples at 128 px, 8 at 256 px, 2 at 512 px, whatever the training batch.
EVALUATION_CELLS = 32 * 16 * 16


def evaluation_size(images: int, samples_per_step: int) -> int:
    """At least every image once and ``EVALUATION_SAMPLES`` in all, in whole plan steps."""
    wanted = max(EVALUATION_SAMPLES, images)
    return math.ceil(wanted / samples_per_step) * samples_per_step


def samples_per_pass(*, size: int, training_pass: int, cells_per_sample: int, processes: int = 1) -> int:
    """How many of the ``size`` samples one scoring pass carries: ``PASS_FACTOR`` training passes'
    worth within ``EVALUATION_CELLS``, never fewer than one training pass, and no more than a
    process's share."""
    fits = max(training_pass, min(PASS_FACTOR * training_pass, EVALUATION_CELLS // max(1, cells_per_sample)))
    return max(1, min(fits, math.ceil(size / processes)))


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
        cache = step.samples.cache
        cells = max(mean.shape[-1] * mean.shape[-2] for mean in cache.mean)
        self.per_pass = samples_per_pass(
            size=self.size, training_pass=step.batch * step.fold, cells_per_sample=cells, processes=step.processes,
        )

    def bucket_of(self, number: int) -> int:
        plan = self.samples.plan
        return 0 if plan.buckets is None else plan.buckets[plan.image_for(number)]

    def chunks(self) -> list[list[int]]:
        """This process's forward passes: the batch's sample numbers by bucket (a pass stacks
        latents of one shape), ``per_pass`` at a time."""
        buckets: dict[int, list[int]] = {}
        for number in range(self.size):
            buckets.setdefault(self.bucket_of(number), []).append(number)
        every = [numbers[first : first + self.per_pass]
                 for numbers in buckets.values() for first in range(0, len(numbers), self.per_pass)]
        return every[self.step.rank :: self.step.processes]

    def score(self) -> float:
        """The mean loss over the fixed batch, the same on every process.

        Memory running out halves the passes down to the training's micro-batch, which the
        training itself runs with gradients; past that it is the caller's to handle.
        """
        while True:
            try:
                return self._score()
            except (torch.OutOfMemoryError, MemoryError):
                if self.per_pass <= self.step.batch or self.step.processes > 1:
                    raise
                self.per_pass = max(self.step.batch, self.per_pass // 2)
                if self.step.device.type == "cuda":
                    torch.cuda.empty_cache()

    def _score(self) -> float:
        total = torch.zeros((), device=self.step.device, dtype=torch.float64)
        with torch.no_grad():
            for numbers in self.chunks():
                total += self.step.loss(numbers, samples=self.samples).double() * len(numbers)
        if self.step.processes > 1:
            torch.distributed.all_reduce(total)
        return float(total) / self.size
