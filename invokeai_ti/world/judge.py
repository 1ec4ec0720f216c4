"""Which colour and which shape a picture shows: how every learning check reads a picture.

A small convolutional classifier trained on the world's own pictures (its weights,
``judge.safetensors``, sit in the model folder). It is trained with blur, noise and tone jitter
so that the softer pictures a diffusion model draws are read by what they show, not by how crisp
they are. Pictures of any size are shrunk to the world's size first, so previews drawn at the
model's native resolution or above read the same.

    python -m invokeai_ti.world.judge IMAGE...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..image_files import open_image

from . import JUDGE_WEIGHTS, WORLD_MODEL
from .scene import COLOURS, SHAPES, SIZE


class JudgeNet(nn.Module):
    """Three conv stages to 4x4, then one linear layer scoring every colour and every shape."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 24, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(24, 48, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(48, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(64 * (SIZE // 8) ** 2, len(COLOURS) + len(SHAPES))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixels`` in [-1, 1], N x 3 x SIZE x SIZE; returns colour and shape logits."""
        scores = self.head(self.features(pixels).flatten(1))
        return scores[:, : len(COLOURS)], scores[:, len(COLOURS):]


def to_pixels(images: Sequence[Image.Image]) -> torch.Tensor:
    """Shrink (or grow) each picture to the world's size, as the judge was trained on."""
    arrays = []
    for image in images:
        picture = image.convert("RGB")
        if picture.size != (SIZE, SIZE):
            picture = picture.resize((SIZE, SIZE), Image.Resampling.BOX if picture.width >= SIZE
                                     else Image.Resampling.BICUBIC)
        arrays.append(np.asarray(picture, dtype=np.float32))
    stacked = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return stacked / 127.5 - 1.0


@lru_cache(maxsize=4)
def load_judge(weights: Path = WORLD_MODEL / JUDGE_WEIGHTS) -> JudgeNet:
    from safetensors.torch import load_file

    net = JudgeNet()
    net.load_state_dict(load_file(str(weights)))
    return net.eval()


def judge_many(images: Sequence[Image.Image], weights: Path | None = None) -> list[tuple[str, str]]:
    """(colour, shape) for each picture, in order."""
    if not images:
        return []
    net = load_judge(weights or WORLD_MODEL / JUDGE_WEIGHTS)
    verdicts: list[tuple[str, str]] = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            colours, shapes = net(to_pixels(images[start:start + 256]))
            verdicts += [(COLOURS[c], SHAPES[s]) for c, s in zip(colours.argmax(1).tolist(),
                                                                  shapes.argmax(1).tolist())]
    return verdicts


def judge(image: Image.Image, weights: Path | None = None) -> tuple[str, str]:
    return judge_many([image], weights)[0]


def share_showing(images: Sequence[Image.Image], colour: str, shape: str,
                  weights: Path | None = None) -> float:
    """The share of ``images`` the judge reads as ``colour`` ``shape`` (0 for no images)."""
    if not images:
        return 0.0
    verdicts = judge_many(images, weights)
    return sum(verdict == (colour, shape) for verdict in verdicts) / len(verdicts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m invokeai_ti.world.judge",
        description="Say which of the world's colours and shapes each picture shows.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    args = parser.parse_args(argv)
    status = 0
    for path in args.images:
        try:
            with open_image(path) as image:
                colour, shape = judge(image)
        except (OSError, ValueError) as error:
            print(f"{path}: cannot read this picture ({error}); pass a PNG or JPEG file.", file=sys.stderr)
            status = 1
            continue
        print(f"{path}: {colour} {shape}")
    return status


if __name__ == "__main__":
    sys.exit(main())
