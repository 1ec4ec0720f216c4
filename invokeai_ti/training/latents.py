"""The latent cache: each image and its mirror image go through the VAE encoder once.

The latent *distribution* (mean and standard deviation) is kept and a fresh latent is sampled from
it every step, which is exactly what encoding the same pixels again would give. The encoder is
then freed, so it is not in memory while the UNet trains. A model family that conditions on each
image's geometry (SDXL's time ids: its size and the crop taken) hands them in to be kept beside the
latents, since they belong to the pixels just as the latents do; this module knows no family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from ..data.folder import TrainingImage
from ..data.images import flipped, image_to_tensor, load_image
from ..data.masks import latent_mask


@dataclass
class LatentCache:
    """Latent distributions of every image, indexed [image][mirrored]; each image's shape is its
    bucket's. The family's per-image ``time_ids[image, mirrored]`` where it has them (SDXL), and
    the latent-grid weights of masked images."""

    mean: Sequence[torch.Tensor]
    std: Sequence[torch.Tensor]
    time_ids: torch.Tensor | None = None
    masks: Sequence[torch.Tensor | None] | None = None

    def sample(self, image: int, mirrored: int, generator: torch.Generator) -> torch.Tensor:
        mean = self.mean[image][mirrored]
        eps = torch.randn(mean.shape, generator=generator, dtype=torch.float32)
        return mean + self.std[image][mirrored] * eps.to(mean.device)

    def mask(self, image: int, mirrored: int) -> torch.Tensor | None:
        if self.masks is None or self.masks[image] is None:
            return None
        return self.masks[image][mirrored]


@torch.no_grad()
def cache_latents(
    images: list[TrainingImage],
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
        decoded = pool.map(lambda image: load_image(image.path, resolution, center_crop, image.fit), images)
        for picture in decoded:
            pixels = torch.stack([image_to_tensor(picture), image_to_tensor(flipped(picture))])
            dist = vae.encode(pixels.to(device, dtype)).latent_dist
            scale = vae.config.scaling_factor
            means.append(dist.mean.float() * scale)
            stds.append(dist.std.float() * scale)
            encoded()
    kept_ids = None if time_ids is None else time_ids.to(device)
    masks = None
    if any(image.mask is not None for image in images):
        masks = [
            None if image.mask is None
            else latent_mask(
                image.path, image.mask, resolution, center_crop, image.fit,
                (mean.shape[-1], mean.shape[-2]),
            ).to(device)
            for image, mean in zip(images, means)
        ]
    return LatentCache(means, stds, kept_ids, masks)

