"""What a run trains on: the images of the data folder with their captions, masks and buckets.

Everything here is read and checked before the model is loaded, so a caption without the trigger
or a mask of the wrong size is a sentence in seconds, not a failure after minutes of loading. The
same description, fingerprinted, goes into every checkpoint: a resume over a data folder that
changed since would quietly train another sample order, so it is refused and the change named.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .buckets import Bucket, Fit, bucket_for, buckets_for, fit
from .captions import caption_sources, captions_for, with_trigger
from .decoding import upright_size
from .images import ImageScan, require_images
from .masks import ALPHA, check_mask, mask_source

CHANGES_SHOWN = 5


@dataclass(frozen=True)
class TrainingImage:
    path: Path
    # The caption as written (None: the templates describe the image).
    caption: str | None
    # A mask file, ``ALPHA`` or None.
    mask: Path | str | None
    # How the image is cut to its bucket; None when buckets are off.
    fit: Fit | None


@dataclass(frozen=True)
class TrainingData:
    scan: ImageScan
    images: list[TrainingImage]
    trigger: str

    @property
    def paths(self) -> list[Path]:
        return [image.path for image in self.images]

    def captions(self, placeholder: str) -> list[str | None]:
        """Each caption with the trained tokens where the trigger is named."""
        return [
            None if image.caption is None else with_trigger(image.caption, self.trigger, placeholder)
            for image in self.images
        ]

    def bucket_numbers(self) -> list[int] | None:
        """Each image's bucket as a number (the same number for the same bucket); None without buckets."""
        if any(image.fit is None for image in self.images):
            return None
        buckets = sorted({image.fit.bucket for image in self.images})
        return [buckets.index(image.fit.bucket) for image in self.images]

    def summary(self) -> str | None:
        """One line on what besides the pictures will be used; None when nothing is."""
        parts = []
        if captioned := sum(image.caption is not None for image in self.images):
            parts.append(f"{captioned} caption{'s' if captioned > 1 else ''}")
        if masked := sum(image.mask is not None for image in self.images):
            parts.append(f"{masked} mask{'s' if masked > 1 else ''}")
        buckets = sorted({str(image.fit.bucket) for image in self.images if image.fit is not None})
        if len(buckets) > 1:
            parts.append(f"{len(buckets)} aspect-ratio buckets ({', '.join(buckets)})")
        return f"Training data: {'; '.join(parts)}." if parts else None

    def record(self) -> dict[str, Any]:
        """The fingerprint a checkpoint keeps: each file's contents, caption, mask and bucket."""
        return {
            image.path.name: {
                "file": _digest(image.path),
                "caption": image.caption,
                "mask": None if image.mask is None else ALPHA if image.mask == ALPHA else _digest(Path(image.mask)),
                "bucket": None if image.fit is None else str(image.fit.bucket),
            }
            for image in self.images
        }


def read_training_data(
    folder: Path,
    *,
    trigger: str,
    resolution: int,
    bucket: bool,
    bucket_step: int,
    masked_loss: bool,
) -> TrainingData:
    """The images, captions, masks and buckets of ``folder``, every one checked."""
    scan = require_images(folder)
    sources = caption_sources(folder, scan.images)
    captions_for(scan.images, sources, trigger, f"<{trigger}>")
    buckets = buckets_for(resolution, bucket_step) if bucket else []
    images = []
    for path in scan.images:
        mask = mask_source(path) if masked_loss else None
        if mask is not None:
            check_mask(path, mask)
        cut = fit_to_bucket(path, buckets) if bucket else None
        text = sources.get(path)
        images.append(TrainingImage(path, None if text is None else text[0], mask, cut))
    return TrainingData(scan, images, trigger)


def fit_to_bucket(path: Path, buckets: list[Bucket]) -> Fit:
    """How the picture at ``path``, upright, is cut to the bucket closest to its shape."""
    width, height = upright_size(path)
    return fit(width, height, bucket_for(width, height, buckets))


def data_changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two records, in words: files added or removed, pictures, captions,
    masks or buckets changed."""
    changes = []
    if added := sorted(set(now) - set(recorded)):
        changes.append("added " + _names(added))
    if removed := sorted(set(recorded) - set(now)):
        changes.append("removed " + _names(removed))
    for what, key in (("changed pictures", "file"), ("changed captions", "caption"),
                      ("changed masks", "mask"), ("changed buckets", "bucket")):
        differing = sorted(
            name for name in set(now) & set(recorded) if recorded[name].get(key) != now[name].get(key)
        )
        if differing:
            changes.append(f"{what} of {_names(differing)}")
    return changes


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:CHANGES_SHOWN])
    return shown + (f" and {len(names) - CHANGES_SHOWN} more" if len(names) > CHANGES_SHOWN else "")


def _digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
