"""Every random choice of a training sample, derived from the run's seed and the sample's number.

A resumed run therefore continues exactly where the killed one was, N processes at batch B see
exactly the samples of one process at N x B, and nothing random has to be saved in a checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from .latents import LatentCache


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
    templates: torch.Tensor
    images: list[int]
    mirrored: list[int]
    # SDXL's size and crop conditioning of each sample's image; None for families without it.
    time_ids: torch.Tensor | None = None


class SamplePlan:
    """Decides every random choice of sample number ``n`` from the seed alone."""

    def __init__(self, seed: int, num_images: int, num_templates: int, num_timesteps: int) -> None:
        self.seed = seed
        self.num_images = num_images
        self.num_templates = num_templates
        self.num_timesteps = num_timesteps
        self._orders: dict[int, list[int]] = {}

    def image_for(self, n: int) -> int:
        """Every image once per cycle, in an order drawn per cycle."""
        cycle, position = divmod(n, self.num_images)
        order = self._orders.get(cycle)
        if order is None:
            generator = torch.Generator().manual_seed(sample_seed(self.seed, "order", cycle))
            order = torch.randperm(self.num_images, generator=generator).tolist()
            self._orders = {cycle: order}
        return order[position]

    def draw(self, n: int, cache: LatentCache) -> Sample:
        generator = torch.Generator().manual_seed(sample_seed(self.seed, "sample", n))
        image = self.image_for(n)
        mirrored = int(torch.randint(2, (1,), generator=generator))
        template = int(torch.randint(self.num_templates, (1,), generator=generator))
        timestep = int(torch.randint(self.num_timesteps, (1,), generator=generator))
        latent = cache.sample(image, mirrored, generator)
        noise = torch.randn(latent.shape, generator=generator, dtype=torch.float32)
        return Sample(image, mirrored, template, timestep, latent, noise.to(latent.device))

    def batch(self, numbers: list[int], cache: LatentCache) -> Batch:
        samples = [self.draw(n, cache) for n in numbers]
        device = samples[0].latent.device
        return Batch(
            latents=torch.stack([s.latent for s in samples]),
            noise=torch.stack([s.noise for s in samples]),
            timesteps=torch.tensor([s.timestep for s in samples], device=device),
            templates=torch.tensor([s.template for s in samples], device=device),
            images=[s.image for s in samples],
            mirrored=[s.mirrored for s in samples],
            time_ids=None if cache.time_ids is None else torch.stack(
                [cache.time_ids[s.image, s.mirrored] for s in samples]
            ),
        )
