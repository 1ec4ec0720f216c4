#!/usr/bin/env python
"""What min-SNR, noise offset and masks do to learning, measured on the world model.

For one concept (a colour and a shape the world model can draw), photos are drawn on a busy
background of other colours' clutter, each with a mask of the object. invokeai-ti trains the
concept once per variant (baseline; ``--snr_gamma 5``; ``--noise_offset 0.05``; and with the
masks), writing a snapshot every ``--every`` steps; each snapshot then draws ``--pictures``
pictures of "a photo of <trigger>" and the world's judge says which colour and shape each shows.
The figure is the first snapshot step at which at least 90% (and 80%) are judged right, for each
variant and seed, with the median over seeds.

The photos are drawn here, not by the world's own generator, as a user's photos would be.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import random
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from invokeai_ti.cli import main as invokeai_ti  # noqa: E402
from invokeai_ti.world.photos import write_photos  # noqa: E402

VARIANTS = {
    "baseline": [],
    "snr_gamma 5": ["--snr_gamma=5"],
    "noise_offset 0.05": ["--noise_offset=0.05"],
    "masked": [],
}
COLOURS = {
    "red": (220, 30, 30), "orange": (245, 140, 20), "yellow": (240, 220, 30), "green": (40, 170, 60),
    "blue": (40, 70, 220), "purple": (140, 50, 190), "white": (245, 245, 245), "black": (15, 15, 15),
}


def shape_points(shape: str, cx: float, cy: float, r: float, turn: float) -> list[tuple[float, float]]:
    corners = {"square": 4, "triangle": 3}[shape]
    return [
        (cx + r * math.cos(turn + 2 * math.pi * k / corners), cy + r * math.sin(turn + 2 * math.pi * k / corners))
        for k in range(corners)
    ]


def draw_photos(folder: Path, colour: str, shape: str, count: int, size: int, seed: int, masks: bool) -> None:
    """``count`` photos of the concept on clutter of other colours; with ``masks`` a mask beside each."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    others = [c for c in COLOURS if c != colour]
    for index in range(count):
        picture = Image.new("RGB", (size, size), COLOURS[rng.choice(others)])
        draw = ImageDraw.Draw(picture)
        for _ in range(8):
            x, y, w, h = (rng.randrange(size) for _ in range(4))
            draw.rectangle([x, y, x + w // 3, y + h // 3], fill=COLOURS[rng.choice(others)])
        mask = Image.new("L", (size, size), 0)
        r = rng.uniform(size * 0.22, size * 0.32)
        cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
        if shape == "circle":
            box = [cx - r, cy - r, cx + r, cy + r]
            draw.ellipse(box, fill=COLOURS[colour])
            ImageDraw.Draw(mask).ellipse(box, fill=255)
        else:
            points = shape_points(shape, cx, cy, r * 1.2, rng.uniform(0, math.pi))
            draw.polygon(points, fill=COLOURS[colour])
            ImageDraw.Draw(mask).polygon(points, fill=255)
        picture.save(folder / f"photo-{index}.png")
        if masks:
            mask.save(folder / f"photo-{index}.mask.png")


def load_pipeline(model: Path):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(model), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def judged_right(pipe, embedding: Path, judge, colour: str, shape: str, pictures: int, seed: int) -> float:
    pipe.unload_textual_inversion()
    pipe.load_textual_inversion(str(embedding), token="<concept>")
    generator = torch.Generator().manual_seed(seed)
    images = pipe(["a photo of <concept>"] * pictures, num_inference_steps=25, generator=generator).images
    verdicts = [judge(image) for image in images]
    return sum(tuple(v) == (colour, shape) for v in verdicts) / pictures


def steps_to(share: float, curve: dict[int, float]) -> int | None:
    return next((step for step, right in sorted(curve.items()) if right >= share), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the world model's diffusers folder")
    parser.add_argument("--judge", required=True, help="module:function taking a PIL image, giving (colour, shape)")
    parser.add_argument("--concept", default="green,square")
    parser.add_argument("--initializer", default="toy")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--pictures", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--extra", default="", help="more invokeai-ti flags for every run")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--background", choices=("busy", "clean"), default="busy",
        help="busy: clutter of other colours with a mask per photo (drawn here); clean: the demo's "
             "photos (invokeai_ti.world.photos), which have no masks, for the loss-weighting variants",
    )
    args = parser.parse_args()
    module, function = args.judge.split(":")
    judge = getattr(importlib.import_module(module), function)
    colour, shape = args.concept.split(",")
    pipe = load_pipeline(args.model)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for variant in args.variants.split(","):
            for seed in range(args.seeds):
                photos = work / f"photos-{variant}-{seed}".replace(" ", "_")
                if args.background == "clean":
                    write_photos(photos, colour, shape, args.photos, seed=seed)
                else:
                    draw_photos(photos, colour, shape, args.photos, args.resolution * 2, seed, masks=variant == "masked")
                output = work / f"out-{variant}-{seed}".replace(" ", "_")
                flags = [
                    f"--root={work / 'root'}", f"--model={args.model}", "--placeholder_token=concept",
                    f"--initializer_token={args.initializer}", f"--train_data_dir={photos}",
                    f"--output_dir={output}", f"--resolution={args.resolution}", f"--max_train_steps={args.steps}",
                    f"--save_steps={args.every}", f"--checkpointing_steps={args.steps}", "--validation_prompt=none",
                    "--mixed_precision=no", f"--seed={seed}", *VARIANTS[variant], *args.extra.split(),
                ]
                if variant != "masked":
                    flags.append("--no-masked_loss")
                assert invokeai_ti(flags) == 0, f"{variant} seed {seed} failed"
                curve = {}
                for step in range(args.every, args.steps + 1, args.every):
                    snapshot = output / f"learned_embeds-steps-{step}.safetensors"
                    curve[step] = judged_right(pipe, snapshot, judge, colour, shape, args.pictures, 1000 + seed)
                results.setdefault(variant, []).append(
                    {"seed": seed, "curve": curve, "to80": steps_to(0.8, curve), "to90": steps_to(0.9, curve)}
                )
                print(variant, seed, json.dumps(results[variant][-1]), flush=True)
    print("\n| variant | steps to 80% (per seed) | median | steps to 90% (per seed) | median | final share |")
    print("|---|---|---|---|---|---|")
    for variant, runs in results.items():
        row = [variant]
        for key in ("to80", "to90"):
            values = [run[key] for run in runs]
            reached = [v for v in values if v is not None]
            row.append(", ".join("-" if v is None else str(v) for v in values))
            row.append(str(statistics.median(reached)) if len(reached) == len(values) else f"> {args.steps} in {len(values) - len(reached)}")
        row.append(f"{statistics.mean(run['curve'][max(run['curve'])] for run in runs):.2f}")
        print("| " + " | ".join(row) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
