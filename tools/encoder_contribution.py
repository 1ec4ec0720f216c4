"""What each SDXL text encoder's vectors contribute: train with one encoder's vectors frozen.

    python -m tools.encoder_contribution [--concepts "red triangle,blue square"] [--steps 120]

For each concept of the SDXL world, photos are drawn by ``invokeai_ti.world.photos`` and taught
three times under the same seed and settings: both encoders' vectors learned (as the trainer
does), only ``clip_l``'s (``clip_g``'s gradient zeroed at every step, so it stays the
initializer's), and only ``clip_g``'s. Each result is drawn by ``StableDiffusionXLPipeline`` from
the single-file embedding and judged; the initializer alone is judged too. docs/world.md holds the
table this printed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml

from invokeai_ti.settings import TrainingSettings
from invokeai_ti.training import step as step_module
from invokeai_ti.workflow import plan_run, run_plan
from invokeai_ti.world import WORLD_MODEL_SDXL
from invokeai_ti.world.judge import share_showing
from invokeai_ti.world.photos import write_photos

from .sampling import SDXL_KEYS, TRIGGER, TriggerSampler, saved_vectors

MODES = {"both": (), "clip_l only": (1,), "clip_g only": (0,)}
"""Which encoders' vectors (by index in the family's order) have their gradient zeroed."""


@contextlib.contextmanager
def frozen_vectors(indices: tuple[int, ...]) -> Iterator[None]:
    """Every training step built inside zeroes the gradient of these encoders' vectors."""
    original = step_module.TrainingStep.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        for index in indices:
            self.vectors[index].register_hook(torch.zeros_like)

    step_module.TrainingStep.__init__ = init
    try:
        yield
    finally:
        step_module.TrainingStep.__init__ = original


def train(root: Path, concept: tuple[str, str], mode: str, steps: int, lr: float, seed: int) -> Path:
    name = f"{'-'.join(concept)}-{mode.replace(' ', '-')}"
    settings = TrainingSettings(
        root=root, model="world-xl", train_data_dir=root / "-".join(concept), output_dir=root / name,
        placeholder_token=TRIGGER, initializer_token="toy", max_train_steps=steps, train_batch_size=4,
        gradient_accumulation_steps=1, learning_rate=lr, scale_lr=False, lr_scheduler="constant",
        lr_warmup_steps=0, seed=seed, mixed_precision="no", validation_prompt="none",
        checkpointing_steps=steps, save_steps=steps,
    )
    with frozen_vectors(MODES[mode]):
        run_plan(plan_run(dataclasses.replace(settings)), notify=lambda _message: None, show_progress=False)
    return root / name / f"{TRIGGER.strip('<>')}.safetensors"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.encoder_contribution", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concepts", default="red triangle,blue triangle,yellow cross,green circle")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--pictures", type=int, default=24)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    concepts = [tuple(text.split()) for text in args.concepts.split(",")]
    sampler = TriggerSampler(WORLD_MODEL_SDXL)
    start = sampler.word("toy")
    rows = []
    with tempfile.TemporaryDirectory(prefix="encoder-contribution-") as folder:
        root = Path(folder)
        (root / "configs").mkdir()
        (root / "configs" / "models.yaml").write_text(
            yaml.safe_dump({"world-xl": {"format": "diffusers", "path": str(WORLD_MODEL_SDXL)}}), encoding="utf-8")
        for colour, shape in concepts:
            write_photos(root / f"{colour}-{shape}", colour, shape, count=6, seed=3)
            shares = {"initializer alone": share_showing(sampler.draw(start, args.pictures, seed=5), colour, shape)}
            for mode in MODES:
                vectors = saved_vectors(train(root, (colour, shape), mode, args.steps, args.lr, args.seed))
                moved = {key: float((vectors[key] - start[key]).norm() / start[key].norm()) for key in SDXL_KEYS}
                shares[mode] = share_showing(sampler.draw(vectors, args.pictures, seed=5), colour, shape)
                print(f"{colour} {shape}, {mode}: {shares[mode]:.0%} (moved: " +
                      ", ".join(f"{key} {value:.2f}x its norm" for key, value in moved.items()) + ")", flush=True)
            rows.append((f"{colour} {shape}", shares))
    columns = list(rows[0][1])
    print("\n| concept | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for concept, shares in rows:
        print(f"| {concept} | " + " | ".join(f"{shares[column]:.0%}" for column in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
