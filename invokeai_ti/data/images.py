"""Training images: which files count, and how each becomes an RGB picture of its bucket's size.

The trainer encodes every image and its mirror image through the VAE once and caches the latent
distributions, so nothing here is random: the trainer picks flips and templates from its seed.
Every file is fully decoded while scanning, because a truncated download or a text file named
``.png`` must be reported before the model is loaded, not crash training halfway through.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import Problem, UserError
from ..image_files import ImageTooLarge, open_image
from .buckets import Fit

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

_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


class _Unusable(Exception):
    """Carries the short reason (``"truncated or corrupt image"``) a file cannot be trained on."""


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


def upright_size(path: Path) -> tuple[int, int]:
    """Width and height as the picture is shown, from its header."""
    return _upright_size(path)


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


class PillowForOurFiles:
    """Lift Pillow's decompression-bomb limit and metadata chatter for our own reads only.

    The limit guards servers against hostile uploads; here the files are the user's own photos,
    and a 108-megapixel phone picture trips it. ``image_files.MAX_DECODED_PIXELS`` replaces it. Warnings such as
    "Possibly corrupt EXIF data" name nothing the user can act on. Both settings are
    process-wide: the first reader in lifts them and the last one out restores them, and the lock
    guards only that count, so decoding threads run side by side.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._saved_limit: int | None = None
        self._saved_filters: list = []

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._readers == 0:
                self._saved_limit = Image.MAX_IMAGE_PIXELS
                self._saved_filters = list(warnings.filters)
                Image.MAX_IMAGE_PIXELS = None
                warnings.filterwarnings("ignore", module=r"PIL\.")
            self._readers += 1
        try:
            yield
        finally:
            with self._lock:
                self._readers -= 1
                if self._readers == 0:
                    Image.MAX_IMAGE_PIXELS = self._saved_limit
                    # In place and with the cache invalidated, as catch_warnings restores them:
                    # the C module holds this list.
                    warnings.filters[:] = self._saved_filters
                    getattr(warnings, "_filters_mutated", lambda: None)()


pillow_for_our_files = PillowForOurFiles()


def _broken_after_scan(path: Path, problem: _Unusable) -> UserError:
    return UserError(f"the training image {path} cannot be read ({problem}); remove or replace it")


def _upright_size(path: Path) -> tuple[int, int]:
    """Width and height as the picture is shown: EXIF orientations 5 to 8 turn it on its side."""
    with pillow_for_our_files():
        try:
            with open_image(path) as image:
                width, height = image.size
                orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        except Exception:
            raise _broken_after_scan(path, _Unusable("not a readable image")) from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _read_rgb(path: Path, at_least: int) -> Image.Image:
    """Decode the first frame completely (truncation only shows then), upright, as RGB.

    JPEGs decode at 1/2, 1/4 or 1/8 scale while staying ``at_least`` pixels on each side, so a
    12000x9000 photo never needs its full-size buffer; every other format is shrunk by a whole
    factor right after decoding (``reduce``), before any copy is made, so the one full-size
    buffer is the decoder's and every step after it costs what the training resolution costs.
    """
    with pillow_for_our_files():
        try:
            with open_image(path, draft_side=at_least) as image:
                image.load()
                return _to_rgb(ImageOps.exif_transpose(reduced(image, at_least)))
        except ImageTooLarge as problem:
            raise _Unusable(str(problem)) from None
        except UnidentifiedImageError:
            raise _Unusable("not a readable image") from None
        except FileNotFoundError:
            raise _Unusable("the file no longer exists") from None
        except PermissionError:
            raise _Unusable("permission denied") from None
        # Six decoders raise a zoo of types on damaged data (OSError, SyntaxError, EOFError,
        # ValueError, struct.error ...); every one of them means this file cannot be used.
        except Exception:
            raise _Unusable("truncated or corrupt image") from None


# Modes Pillow's reduce cannot shrink, and the smallest mode each is shrunk in instead.
_REDUCIBLE_AS = {"1": "L", "P": "RGBA", "I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I"}
# Rows of the reduced picture made from one strip of the full-size one, at most; and a strip is
# never more than this fraction of the picture (each strip is copied up to three times).
STRIP_ROWS = 32
STRIPS_AT_LEAST = 32


def reduced(image: Image.Image, at_least: int) -> Image.Image:
    """``image`` shrunk by the largest whole factor that keeps ``at_least`` pixels on each side
    (``image`` itself when there is none), its metadata (EXIF orientation) kept.

    The decoder's full-size buffer is the one Pillow cannot avoid for most formats; this adds
    only a strip of it at a time: ``reduce`` itself copies a picture with transparency whole
    (it averages premultiplied colours), and a palette picture must be converted first. The
    factor is kept to a small part of the height so that a strip stays small.
    """
    factor = min(min(image.width, image.height) // max(at_least, 1), max(image.height // STRIPS_AT_LEAST, 1))
    if factor < 2:
        return image
    mode = _REDUCIBLE_AS.get(image.mode, image.mode)
    rows = factor * max(1, min(STRIP_ROWS, image.height // (STRIPS_AT_LEAST * factor)))
    small = Image.new(mode, (-(-image.width // factor), -(-image.height // factor)))
    for top in range(0, image.height, rows):
        strip = image.crop((0, top, image.width, min(top + rows, image.height)))
        small.paste((strip if strip.mode == mode else strip.convert(mode)).reduce(factor), (0, top // factor))
    small.info = dict(image.info)
    return small


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten any mode to 8-bit RGB as a viewer shows it: transparent areas over white.

    ``image`` is a fresh copy (from ``exif_transpose``), so returning it unchanged is safe.
    Palette transparency goes through RGBA because converting it straight to RGB warns and
    drops it.
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_rgb(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        return _on_white(image.convert("RGBA"))
    return image if image.mode == "RGB" else image.convert("RGB")


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16-bit grey (PNG; Pillow opens it as "I;16", older versions as "I") to 8 bits.

    Pillow's ``convert("L")`` clips instead, turning everything above 255 of 65535 white.
    """
    values = np.asarray(image).astype(np.int64).clip(0, 65535)
    grey = Image.fromarray(((values + 128) // 257).astype(np.uint8))
    key = image.info.get("transparency")
    if isinstance(key, int):
        alpha = Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8))
        return _on_white(Image.merge("LA", (grey, alpha)).convert("RGBA"))
    return grey.convert("RGB")


def _on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
