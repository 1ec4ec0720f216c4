"""Training images: which files count, and how each becomes an RGB picture of its bucket's size.

The trainer encodes every image and its mirror image through the VAE once and caches the latent
distributions, so nothing here is random: the trainer picks flips and templates from its seed.
Every file is fully decoded while scanning, because a truncated download or a text file named
``.png`` must be reported before the model is loaded, not crash training halfway through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import Problem, UserError
from .buckets import Fit
from .decoding import _Unusable, _broken_after_scan, _read_rgb, _upright_size

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})
CAPTION_SUFFIX = ".txt"
MASK_SUFFIX = ".mask.png"
METADATA_FILE = "metadata.jsonl"
# The setting that fixes a problem of the data folder, its pictures, captions or masks.
DATA_FOLDER_FIELD = "train_data_dir"

REDUCING_GAP = 2.0
"""As in ``Image.thumbnail``: shrink by whole factors (JPEG draft, ``reduce``) down to at most
twice the target, then resample: close to a plain bicubic resize, without its full-size cost."""

REASONS_SHOWN = 5


@dataclass
class ImageScan:
    """What a data folder holds, so the user learns which files were left out and why."""

    folder: Path
    images: list[Path]
    skipped: list[tuple[Path, str]]

    def summary(self) -> str:
        found = len(self.images) + len(self.skipped)
        text = f"found {_count(found, 'file')}: {_count(len(self.images), 'image')}"
        if self.skipped:
            text += f", {len(self.skipped)} skipped ({_reasons(self.skipped)})"
        return text


def scan_images(folder: Path) -> ImageScan:
    """Never raises: the form validates folders as the user types them."""
    try:
        files = _visible_files(folder)
    except OSError:
        return ImageScan(folder, [], [])
    images: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in files:
        if is_companion(path, files):
            continue
        if (reason := _unusable_reason(path)) is None:
            images.append(path)
        else:
            skipped.append((path, reason))
    return ImageScan(folder, images, skipped)


def data_folder_problem(folder: Path | None) -> Problem | None:
    """Stops decoding at the first usable image: the form asks again on every OK."""
    if (problem := _folder_problem(folder)) is not None:
        return Problem(problem, DATA_FOLDER_FIELD)
    assert folder is not None
    skipped: list[tuple[Path, str]] = []
    files = _visible_files(folder)
    for path in files:
        if is_companion(path, files):
            continue
        if (reason := _unusable_reason(path)) is None:
            return None
        skipped.append((path, reason))
    return Problem(_no_usable_image(ImageScan(folder, [], skipped)), DATA_FOLDER_FIELD)


def named_images(folder: Path) -> list[Path]:
    """The files that look like pictures by name, undecoded: enough to match captions to them."""
    files = _visible_files(folder)
    return [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS and not is_companion(p, files)]


def require_images(folder: Path) -> ImageScan:
    """The trainer's entry: a folder with nothing to learn from is the user's to fix."""
    if (problem := _folder_problem(folder)) is not None:
        raise UserError(problem)
    scan = scan_images(folder)
    if not scan.images:
        raise UserError(_no_usable_image(scan))
    return scan


def is_companion(path: Path, files: list[Path]) -> bool:
    """Captions and masks beside their photos are part of the data, not skipped files; a
    ``notes.txt`` with no ``notes`` picture is still reported."""
    name = path.name.lower()
    if name == METADATA_FILE:
        return True
    for suffix in (MASK_SUFFIX, CAPTION_SUFFIX):
        if name.endswith(suffix):
            stem = path.name[: -len(suffix)]
            return any(
                other.stem == stem and other.suffix.lower() in IMAGE_EXTENSIONS and other != path
                for other in files
            )
    return False


def load_image(path: Path, resolution: int, center_crop: bool, fit: Fit | None = None) -> Image.Image:
    """Without ``center_crop`` the picture is squashed to a square, as the diffusers example does;
    with a bucket's ``fit`` it keeps its shape and is cut to the bucket.

    A file that broke after the scan reaches the user as a sentence, not a traceback.
    """
    side = resolution if fit is None else max(fit.bucket.width, fit.bucket.height)
    try:
        image = _read_rgb(path, round(side * REDUCING_GAP))
    except _Unusable as problem:
        raise _broken_after_scan(path, problem) from None
    return cut(image, resolution, center_crop, fit)


def cut(image: Image.Image, resolution: int, center_crop: bool, fit: Fit | None) -> Image.Image:
    """The resize and crop of ``load_image``, shared with the masks so they stay on their pixels."""
    width, height = image.size
    if fit is not None:
        size = (fit.bucket.width, fit.bucket.height)
        return image.resize(size, Image.Resampling.BICUBIC, box=fit.box(width, height), reducing_gap=REDUCING_GAP)
    box = (0, 0, width, height)
    if center_crop:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
    return image.resize(
        (resolution, resolution), Image.Resampling.BICUBIC, box=box, reducing_gap=REDUCING_GAP
    )


@dataclass(frozen=True)
class ImageGeometry:
    """What SDXL's UNet is told about a training picture: its size and where the square was cut.

    SDXL learned to draw what these describe (a small original looks soft, a crop looks cut
    off), so they must be the truth about each image; the crop is in the coordinates of the
    picture scaled so its short side is the training resolution.
    """

    height: int
    width: int
    crop_top: int
    crop_left: int
    mirrored_crop_left: int
    target_height: int
    target_width: int


def image_geometry(path: Path, resolution: int, center_crop: bool, fit: Fit | None = None) -> ImageGeometry:
    """The picture's upright size in the file and the crop ``load_image`` really takes from it.

    The size is read from the header, not from the decode, which JPEG drafts shrink. Without
    ``center_crop`` the whole picture is squashed into the square, so the crop is at 0, 0. In the
    mirror image the square lies as far from the right edge as it lay from the left.
    """
    width, height = _upright_size(path)
    if fit is not None:
        bucket = fit.bucket
        return ImageGeometry(
            height, width, fit.crop_top, fit.crop_left, fit.mirrored_crop_left, bucket.height, bucket.width
        )
    if not center_crop:
        return ImageGeometry(height, width, 0, 0, 0, resolution, resolution)
    short = min(width, height)
    scaled_width, scaled_height = round(width * resolution / short), round(height * resolution / short)
    left, top = (scaled_width - resolution) // 2, (scaled_height - resolution) // 2
    return ImageGeometry(height, width, top, left, scaled_width - resolution - left, resolution, resolution)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """[-1, 1] is the range the Stable Diffusion VAE was trained on."""
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image from load_image, got mode {image.mode}")
    pixels = torch.from_numpy(np.array(image, dtype=np.float32))
    return (pixels.permute(2, 0, 1) / 127.5 - 1.0).contiguous()


def flipped(image: Image.Image) -> Image.Image:
    """The mirror image is the paper's only augmentation; the trainer caches both."""
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _reasons(skipped: list[tuple[Path, str]]) -> str:
    """A folder of 300 stray files must not produce a 300-line message."""
    parts = [f"{path.name}: {reason}" for path, reason in skipped[:REASONS_SHOWN]]
    if len(skipped) > REASONS_SHOWN:
        parts.append(f"and {len(skipped) - REASONS_SHOWN} more")
    return "; ".join(parts)


