"""The judge's verdict on a run's previews, for runs on the world model.

The concept a run teaches is whatever its training photos show, so the judge reads the photos
first (as the trainer sees them) and then says of every preview how many of its pictures show
that same colour and shape. The verdict travels in the preview's PNG text chunks, where the
report finds it without knowing that a judge exists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..data.images import load_image, scan_images
from .judge import judge_many, share_showing


@dataclass(frozen=True)
class ConceptVerdict:
    colour: str
    shape: str
    photos_agreeing: int
    photos: int

    @classmethod
    def of_photos(cls, folder: Path, resolution: int | None, center_crop: bool) -> ConceptVerdict | None:
        """The concept most of the photos show; None when the folder has no usable photo."""
        images = [load_image(path, resolution or 32, center_crop) for path in scan_images(folder).images]
        if not images:
            return None
        (colour, shape), agreeing = Counter(judge_many(images)).most_common(1)[0]
        return cls(colour, shape, agreeing, len(images))

    @property
    def concept(self) -> str:
        return f"{self.colour} {self.shape}"

    def __call__(self, images: list[Image.Image]) -> dict[str, str]:
        share = share_showing(images, self.colour, self.shape)
        shown = round(share * len(images))
        return {
            "verdict": f"the judge sees a {self.concept} in {shown} of {len(images)} pictures",
            "judged_share": f"{share:.4f}",
            "judged_concept": self.concept,
        }
