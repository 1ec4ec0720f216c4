"""SDXL learns too: taught from photos it never saw, the SDXL world model draws the concept.

The SDXL world model (``WORLD_MODEL_SDXL``) knows the same world as the SD-1 one through SDXL's
conditioning: two text encoders of different widths, both read at their penultimate layer, the
second one's pooled and projected output, and six time ids. A concept is taught from photos drawn
by ``invokeai_ti.world.photos``; the trained single-file embedding is then loaded as AUTOMATIC1111
and ComfyUI load it (``clip_l`` into the first encoder, ``clip_g`` into the second) into a plain
diffusers ``StableDiffusionXLPipeline``, and the world's judge counts the pictures that show the
concept: most must, where the initializer alone gives few.

Deliberate breaks tried against this file and tests/test_sdxl_training.py are listed in
docs/world.md ("What SDXL's conditioning is checked by").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from invokeai_ti.settings import TrainingSettings
from invokeai_ti.workflow import plan_run, run_plan
from invokeai_ti.world import WORLD_MODEL_SDXL
from invokeai_ti.world.judge import share_showing
from invokeai_ti.world.photos import write_photos
from tools.sampling import TRIGGER, TriggerSampler, saved_vectors

CONCEPT = ("red", "triangle")
INITIALIZER = "toy"
STEPS = 120
PICTURES = 24
LEARNED = 0.75
INITIALIZER_ONLY = 0.25


@pytest.fixture(scope="module")
def world_root(tmp_path_factory) -> Path:
    """An InvokeAI root naming the shipped SDXL world model, and six photos of the concept."""
    root = tmp_path_factory.mktemp("learning-sdxl") / "root"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "models.yaml").write_text(
        yaml.safe_dump({"world-xl": {"format": "diffusers", "path": str(WORLD_MODEL_SDXL)}}), encoding="utf-8"
    )
    write_photos(root / "photos", *CONCEPT, count=6, seed=3)
    return root


def train(root: Path, name: str, **changes) -> Path:
    """The single-file embedding, ``blicket.safetensors``, of a run on the SDXL world model."""
    settings = TrainingSettings(
        root=root, model="world-xl", train_data_dir=root / "photos", output_dir=root / name,
        placeholder_token=TRIGGER, initializer_token=INITIALIZER, max_train_steps=STEPS,
        train_batch_size=4, gradient_accumulation_steps=1, learning_rate=5e-3, scale_lr=False,
        lr_scheduler="constant", lr_warmup_steps=0, seed=11, mixed_precision="no",
        validation_prompt="none", checkpointing_steps=STEPS, save_steps=STEPS,
    )
    run_plan(plan_run(dataclasses.replace(settings, **changes)), notify=lambda _message: None, show_progress=False)
    return root / name / f"{TRIGGER.strip('<>')}.safetensors"


def test_a_short_sdxl_run_teaches_the_concept_that_the_initializer_alone_does_not_draw(world_root):
    sampler = TriggerSampler(WORLD_MODEL_SDXL)
    before = share_showing(sampler.draw(sampler.word(INITIALIZER), PICTURES, seed=5), *CONCEPT)
    learned = saved_vectors(train(world_root, "straight"))
    assert set(learned) == {"clip_l", "clip_g"}, "the single file holds one tensor per text encoder"
    after = share_showing(sampler.draw(learned, PICTURES, seed=5), *CONCEPT)
    assert before <= INITIALIZER_ONLY, f"'{INITIALIZER}' alone already draws a {' '.join(CONCEPT)}: {before:.0%}"
    assert after >= LEARNED, f"after {STEPS} steps the judge sees a {' '.join(CONCEPT)} in only {after:.0%}"