def _visible_files(folder: Path) -> list[Path]:
    """Hidden files (.DS_Store, macOS ``._cat.jpg`` forks) and subfolders are not the user's pictures."""
    return sorted(path for path in folder.iterdir() if not path.name.startswith(".") and path.is_file())


def _folder_problem(folder: Path | None) -> str | None:
    if folder is None:
        return "no data folder is set; choose the folder that holds 3-5 images of your concept"
    if not folder.exists():
        return f"the data folder {folder} does not exist; create it and put 3-5 images of your concept in it"
    if not folder.is_dir():
        return f"the data folder {folder} is a file, not a folder; choose the folder that holds your images"
    try:
        files = _visible_files(folder)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return f"the data folder {folder} cannot be read ({reason}); choose a folder you can read"
    if not files:
        return f"the data folder {folder} is empty; put 3-5 images of your concept in it"
    return None


def _no_usable_image(scan: ImageScan) -> str:
    found = len(scan.images) + len(scan.skipped)
    return (
        f"the data folder {scan.folder} holds no usable image: found {_count(found, 'file')}, "
        f"skipped {len(scan.skipped)} ({_reasons(scan.skipped)}); "
        "add PNG, JPEG, GIF, WebP or BMP images"
    )


def _unusable_reason(path: Path) -> str | None:
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return "not an image"
    try:
        _read_rgb(path, 1)
    except _Unusable as problem:
        return str(problem)
    return None
