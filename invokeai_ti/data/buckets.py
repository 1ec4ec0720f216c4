"""Aspect-ratio buckets: the picture sizes an image of any shape is trained at without squashing.

A portrait photo squashed into a square teaches the embedding a thin face; cropped to a square it
loses the head or the feet. Each image instead goes to the bucket whose shape is closest to its
own, is scaled to cover it and centre-cropped by what little is left over. Every bucket holds
about the resolution's pixel count, so a step costs the same whatever its shape, and its sides are
the resolution plus or minus whole steps (64 pixels as in kohya's ``--bucket_reso_steps``), so a
square image lands on exactly the square the unbucketed trainer uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Bucket:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class Fit:
    """How one picture is cut to its bucket, in the coordinates of the picture scaled to cover it."""

    bucket: Bucket
    scaled_width: int
    scaled_height: int
    crop_left: int
    crop_top: int

    @property
    def mirrored_crop_left(self) -> int:
        """In the mirror image the cut lies as far from the right edge as it lay from the left."""
        return self.scaled_width - self.bucket.width - self.crop_left

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The crop in a decode of ``width`` x ``height`` (a JPEG draft may be smaller than the file)."""
        sx, sy = width / self.scaled_width, height / self.scaled_height
        return (
            self.crop_left * sx,
            self.crop_top * sy,
            (self.crop_left + self.bucket.width) * sx,
            (self.crop_top + self.bucket.height) * sy,
        )


def buckets_for(resolution: int, step: int) -> list[Bucket]:
    """Every bucket for ``resolution``: sides from half to twice it, area at most its square.

    For each width the height is the largest one that keeps the area within the square's, so
    no bucket costs more memory than the square does; every bucket also comes turned, so a
    portrait finds the same shapes a landscape does.
    """
    area = resolution * resolution
    low = resolution - step * ((resolution // 2) // step)
    sides = list(range(max(low, 8), 2 * resolution + 1, step))
    found = set()
    for width in sides:
        fitting = [height for height in sides if width * height <= area]
        if fitting:
            found.add(Bucket(width, max(fitting)))
            found.add(Bucket(max(fitting), width))
    return sorted(found)


def step_with_buckets(resolution: int, requested: int, multiple: int) -> int | None:
    """The bucket step to train with: ``requested`` when it gives buckets besides the square, else
    the largest step under it that does and that the model takes (a multiple of ``multiple``, its
    latent downsampling, and of 8); None when no such step does.

    A step of more than half the resolution leaves only the square (64 at 32 or 64 px): every
    picture would silently train square, which is what buckets are there to avoid.
    """
    if len(buckets_for(resolution, requested)) > 1:
        return requested
    unit = math.lcm(multiple, 8)
    for step in range(min(requested, resolution) // unit * unit, 0, -unit):
        if len(buckets_for(resolution, step)) > 1:
            return step
    return None


def bucket_for(width: int, height: int, buckets: list[Bucket]) -> Bucket:
    """The bucket closest in shape (by log aspect ratio); ties go to the larger one."""
    aspect = math.log(width / height)
    return min(
        buckets,
        key=lambda b: (round(abs(math.log(b.width / b.height) - aspect), 9), -b.width * b.height, b.width),
    )


def fit(width: int, height: int, bucket: Bucket) -> Fit:
    """Scale the picture to cover the bucket, then centre the cut."""
    scale = max(bucket.width / width, bucket.height / height)
    scaled_width = max(bucket.width, round(width * scale))
    scaled_height = max(bucket.height, round(height * scale))
    return Fit(
        bucket,
        scaled_width,
        scaled_height,
        (scaled_width - bucket.width) // 2,
        (scaled_height - bucket.height) // 2,
    )
