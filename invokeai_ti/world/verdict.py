"""The judge's verdict on a run's previews, for runs on the world model.

The concept a run teaches is whatever its training photos show, so the judge reads the photos
first (as the trainer sees them) and then says of every preview how many of its pictures show
that same colour and shape. The ``Judgement`` travels in the preview's PNG (``outputs.preview_png``),
where the report finds it without knowing that a judge exists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..data.images import load_image, scan_images
from ..outputs.preview_png import Judgement
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

    def __call__(self, images: list[Image.Image]) -> Judgement:
        share = share_showing(images, self.colour, self.shape)
        shown = round(share * len(images))
        return Judgement(f"the judge sees a {self.concept} in {shown} of {len(images)} pictures", share,
                         self.concept)
