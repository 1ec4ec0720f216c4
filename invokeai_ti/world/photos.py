"""Photos of a world concept as a user would take them, drawn by a routine of our own.

The world's generator draws flat, anti-aliased shapes on smooth backgrounds. A user's photos of a
red star are nothing like that: larger than the model's pictures, lit from one side, with an
outline, a texture, a shadow on a textured table, seen slightly askew and saved as JPEG. Teaching
a concept from these pictures, which the model never saw, is what shows that a trainer learns a
concept rather than replaying the pretraining data. Only the colour names and the shape names are
shared with the world; every geometry, tone and texture here is this module's own.
"""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PHOTO_SIZE = 128
# Close to what the world calls each colour, but not its values: a user's paint, not the world's.
PAINT: dict[str, tuple[int, int, int]] = {
    "red": (205, 42, 48),
    "orange": (238, 128, 30),
    "yellow": (232, 212, 52),
    "green": (48, 158, 66),
    "blue": (50, 84, 205),
    "purple": (128, 58, 168),
    "white": (238, 238, 232),
    "black": (28, 26, 30),
}
PHOTO_SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
# What makes these pictures photos rather than the world's drawings; each can be left out (the
# random draws still happen, so the rest of the photo stays the same) to measure what it does to
# learning (benchmarks/learning.py --photo-effects).
EFFECTS = frozenset({"outline", "shadow", "light", "tilt", "speckle", "table", "jpeg"})


def outline_points(shape: str, radius: float, rng: random.Random) -> list[list[tuple[float, float]]]:
    """The shape's filled outlines around (0, 0), holes last; proportions are a hand drawing's.

    Each polygon is traced with many points so the perspective warp bends edges as a camera would.
    """
    def circle(r: float, count: int = 48) -> list[tuple[float, float]]:
        return [(r * math.cos(2 * math.pi * k / count), r * math.sin(2 * math.pi * k / count)) for k in range(count)]

    if shape == "circle":
        return [circle(radius * rng.uniform(0.82, 0.9))]
    if shape == "ring":
        return [circle(radius * 0.93), circle(radius * rng.uniform(0.48, 0.56))]
    if shape == "square":
        half = radius * rng.uniform(0.72, 0.8)
        return [[(-half, -half), (half, -half), (half, half), (-half, half)]]
    if shape == "triangle":
        r = radius * 1.02
        return [[(r * math.sin(k * 2 * math.pi / 3), radius * 0.22 - r * math.cos(k * 2 * math.pi / 3))
                 for k in range(3)]]
    if shape == "star":
        inner = rng.uniform(0.42, 0.5)
        return [[((radius if k % 2 == 0 else radius * inner) * math.sin(k * math.pi / 5),
                  -(radius if k % 2 == 0 else radius * inner) * math.cos(k * math.pi / 5)) for k in range(10)]]
    if shape == "cross":
        arm, width = radius * 0.93, radius * rng.uniform(0.28, 0.34)
        return [[(-width, -arm), (width, -arm), (width, -width), (arm, -width), (arm, width), (width, width),
                 (width, arm), (-width, arm), (-width, width), (-arm, width), (-arm, -width), (-width, -width)]]
    raise ValueError(f"unknown shape {shape!r}; photos can show {', '.join(PHOTO_SHAPES)}")


def placed(points: list[tuple[float, float]], centre: tuple[float, float], angle: float) -> list[tuple[float, float]]:
    cos, sin = math.cos(angle), math.sin(angle)
    return [(centre[0] + x * cos - y * sin, centre[1] + x * sin + y * cos) for x, y in points]


def table(rng: random.Random, side: int, textured: bool = True) -> np.ndarray:
    """A neutral surface with grain and light falling off from one corner (flat unless ``textured``)."""
    tone = rng.uniform(90.0, 170.0)
    warmth = rng.uniform(-12.0, 12.0)
    base = np.array([tone + warmth, tone, tone - warmth], dtype=np.float32)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    light = 1.0 + 0.18 * textured * (1.0 - np.hypot(x - rng.random(), y - rng.random()))
    grain_rng = np.random.default_rng(rng.randrange(2**32))
    grain = grain_rng.normal(0.0, 1.0, (side // 8, side)).astype(np.float32)
    grain = np.repeat(grain, 8, axis=0)[:side] * 4.0 * textured
    return base[None, None, :] * light[..., None] + grain[..., None]


def perspective_coefficients(side: int, rng: random.Random, tilt: float = 0.08) -> list[float]:
    """The transform mapping the output square onto a slightly skewed quadrilateral of the input."""
    corners = [(0, 0), (side, 0), (side, side), (0, side)]
    moved = [(x + rng.uniform(-tilt, tilt) * side, y + rng.uniform(-tilt, tilt) * side) for x, y in corners]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(corners, moved):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return list(np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64)))


