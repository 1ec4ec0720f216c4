"""Teaching a shipped world model a concept from photos, as the learning tests of both families do.

One root and one set of training settings serve the SD-1 and the SDXL learning tests, so the two
families are taught the same concept from the same photos under the same settings, and differ
only in the model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from invokeai_ti.settings import TrainingSettings
from invokeai_ti.workflow import plan_run, run_plan
from invokeai_ti.world.photos import write_photos
from tools.sampling import TRIGGER

MODEL_NAME = "world"
CONCEPT = ("red", "triangle")
INITIALIZER = "toy"
STEPS = 160
PICTURES = 24
LEARNED = 0.75
INITIALIZER_ONLY = 0.25


def make_world_root(root: Path, model: Path) -> Path:
    """An InvokeAI root naming ``model`` as ``MODEL_NAME``, and six photos of the concept."""
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "models.yaml").write_text(
        yaml.safe_dump({MODEL_NAME: {"format": "diffusers", "path": str(model)}}), encoding="utf-8"
    )
    write_photos(root / "photos", *CONCEPT, count=6, seed=3)
    return root


def world_settings(root: Path, name: str, **changes) -> TrainingSettings:
    """The settings of a run teaching the root's photos to ``TRIGGER`` into the folder ``name``."""
    settings = TrainingSettings(
        root=root, model=MODEL_NAME, train_data_dir=root / "photos", output_dir=root / name,
        placeholder_token=TRIGGER, initializer_token=INITIALIZER, max_train_steps=STEPS,
        train_batch_size=4, gradient_accumulation_steps=1, learning_rate=5e-3, scale_lr=False,
        lr_scheduler="constant", lr_warmup_steps=0, seed=11, mixed_precision="no",
        validation_prompt="none", checkpointing_steps=STEPS, save_steps=STEPS,
    )
    return dataclasses.replace(settings, **changes)


def train(root: Path, name: str, **changes) -> Path:
    """The output folder of a run teaching the root's photos to ``TRIGGER``."""
    run_plan(plan_run(world_settings(root, name, **changes)), notify=lambda _message: None, show_progress=False)
    return root / name
