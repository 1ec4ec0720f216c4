"""Decoding a user's picture safely: Pillow's guards, every format's quirks, and never a full-size copy.

The pictures are the user's own, so Pillow's decompression-bomb limit and metadata warnings are
lifted for our reads alone (``image_files`` keeps its own limit on the pixels decoded); a damaged
file of any format becomes one short reason; large pictures are shrunk by whole factors as they are
decoded; and every mode (palette, transparency, 16-bit grey) is flattened to the RGB a viewer shows.
``images`` decides which files count and shapes each into a training picture on top of this.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import UserError
from ..image_files import ImageTooLarge, open_image

_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


class _Unusable(Exception):
    """Carries the short reason (``"truncated or corrupt image"``) a file cannot be trained on."""


def upright_size(path: Path) -> tuple[int, int]:
    """Width and height as the picture is shown, from its header."""
    return _upright_size(path)


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
