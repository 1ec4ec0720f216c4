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

from pathlib import Path

import pytest

from invokeai_ti.world import WORLD_MODEL_SDXL
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
from tools.sampling import TRIGGER, TriggerSampler, saved_vectors


@pytest.fixture(scope="module")
def world_root(tmp_path_factory) -> Path:
    """An InvokeAI root naming the shipped SDXL world model, and six photos of the concept."""
    return make_world_root(tmp_path_factory.mktemp("learning-sdxl") / "root", WORLD_MODEL_SDXL)


def test_a_short_sdxl_run_teaches_the_concept_that_the_initializer_alone_does_not_draw(world_root):
    sampler = TriggerSampler(WORLD_MODEL_SDXL)
    before = share_showing(sampler.draw(sampler.word(INITIALIZER), PICTURES, seed=5), *CONCEPT)
    # The single file, ``blicket.safetensors``, as AUTOMATIC1111 and ComfyUI take it.
    learned = saved_vectors(train(world_root, "straight") / f"{TRIGGER.strip('<>')}.safetensors")
    assert set(learned) == {"clip_l", "clip_g"}, "the single file holds one tensor per text encoder"
    after = share_showing(sampler.draw(learned, PICTURES, seed=5), *CONCEPT)
    assert before <= INITIALIZER_ONLY, f"'{INITIALIZER}' alone already draws a {' '.join(CONCEPT)}: {before:.0%}"
    assert after >= LEARNED, f"after {STEPS} steps the judge sees a {' '.join(CONCEPT)} in only {after:.0%}"
