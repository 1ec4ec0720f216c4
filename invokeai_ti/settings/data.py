"""The training images and their captions: where they are, the size they train at (squares or
aspect-ratio buckets), masks, and how caption tags are shuffled and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import Problem
from .fields import setting

FORM_RESOLUTIONS = (512, 768, 1024)


@dataclass
class DataSettings:
    """The images, their size and their captions (``--help``'s images group)."""

    train_data_dir: Path | None = setting(
        None,
        "folder of training images (default: <root>/text-inversion-training-data/<trigger>)",
        group="images",
        label="Data Training Directory",
    )
    resolution: int | None = setting(
        None,
        "training resolution in pixels, a multiple of 8 (default: the model's native size: 512 "
        "for SD-1, 768 for SD-2 768-v, 1024 for SDXL)",
        group="images",
        label="Image resolution (pixels)",
        choices_form=FORM_RESOLUTIONS,
    )
    center_crop: bool = setting(
        False, "crop images to a centred square before resizing", group="images",
        label="Center crop images before resizing",
    )
    bucket: bool = setting(
        True,
        "keep each image's aspect ratio: images are grouped into buckets of about the "
        "resolution's pixel count, sides in steps of --bucket_reso_steps, and each step trains "
        "on one bucket (--no-bucket squares every image, cropped or squashed per --center_crop)",
        group="images", label="Keep aspect ratios (buckets)",
    )
    bucket_reso_steps: int = setting(
        64,
        "the step between bucket sides in pixels: 64 for Stable Diffusion models, whose UNet "
        "needs sides in multiples of 64",
        group="images",
    )
    masked_loss: bool = setting(
        True,
        "weight the loss by each image's mask: photo.mask.png beside photo.jpg, or a PNG's alpha "
        "channel (white or opaque is learned, black or transparent is not)",
        group="images", label="Learn only the masked part (alpha or .mask.png)",
    )
    shuffle_caption: bool = setting(
        False,
        "shuffle the comma-separated tags of each caption file every time it is used "
        "(the first --keep_tokens tags stay in front)",
        group="images", label="Shuffle caption tags",
    )
    keep_tokens: int = setting(
        0, "comma-separated tags at the start of a caption that shuffling and dropout keep",
        group="images", label="Tags kept in front", slider=(0, 10),
    )
    caption_tag_dropout_rate: float = setting(
        0.0,
        "the chance that each tag of a caption file (not a kept one, never the trigger) is left "
        "out of a sample",
        group="images", label="Tag dropout rate (0-1)",
    )

    def data_problems(self) -> list[Problem]:
        found = []
        if self.resolution is not None and (self.resolution < 8 or self.resolution % 8):
            found.append(Problem(
                f"the resolution {self.resolution} is not a positive multiple of 8; use 512, 768 or 1024",
                "resolution"))
        if self.bucket_reso_steps < 8 or self.bucket_reso_steps % 8:
            found.append(Problem(
                f"the bucket step {self.bucket_reso_steps} is not a positive multiple of 8; use 64",
                "bucket_reso_steps"))
        if not 0.0 <= self.caption_tag_dropout_rate < 1.0:
            found.append(Problem(
                f"the tag dropout rate {self.caption_tag_dropout_rate} is not between 0 and 1; use 0.1 or 0",
                "caption_tag_dropout_rate"))
        return found

