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

from pathlib import Path

import pytest
import torch

from invokeai_ti.world import WORLD_MODEL
from invokeai_ti.world.judge import share_showing
from tests.world_runs import (
    CONCEPT,
    INITIALIZER,
    INITIALIZER_ONLY,
    LEARNED,
    PICTURES,
    STEPS,
    make_world_root,
    train,
)
from tools.sampling import TriggerSampler, saved_vectors

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world_root(tmp_path_factory) -> Path:
    """An InvokeAI root naming the shipped world model, and six photos of the concept."""
    return make_world_root(tmp_path_factory.mktemp("learning") / "root", WORLD_MODEL)


def embedding(output: Path) -> Path:
    return output / "learned_embeds.safetensors"


def judged(vectors: torch.Tensor, num_vectors: int = 1) -> float:
    sampler = TriggerSampler(WORLD_MODEL, num_vectors=num_vectors)
    return share_showing(sampler.draw(vectors, PICTURES, seed=5), *CONCEPT)


@pytest.fixture(scope="module")
def learned(world_root) -> Path:
    return embedding(train(world_root, "straight"))


def test_a_short_run_teaches_the_concept_that_the_initializer_alone_does_not_draw(learned):
    sampler = TriggerSampler(WORLD_MODEL)
    before = share_showing(sampler.draw(sampler.word(INITIALIZER), PICTURES, seed=5), *CONCEPT)
    after = share_showing(sampler.draw(saved_vectors(learned), PICTURES, seed=5), *CONCEPT)
    assert before <= INITIALIZER_ONLY, f"'{INITIALIZER}' alone already draws a {' '.join(CONCEPT)}: {before:.0%}"
    assert after >= LEARNED, f"after {STEPS} steps the judge sees a {' '.join(CONCEPT)} in only {after:.0%}"


def test_a_run_stopped_halfway_and_resumed_learns_the_same(world_root, learned):
    train(world_root, "resumed", max_train_steps=STEPS // 2, checkpointing_steps=STEPS // 2)
    resumed = embedding(train(world_root, "resumed", checkpointing_steps=STEPS // 2, resume_from_checkpoint="latest"))
    assert torch.allclose(saved_vectors(resumed), saved_vectors(learned), atol=1e-5)
    assert judged(saved_vectors(resumed)) >= LEARNED


def test_three_vectors_learn_the_concept_and_each_one_moves(world_root):
    vectors = saved_vectors(embedding(train(world_root, "three", num_vectors=3)))
    start = TriggerSampler(WORLD_MODEL, num_vectors=3).word(INITIALIZER)
    assert vectors.shape == start.shape
    assert all((vectors[i] - start[i]).norm() > 0.1 * start[i].norm() for i in range(3))
    assert judged(vectors, num_vectors=3) >= LEARNED
