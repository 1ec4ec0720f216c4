"""Textual inversion *learns*: taught from photos it never saw, the world model draws the concept.

Every other test proves that numbers move and files load; these fail when training stops teaching.
A concept of the shipped world model (a colour and a shape) is taught from photos drawn by
``invokeai_ti.world.photos`` (not the world's own generator) under a made-up trigger that starts
as the word "toy". The learned vectors are then drawn by a plain diffusers pipeline (not the
trainer's previews) and the world's judge counts the pictures that show the concept: most must,
where the initializer alone gives few.

Each of these breaks makes the first test fail (tried by hand, see the note of issue 19): the
step's gradient zeroed, the wrong token row trained, the wrong noise target.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from invokeai_ti.settings import TrainingSettings
from invokeai_ti.workflow import plan_run, run_plan
from invokeai_ti.world import WORLD_MODEL
from invokeai_ti.world.judge import share_showing
from invokeai_ti.world.photos import write_photos
from tools.sampling import TRIGGER, TriggerSampler, saved_vectors

pytestmark = pytest.mark.slow

CONCEPT = ("red", "triangle")
INITIALIZER = "toy"
STEPS = 120
PICTURES = 24
LEARNED = 0.75
INITIALIZER_ONLY = 0.25


@pytest.fixture(scope="module")
def world_root(tmp_path_factory) -> Path:
    """An InvokeAI root naming the shipped world model, and six photos of the concept."""
    root = tmp_path_factory.mktemp("learning") / "root"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "models.yaml").write_text(
        yaml.safe_dump({"world": {"format": "diffusers", "path": str(WORLD_MODEL)}}), encoding="utf-8"
    )
    write_photos(root / "photos", *CONCEPT, count=6, seed=3)
    return root


def train(root: Path, name: str, **changes) -> Path:
    settings = TrainingSettings(
        root=root, model="world", train_data_dir=root / "photos", output_dir=root / name,
        placeholder_token=TRIGGER, initializer_token=INITIALIZER, max_train_steps=STEPS,
        train_batch_size=4, gradient_accumulation_steps=1, learning_rate=5e-3, scale_lr=False,
        lr_scheduler="constant", lr_warmup_steps=0, seed=11, mixed_precision="no",
        validation_prompt="none", checkpointing_steps=STEPS, save_steps=STEPS,
    )
    run_plan(plan_run(dataclasses.replace(settings, **changes)), notify=lambda _message: None, show_progress=False)
    return root / name / "learned_embeds.safetensors"


def judged(vectors: torch.Tensor, num_vectors: int = 1) -> float:
    sampler = TriggerSampler(WORLD_MODEL, num_vectors=num_vectors)
    return share_showing(sampler.draw(vectors, PICTURES, seed=5), *CONCEPT)


@pytest.fixture(scope="module")
def learned(world_root) -> Path:
    return train(world_root, "straight")


def test_a_short_run_teaches_the_concept_that_the_initializer_alone_does_not_draw(learned):
    sampler = TriggerSampler(WORLD_MODEL)
    before = share_showing(sampler.draw(sampler.word(INITIALIZER), PICTURES, seed=5), *CONCEPT)
    after = share_showing(sampler.draw(saved_vectors(learned), PICTURES, seed=5), *CONCEPT)
    assert before <= INITIALIZER_ONLY, f"'{INITIALIZER}' alone already draws a {' '.join(CONCEPT)}: {before:.0%}"
    assert after >= LEARNED, f"after {STEPS} steps the judge sees a {' '.join(CONCEPT)} in only {after:.0%}"


def test_a_run_stopped_halfway_and_resumed_learns_the_same(world_root, learned):
    train(world_root, "resumed", max_train_steps=STEPS // 2, checkpointing_steps=STEPS // 2)
    resumed = train(world_root, "resumed", checkpointing_steps=STEPS // 2, resume_from_checkpoint="latest")
    assert torch.allclose(saved_vectors(resumed), saved_vectors(learned), atol=1e-5)
    assert judged(saved_vectors(resumed)) >= LEARNED


def test_three_vectors_learn_the_concept_and_each_one_moves(world_root):
    vectors = saved_vectors(train(world_root, "three", num_vectors=3))
    start = TriggerSampler(WORLD_MODEL, num_vectors=3).word(INITIALIZER)
    assert vectors.shape == start.shape
    assert all((vectors[i] - start[i]).norm() > 0.1 * start[i].norm() for i in range(3))
    assert judged(vectors, num_vectors=3) >= LEARNED
