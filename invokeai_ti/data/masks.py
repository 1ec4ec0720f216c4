"""Masks: which pixels of a photo the loss learns from, so a busy background is not learned.

``photo.mask.png`` beside ``photo.jpg`` (kohya's ``--masked_loss``) wins over a PNG's own alpha
channel (kohya's ``--alpha_mask``, A1111). White or opaque is learned, black or transparent is not,
grey in between. The mask is cut exactly as its photo is (same bucket, same crop, same mirror)
and averaged down to the latent grid, where the loss is computed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from ..errors import UserError
from .buckets import Fit
from ..image_files import ImageTooLarge, open_image
from .decoding import pillow_for_our_files, reduced, upright_size
from .images import MASK_SUFFIX, REDUCING_GAP, cut

ALPHA = "alpha"


def mask_file(image: Path) -> Path:
    return image.with_name(image.stem + MASK_SUFFIX)


def mask_source(image: Path) -> Path | str | None:
    """The mask file beside the photo, ``ALPHA`` for a photo with transparency, or None."""
    beside = mask_file(image)
    if beside.is_file():
        return beside
    with pillow_for_our_files(), open_image(image) as opened:
        if opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info:
            return ALPHA
    return None


@contextmanager
def _opened_mask(path: Path) -> Iterator[Image.Image]:
    """The mask file opened (header only), every failure one sentence naming it."""
    try:
        with pillow_for_our_files(), open_image(path) as opened:
            yield opened
    except ImageTooLarge as problem:
        raise UserError(f"the mask {path} is {problem}; make it the size of its photo") from None
    except UserError:
        raise
    except Exception:
        raise UserError(f"the mask {path} cannot be read as an image; replace or delete it") from None


def _read_mask(image: Path, source: Path | str, at_least: int | None = None) -> Image.Image:
    """The mask as 8-bit grey, upright as its photo is shown; its size is checked before it is
    decoded. With ``at_least`` it is shrunk as its photo is (``reduced``), to no fewer pixels a side."""
    with _opened_mask(image if source == ALPHA else Path(source)) as opened:
        opened.load()
        upright = ImageOps.exif_transpose(opened if at_least is None else reduced(opened, at_least))
        if source == ALPHA:
            return upright.convert("RGBA").getchannel("A")
        return upright.convert("L")


def _upright_mask_size(path: Path) -> tuple[int, int]:
    with _opened_mask(path) as opened:
        width, height = opened.size
        turned = opened.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
    return (height, width) if turned else (width, height)


def check_mask(image: Path, source: Path | str) -> None:
    """An empty mask learns nothing and a mask of another size fits no pixel: both are refused.

    The sizes are compared from the headers, before the mask is decoded.
    """
    mask_size = None if source == ALPHA else _upright_mask_size(Path(source))
    if mask_size is not None and mask_size != upright_size(image):
        width, height = upright_size(image)
        raise UserError(
            f"the mask {source} is {mask_size[0]}x{mask_size[1]} but its photo {image.name} is "
            f"{width}x{height}; make the mask the photo's size"
        )
    mask = _read_mask(image, source)
    if not np.asarray(mask).any():
        where = f"{image.name}'s alpha channel is fully transparent" if source == ALPHA else f"the mask {source} is all black"
        raise UserError(
            f"{where}, so nothing of {image.name} would be learned; paint white (opaque) where the "
            "concept is, or delete the mask"
        )


def latent_mask(
    image: Path, source: Path | str, resolution: int, center_crop: bool, fit: Fit | None,
    grid: tuple[int, int],
) -> torch.Tensor:
    """``[2, 1, h, w]`` weights in [0, 1] for the picture and its mirror image on a latent
    ``grid`` of (w, h): each weight is the mean of the mask over its latent cell."""
    side = resolution if fit is None else max(fit.bucket.width, fit.bucket.height)
    pixels = cut(_read_mask(image, source, round(side * REDUCING_GAP)), resolution, center_crop, fit)
    small = pixels.resize(grid, Image.Resampling.BOX)
    weights = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).clamp(0, 1)
    return torch.stack([weights, weights.flip(-1)]).unsqueeze(1)
