"""Every random choice of a training sample, derived from the run's seed and the sample's number.

A resumed run therefore continues exactly where the killed one was, N processes at batch B see
exactly the samples of one process at N x B, and nothing random has to be saved in a checkpoint.

With aspect-ratio buckets every optimizer step draws all its samples from one bucket, so any
split of the step into processes, micro-batches and folds stacks pictures of one shape; the
step's bucket is decided from the seed and the step's number alone, like everything else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ..errors import UserError
from .latents import LatentCache


def timestep_range(low: int, high: int, num_timesteps: int) -> tuple[int, int]:
    """The ``[low, high)`` timesteps a run trains on, within the model's scheduler.

    ``high`` past the scheduler's last timestep means "up to the noisiest", so the default of
    1000 suits a model trained on fewer; a ``low`` the model does not have cannot be honoured.
    """
    if low >= num_timesteps:
        raise UserError(
            f"--min_timestep {low} is beyond this model's {num_timesteps} timesteps; give a number below "
            f"{num_timesteps}, such as {num_timesteps // 4}"
        )
    return low, min(high, num_timesteps)


def sample_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the run's seed and a label, stable across machines and Python runs."""
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class Sample:
    image: int
    mirrored: int
    template: int
    timestep: int
    latent: torch.Tensor
    noise: torch.Tensor


@dataclass(frozen=True)
class Batch:
    """Samples stacked for one forward pass."""

    latents: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    # Host lists: the prompts look the templates up in Python, which must not wait for a device.
    templates: list[int]
    images: list[int]
    mirrored: list[int]
    # SDXL's size and crop conditioning of each sample's image; None for families without it.
    time_ids: torch.Tensor | None = None
    # Per-pixel loss weights on the latent grid, [n, 1, h, w]; None when no sample is masked.
    masks: torch.Tensor | None = None
    numbers: list[int] | None = None


class SamplePlan:
    """Decides every random choice of sample number ``n`` from the seed alone."""

    def __init__(
        self,
        seed: int,
        num_images: int,
        num_templates: int,
        num_timesteps: int,
        *,
        buckets: list[int] | None = None,
        samples_per_step: int = 1,
        noise_offset: float = 0.0,
        timesteps: tuple[int, int] | None = None,
    ) -> None:
        self.seed = seed
        self.num_images = num_images
        self.num_templates = num_templates
        self.num_timesteps = num_timesteps
        # The timesteps drawn from, [low, high); every one of the scheduler's by default.
        self.timesteps = timesteps or (0, num_timesteps)
        self.noise_offset = noise_offset
        self.samples_per_step = samples_per_step
        self._orders: dict[int, list[int]] = {}
        # One bucket is the unbucketed plan exactly, so square data sets train as they always did.
        self.buckets = buckets if buckets is not None and len(set(buckets)) > 1 else None

    def image_for(self, n: int) -> int:
        """Every image once per cycle, in an order drawn per cycle."""
        if self.buckets is not None:
            return self._bucketed_image_for(n)
        cycle, position = divmod(n, self.num_images)
        order = self._orders.get(cycle)
        if order is None:
            generator = torch.Generator().manual_seed(sample_seed(self.seed, "order", cycle))
            order = torch.randperm(self.num_images, generator=generator).tolist()
            self._orders = {cycle: order}
        return order[position]

    def _bucketed_image_for(self, n: int) -> int:
        """A cycle is every bucket's images, each bucket's shuffled and cut into whole steps (the
        last one topped up from its start), with the steps of all buckets shuffled together."""
        step, position = divmod(n, self.samples_per_step)
        steps_per_cycle = sum(-(-count // self.samples_per_step) for count in self._bucket_sizes())
        cycle, index = divmod(step, steps_per_cycle)
        chunks = self._orders.get(cycle)
        if chunks is None:
            generator = torch.Generator().manual_seed(sample_seed(self.seed, "bucketed order", cycle))
            chunks = []
            for bucket in sorted(set(self.buckets)):
                members = [i for i, b in enumerate(self.buckets) if b == bucket]
                order = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
                steps = -(-len(order) // self.samples_per_step)
                padded = [order[i % len(order)] for i in range(steps * self.samples_per_step)]
                size = self.samples_per_step
                chunks += [padded[i * size:(i + 1) * size] for i in range(steps)]
            chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
            self._orders = {cycle: chunks}
        return chunks[index][position]

    def _bucket_sizes(self) -> list[int]:
        return [self.buckets.count(bucket) for bucket in sorted(set(self.buckets))]

    def draw(self, n: int, cache: LatentCache) -> Sample:
        generator = torch.Generator().manual_seed(sample_seed(self.seed, "sample", n))
        image = self.image_for(n)
        mirrored = int(torch.randint(2, (1,), generator=generator))
        template = int(torch.randint(self.num_templates, (1,), generator=generator))
        low, high = self.timesteps
        timestep = low + int(torch.randint(high - low, (1,), generator=generator))
        latent = cache.sample(image, mirrored, generator)
        noise = torch.randn(latent.shape, generator=generator, dtype=torch.float32)
        if self.noise_offset:
            # A shift shared by each channel's pixels: the part of the noise the usual schedule
            # never fully removes, so without it the mean brightness cannot be learned.
            noise = noise + self.noise_offset * torch.randn(
                (latent.shape[0], 1, 1), generator=generator, dtype=torch.float32
            )
        return Sample(image, mirrored, template, timestep, latent, noise.to(latent.device))

    def batch(self, numbers: list[int], cache: LatentCache) -> Batch:
        samples = [self.draw(n, cache) for n in numbers]
        device = samples[0].latent.device
        masks = [cache.mask(s.image, s.mirrored) for s in samples]
        if all(mask is None for mask in masks):
            stacked = None
        else:
            stacked = torch.stack([
                torch.ones_like(s.latent[:1]) if mask is None else mask for s, mask in zip(samples, masks)
            ])
        return Batch(
            latents=torch.stack([s.latent for s in samples]),
            noise=torch.stack([s.noise for s in samples]),
            timesteps=torch.tensor([s.timestep for s in samples], device=device),
            templates=[s.template for s in samples],
            images=[s.image for s in samples],
            mirrored=[s.mirrored for s in samples],
            time_ids=None if cache.time_ids is None else torch.stack(
                [cache.time_ids[s.image, s.mirrored] for s in samples]
            ),
            masks=stacked,
            numbers=list(numbers),
        )
