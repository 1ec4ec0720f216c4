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
from safetensors.torch import load_file

from invokeai_ti.outputs.learning_log import read_evaluation
from invokeai_ti.settling import settled
from invokeai_ti.workflow import end_lines, plan_run, run_plan
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
    world_settings,
)
from tools.sampling import TRIGGER, TriggerSampler, saved_vectors

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


def test_a_run_stopped_on_settling_installs_the_step_that_scored_best_and_says_which(world_root):
    """The user asked for the settled choice: the installed file, the output folder's final files
    and the exported pipeline hold the best-scored step's vectors; the last step's keep their step
    name, --install-step installs them, and the last lines say which step is installed and how to
    install another. Trained from timestep 250 up and scored every 10 steps, this run settles by
    step 100 and scored best at 80, after which the next two scores rise by 4% and 13% of the
    run's gain: a margin no machine's rounding moves. On every timestep (the default) its best
    and the step where it settles lie a hundred-thousandth apart, which another CPU's rounding
    could swap."""
    plan = plan_run(world_settings(world_root, "settled", validation_steps=10, stop_when_settled=True,
                                   only_save_embeds=False, min_timestep=250))
    said: list[str] = []
    said += end_lines(plan, run_plan(plan, notify=said.append, show_progress=False))
    output = plan.output_dir
    found = settled(read_evaluation(output / "evaluation.csv"))
    assert found is not None and found.best < found.step < STEPS, "the run stopped on settling, past its best"
    best, last = found.best, found.step
    trigger = TRIGGER.strip("<>")
    installed = world_root / "embeddings" / trigger / "learned_embeds.bin"
    assert installed.read_bytes() == (output / f"learned_embeds-steps-{best}.bin").read_bytes()
    assert (output / "learned_embeds.bin").read_bytes() == installed.read_bytes()
    for name in ("learned_embeds", trigger):
        snapshot = output / f"{name}-steps-{best}.safetensors"
        assert (output / f"{name}.safetensors").read_bytes() == snapshot.read_bytes()
    chosen = saved_vectors(embedding(output))
    assert not torch.equal(chosen, saved_vectors(output / f"learned_embeds-steps-{last}.safetensors"))
    pipeline = load_file(str(output / "pipeline" / "text_encoder" / "model.safetensors"))
    assert torch.equal(pipeline["text_model.embeddings.token_embedding.weight"][-1], chosen[0])
    assert judged(chosen) >= LEARNED

    lines = "\n".join(said)
    assert f"step {best} scored best, so its snapshot is the run's result" in lines
    assert f"The embedding of step {best} is installed at {installed}" in lines
    assert f"invokeai-ti --install-step {last} --root {world_root} --placeholder_token {trigger}" in lines
    page = (output / "report.html").read_text()
    assert f"settled by step {last}; step {best} scored best" in page and "is the run's result" in page
    assert f"Step {best} is installed;" in page
