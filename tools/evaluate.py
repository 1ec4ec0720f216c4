"""What a world model draws from each caption, as the judge reads it.

    python -m tools.evaluate --model DIR [--per-pair N] [--seed S]

Samples N pictures of "a photo of a {colour} {shape}" for every pair with the folder's own diffusers
pipeline (``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline``), using the trainer's preview
sampler (DPM-Solver++, 25 steps, guidance 7.5), and prints the share the judge reads as the
captioned pair, per pair and overall, plus how often colour and shape alone are right.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from invokeai_ti.cpu_threads import fixed_threads, threads_now
from invokeai_ti.world import JUDGE_WEIGHTS, WORLD_MODEL
from invokeai_ti.world.judge import judge_many
from invokeai_ti.world.scene import COLOURS, PAIRS, SHAPES, SIZE, caption

from .sampling import load_pipeline

STEPS = 25
GUIDANCE = 7.5


@dataclass
class Table:
    per_pair: dict[tuple[str, str], float]
    colour_right: float
    shape_right: float
    pictures: int

    @property
    def overall(self) -> float:
        return sum(self.per_pair.values()) / len(self.per_pair)

    def format(self) -> str:
        width = max(len(shape) for shape in SHAPES) + 1
        lines = ["share judged right, per colour (rows) and shape (columns)",
                 " " * 8 + "".join(f"{shape:>{width}}" for shape in SHAPES)]
        for colour in COLOURS:
            lines.append(f"{colour:<8}" + "".join(f"{self.per_pair[colour, shape]:>{width}.0%}" for shape in SHAPES))
        lines.append(f"overall {self.overall:.1%} of {self.pictures} pictures "
                     f"(colour right {self.colour_right:.1%}, shape right {self.shape_right:.1%})")
        return "\n".join(lines)


def draw_captions(pipeline, prompts: list[str], seed: int, size: int = SIZE) -> list[Image.Image]:
    """One picture per prompt, seeded, in batches the CPU handles comfortably."""
    generator = torch.Generator().manual_seed(seed)
    images: list[Image.Image] = []
    for start in range(0, len(prompts), 96):
        with torch.no_grad():
            images += pipeline(prompts[start:start + 96], height=size, width=size, num_inference_steps=STEPS,
                               guidance_scale=GUIDANCE, generator=generator).images
    return images


def evaluate(model: Path = WORLD_MODEL, per_pair: int = 10, seed: int = 0) -> Table:
    pipeline = load_pipeline(model)
    prompts = [caption(colour, shape) for colour, shape in PAIRS for _ in range(per_pair)]
    verdicts = judge_many(draw_captions(pipeline, prompts, seed), Path(model) / JUDGE_WEIGHTS)
    wanted = [pair for pair in PAIRS for _ in range(per_pair)]
    per_pair = {pair: sum(verdicts[i] == pair for i in range(k * per_pair, (k + 1) * per_pair)) / per_pair
                for k, pair in enumerate(PAIRS)}
    colour_right = sum(v[0] == w[0] for v, w in zip(verdicts, wanted)) / len(wanted)
    shape_right = sum(v[1] == w[1] for v, w in zip(verdicts, wanted)) / len(wanted)
    return Table(per_pair, colour_right, shape_right, len(wanted))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.evaluate",
        description="Draw every colour x shape pair from its caption and say how often the judge agrees.",
    )
    parser.add_argument("--model", type=Path, default=WORLD_MODEL)
    parser.add_argument("--per-pair", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="CPU threads (default: one per idle core, as the trainer)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or fixed_threads() or threads_now())
    print(evaluate(args.model, args.per_pair, args.seed).format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
