"""Opening an image file the trainer did not make: only the formats the README documents, and
never one that claims more pixels than the trainer will decode.

Pillow opens every format it has a plugin for, and some plugins hand the file to another program
(EPS to Ghostscript, whose sandbox has a long record of escapes) or parse rarely used formats
nobody trains on. Photos, masks, previews read back and the report's pictures all come from
folders other people can write in, so every one is opened here, with the formats named. Pillow
reads only the header when it opens a file, so the size is checked before a pixel is decoded:
a 300 KB file that claims 50000x50000 pixels costs nothing to refuse.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

# The README's "PNG, JPEG, GIF, WebP, BMP", by Pillow's names.
DOCUMENTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
# What the trainer writes and reads back itself (previews).
PNG_ONLY: tuple[str, ...] = ("PNG",)

MAX_DECODED_PIXELS = 1 << 28
"""Our stand-in for Pillow's decompression-bomb limit: 268 megapixels, about 1 GB as RGBA.

It counts the pixels actually decoded, so a JPEG read at 1/8 scale may be far larger on disk.
"""


class ImageTooLarge(ValueError):
    """The header claims more pixels than ``MAX_DECODED_PIXELS``; ``str()`` says how many."""


@contextmanager
def open_image(
    path: Path, *, formats: Sequence[str] = DOCUMENTED_FORMATS, draft_side: int | None = None
) -> Iterator[Image.Image]:
    """``path`` opened (header only) as one of ``formats``; ``UnidentifiedImageError`` for any
    other format, ``ImageTooLarge`` for more pixels than the trainer decodes.

    ``draft_side`` asks a JPEG to decode at 1/2, 1/4 or 1/8 scale while keeping at least that
    many pixels a side, so the check counts what will really be decoded.
    """
    with Image.open(path, formats=list(formats)) as image:
        if draft_side is not None:
            image.draft("RGB", (draft_side, draft_side))
        width, height = image.size
        if width * height > MAX_DECODED_PIXELS:
            raise ImageTooLarge(f"too large to read ({width}x{height} pixels)")
        yield image
