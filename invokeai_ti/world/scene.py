"""The world: small pictures of one coloured shape each, with plain captions.

A concept is a colour and a shape, never one fixed drawing: size, position, rotation, the colour's
exact tone and the background (tone, tint, gradient) vary from picture to picture, so a model that
has learned "a red star" must have learned what red and star mean, and a concept taught from
photos drawn another way still lands on the same words.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw

COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")
PAIRS: tuple[tuple[str, str], ...] = tuple((colour, shape) for colour in COLOURS for shape in SHAPES)
SIZE = 32
"""Picture side in pixels; the model's latents are a quarter of it."""

RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 40),
    "green": (40, 165, 55),
    "blue": (40, 75, 215),
    "purple": (135, 50, 175),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOUR_JITTER = 10
"""How far each channel of an object's colour may stray, small enough that orange never reads as
red or yellow."""

CAPTION_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "a picture of a {}",
    "a photo of the {}",
    "a drawing of a {}",
    "a {}",
)
"""Mostly "a photo of a ...", the trainer's and the demo's phrasing, with a few plain variants so
the words, not one sentence, carry the meaning."""

GENERIC_NOUNS: tuple[str, ...] = ("shape", "thing", "object", "toy", "figure", "sign")
"""Words a caption may use when it names the colour only: they mean "some shape", which is what
an ordinary initializer should draw before training."""

SUPERSAMPLE = 4
ROTATION_DEGREES = 30.0


class Rng(Protocol):
    """Both ``random.Random`` and ``numpy.random.Generator`` offer ``uniform``; that is all we use."""

    def uniform(self, low: float, high: float) -> float: ...


@dataclass(frozen=True)
class Sample:
    image: Image.Image
    caption: str
    colour: str
    shape: str


def caption(colour: str, shape: str, variant: int = 0) -> str:
    """``variant`` 0 is "a photo of a red star"; the others are the plain variants."""
    return CAPTION_TEMPLATES[variant % len(CAPTION_TEMPLATES)].format(f"{colour} {shape}")


def all_captions() -> list[str]:
    """Every caption the world uses, partial ones included; the vocabulary must hold their words."""
    texts = [caption(colour, shape, variant) for colour, shape in PAIRS
             for variant in range(len(CAPTION_TEMPLATES))]
    texts += [template.format(shape) for template in CAPTION_TEMPLATES for shape in SHAPES]
    texts += [template.format(f"{colour} {noun}") for template in CAPTION_TEMPLATES
              for colour in COLOURS for noun in GENERIC_NOUNS]
    return texts


def draw(colour: str, shape: str, rng: random.Random | np.random.Generator, size: int = SIZE) -> Image.Image:
    """One ``colour`` ``shape`` on a varied background, anti-aliased by drawing at 4x and shrinking."""
    if colour not in RGB:
        raise ValueError(f"unknown colour {colour!r}; the world's colours are {', '.join(COLOURS)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; the world's shapes are {', '.join(SHAPES)}")
    big = size * SUPERSAMPLE
    background = _background(rng, big)
    radius = _u(rng, 0.25, 0.42) * big
    margin = SUPERSAMPLE
    centre = (_u(rng, radius + margin, big - radius - margin), _u(rng, radius + margin, big - radius - margin))
    angle = math.radians(_u(rng, -ROTATION_DEGREES, ROTATION_DEGREES))
    mask = Image.new("L", (big, big), 0)
    _draw_shape(ImageDraw.Draw(mask), shape, centre, radius, angle)
    tone = np.array([np.clip(c + _u(rng, -COLOUR_JITTER, COLOUR_JITTER), 0, 255) for c in RGB[colour]])
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    pixels = background * (1.0 - alpha) + tone[None, None, :] * alpha
    picture = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
    return picture.resize((size, size), Image.Resampling.BOX)


def samples(seed: int, count: int | None = None) -> Iterator[Sample]:
    """Seeded, balanced samples: every run of 48 holds each colour x shape pair once, shuffled.

    Captions here always name both colour and shape (variant 0 in half the samples); pretraining
    draws its own caption variants.
    """
    rng = random.Random(seed)
    produced = 0
    while count is None or produced < count:
        order = list(PAIRS)
        rng.shuffle(order)
        for colour, shape in order:
            if count is not None and produced >= count:
                return
            variant = 0 if rng.random() < 0.5 else rng.randrange(len(CAPTION_TEMPLATES))
            yield Sample(draw(colour, shape, rng), caption(colour, shape, variant), colour, shape)
            produced += 1


def _u(rng: Rng, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _background(rng: Rng, side: int) -> np.ndarray:
    """A mid tone (never as light as white nor as dark as black objects), tinted, with a gradient."""
    base = _u(rng, 75.0, 180.0)
    tint = np.array([_u(rng, -18.0, 18.0) for _ in range(3)], dtype=np.float32)
    direction = _u(rng, 0.0, 2 * math.pi)
    strength = _u(rng, -20.0, 20.0)
    ramp = np.linspace(-0.5, 0.5, side, dtype=np.float32)
    gradient = math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None]
    return (base + tint[None, None, :] + strength * gradient[..., None]).astype(np.float32)


def _draw_shape(pen: ImageDraw.ImageDraw, shape: str, centre: tuple[float, float], radius: float,
                angle: float) -> None:
    """Sizes are set so every shape covers a similar area for the same ``radius``."""
    cx, cy = centre
    if shape == "circle":
        r = radius * 0.88
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif shape == "ring":
        outer, inner = radius * 0.95, radius * 0.52
        pen.ellipse((cx - outer, cy - outer, cx + outer, cy + outer), fill=255)
        pen.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    elif shape == "square":
        half = radius * 0.78
        pen.polygon(_turned([(-half, -half), (half, -half), (half, half), (-half, half)], centre, angle), fill=255)
    elif shape == "triangle":
        r = radius * 1.1
        corners = [(r * math.sin(k * 2 * math.pi / 3), -r * math.cos(k * 2 * math.pi / 3)) for k in range(3)]
        shift = r * 0.25
        pen.polygon(_turned([(x, y + shift) for x, y in corners], centre, angle), fill=255)
    elif shape == "star":
        points = []
        for k in range(10):
            r = radius if k % 2 == 0 else radius * 0.45
            points.append((r * math.sin(k * math.pi / 5), -r * math.cos(k * math.pi / 5)))
        pen.polygon(_turned(points, centre, angle), fill=255)
    elif shape == "cross":
        arm, width = radius * 0.95, radius * 0.32
        pen.polygon(_turned([(-arm, -width), (arm, -width), (arm, width), (-arm, width)], centre, angle), fill=255)
        pen.polygon(_turned([(-width, -arm), (width, -arm), (width, arm), (-width, arm)], centre, angle), fill=255)


def _turned(points: list[tuple[float, float]], centre: tuple[float, float], angle: float) -> list[tuple[float, float]]:
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = centre
    return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]