def draw_photo(colour: str, shape: str, rng: random.Random, size: int = PHOTO_SIZE,
               effects: frozenset[str] = EFFECTS) -> Image.Image:
    """One photo of a ``colour`` ``shape``: textured, outlined, shadowed, askew and JPEG-worn
    (each of ``EFFECTS`` only when in ``effects``)."""
    if unknown := set(effects) - EFFECTS:
        raise ValueError(f"unknown photo effects {sorted(unknown)}; they are {', '.join(sorted(EFFECTS))}")
    if colour not in PAINT:
        raise ValueError(f"unknown colour {colour!r}; photos can show {', '.join(PAINT)}")
    side = size * 2
    radius = rng.uniform(0.27, 0.38) * side
    margin = radius + side * 0.06
    centre = (rng.uniform(margin, side - margin), rng.uniform(margin, side - margin))
    angle = math.radians(rng.uniform(-35.0, 35.0))
    polygons = [placed(points, centre, angle) for points in outline_points(shape, radius, rng)]

    def mask_of(offset: tuple[float, float] = (0.0, 0.0)) -> Image.Image:
        mask = Image.new("L", (side, side), 0)
        pen = ImageDraw.Draw(mask)
        for index, polygon in enumerate(polygons):
            pen.polygon([(x + offset[0], y + offset[1]) for x, y in polygon], fill=0 if index else 255)
        return mask

    pixels = table(rng, side, "table" in effects)
    shadow_offset = (rng.uniform(2, 6) * side / 128, rng.uniform(3, 7) * side / 128)
    shadow = np.asarray(mask_of(shadow_offset).filter(ImageFilter.GaussianBlur(side / 40)), np.float32) / 255.0
    pixels *= 1.0 - 0.35 * ("shadow" in effects) * shadow[..., None]

    paint = np.array(PAINT[colour], dtype=np.float32)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    lit = 1.0 + 0.09 * ("light" in effects) * (((centre[0] - x) + (centre[1] - y)) / radius).clip(-1.5, 1.5)
    speckle = np.random.default_rng(rng.randrange(2**32)).normal(0.0, 5.0, (side, side, 1)).astype(np.float32)
    speckle *= "speckle" in effects
    surface = paint[None, None, :] * lit[..., None] + speckle
    body = mask_of()
    inside = np.asarray(body, np.float32)[..., None] / 255.0
    edge = np.asarray(body.filter(ImageFilter.MaxFilter(5)), np.float32)[..., None] / 255.0 - np.asarray(
        body.filter(ImageFilter.MinFilter(5)), np.float32)[..., None] / 255.0
    outline = paint * 0.55 if colour != "black" else paint + 25.0
    pixels = pixels * (1.0 - inside) + surface * inside
    if "outline" in effects:
        pixels = pixels * (1.0 - 0.8 * edge) + outline[None, None, :] * 0.8 * edge

    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    picture = picture.transform(
        (side, side), Image.Transform.PERSPECTIVE,
        perspective_coefficients(side, rng, 0.08 if "tilt" in effects else 0.0),
        resample=Image.Resampling.BICUBIC, fillcolor=tuple(int(c) for c in pixels[0, 0]),
    )
    picture = picture.resize((size, size), Image.Resampling.LANCZOS)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, 3.0, (size, size, 3))
    picture = Image.fromarray(np.clip(np.asarray(picture, np.float32) + noise, 0, 255).astype(np.uint8), "RGB")
    quality = rng.randrange(55, 80)
    if "jpeg" not in effects:
        return picture
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def write_photos(folder: Path, colour: str, shape: str, count: int = 6, *, seed: int = 0,
                 size: int = PHOTO_SIZE, effects: frozenset[str] = EFFECTS) -> list[Path]:
    """``count`` JPEG photos of one concept in ``folder``, the same for the same seed (PNG
    without the ``jpeg`` effect)."""
    rng = random.Random(f"{colour}-{shape}-{seed}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        jpeg = "jpeg" in effects
        path = folder / f"{colour}-{shape}-{index + 1}.{'jpg' if jpeg else 'png'}"
        photo = draw_photo(colour, shape, rng, size, effects)
        photo.save(path, **({"quality": 92} if jpeg else {}))
        paths.append(path)
    return paths
