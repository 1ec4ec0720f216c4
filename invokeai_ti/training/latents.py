"""The latent cache: each image and its mirror image go through the VAE encoder once.

The latent *distribution* (mean and standard deviation) is kept and a fresh latent is sampled from
it every step, which is exactly what encoding the same pixels again would give. The encoder is
then freed, so it is not in memory while the UNet trains. A model family that conditions on each
image's geometry (SDXL's time ids: its size and the crop taken) hands them in to be kept beside the
latents, since they belong to the pixels just as the latents do; this module knows no family.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from ..dataset import flipped, image_to_tensor, load_image


@dataclass
class LatentCache:
    """Latent distributions of every image, indexed [image, mirrored], and the family's per-image
    ``time_ids[image, mirrored]`` where it has them (SDXL)."""

    mean: torch.Tensor
    std: torch.Tensor
    time_ids: torch.Tensor | None = None

    def sample(self, image: int, mirrored: int, generator: torch.Generator) -> torch.Tensor:
        mean = self.mean[image, mirrored]
        eps = torch.randn(mean.shape, generator=generator, dtype=torch.float32)
        return mean + self.std[image, mirrored] * eps.to(mean.device)


@torch.no_grad()
def cache_latents(
    images: list[Path],
    vae,
    *,
    resolution: int,
    center_crop: bool,
    workers: int,
    device: torch.device,
    dtype: torch.dtype,
    time_ids: torch.Tensor | None = None,
    encoded: Callable[[], None] = lambda: None,
) -> LatentCache:
    """Encode every image and its mirror; decoding runs in ``workers`` threads beside the VAE.

    ``encoded`` is called after each image, for a progress bar: on a CPU a large model's VAE takes
    seconds per image.
    """
    means, stds = [], []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = pool.map(lambda path: load_image(path, resolution, center_crop), images)
        for image in decoded:
            pixels = torch.stack([image_to_tensor(image), image_to_tensor(flipped(image))])
            dist = vae.encode(pixels.to(device, dtype)).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
            encoded()
    scale = vae.config.scaling_factor
    kept_ids = None if time_ids is None else time_ids.to(device)
    return LatentCache(torch.stack(means) * scale, torch.stack(stds) * scale, kept_ids)

