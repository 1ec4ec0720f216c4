"""A step to pick: the fixed evaluation batch's score, where it settled, and stopping there.

The score is the training loss over samples drawn once (photos, noise, timesteps, captions), so
the same vectors always score the same; it is written every ``--validation_steps`` and at the
end. The report recommends the step where it settled with its install command, and
``--stop_when_settled`` ends the run there as its last step would, also when resumed.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from invokeai_ti.cli import main
from invokeai_ti.settling import MIN_SCORES, Settled, scores_in, settled

TOKEN = "<psychedelic>"
# On the tiny model at this rate the score falls for about twenty steps and then stays flat.
SETTLING = ("--learning_rate=0.05", "--validation_steps=5", "--max_train_steps=60")


def command(root: Path, *extra: str) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", "--placeholder_token=psychedelic", "--resolution=64",
        "--train_batch_size=1", "--gradient_accumulation_steps=1", "--mixed_precision=no", "--seed=5",
        "--no-scale_lr", "--validation_prompt=none", "--checkpointing_steps=10", *extra,
    ]


def output_of(root: Path) -> Path:
    return root / "text-inversion-output" / "psychedelic"


def scores(output: Path) -> list[tuple[int, float]]:
    with open(output / "evaluation.csv", newline="") as handle:
        return [(int(row["step"]), float(row["score"])) for row in csv.DictReader(handle)]


def vectors(output: Path, name: str = "learned_embeds.safetensors") -> torch.Tensor:
    return load_file(str(output / name))[TOKEN]


def test_the_score_settles_when_two_evaluations_lower_its_best_by_under_a_tenth_of_the_gain():
    falling = [(0, 1.0), (10, 0.6), (20, 0.3), (30, 0.25), (40, 0.24), (50, 0.24)]
    # Gained 0.76 by step 40; the evaluations at 30 and 40 together gained 0.06, under a tenth.
    assert settled(falling) == Settled(step=40, best=40)
    assert settled([(0, 1.0), (10, 0.8), (20, 0.6), (30, 0.4)]) is None, "still falling steadily"
    assert settled([(0, 1.0), (10, 1.01), (20, 1.02)]) is None, "nothing gained, nothing settled"


def test_the_step_to_pick_is_the_best_score_before_the_settling_and_one_bad_score_changes_nothing():
    # Step 30 scores best and 40 worse (the photos' accidents, or noise): settled by 40, pick 30.
    assert settled([(0, 1.0), (10, 0.5), (20, 0.31), (30, 0.3), (40, 0.32), (50, 0.33)]) == Settled(40, 30)
    noisy = [(0, 1.0), (10, 0.5), (20, 0.3), (30, 0.9), (40, 0.2), (50, 0.19), (60, 0.19)]
    assert settled(noisy) == Settled(60, 50), "a spike at 30 neither settles the run nor hides step 40's gain"


def test_the_fixed_batch_is_scored_at_the_start_every_validation_step_and_at_the_end(make_root, tmp_path):
    root = make_root()
    assert main(command(root, "--max_train_steps=7", "--validation_steps=3", "--learning_rate=0.01")) == 0
    first = scores(output_of(root))
    assert [step for step, _ in first] == [0, 3, 6, 7]
    again = tmp_path / "again"
    assert main(command(root, "--max_train_steps=7", "--validation_steps=3", "--learning_rate=0.01",
                        f"--output_dir={again}")) == 0
    assert scores(again) == first, "the same vectors score the same: nothing in the batch is redrawn"
    assert first[-1][1] < first[0][1], "training lowers the score of the photos it learns"


def test_the_report_recommends_the_settled_step_with_its_install_command(make_root):
    root = make_root()
    assert main(command(root, *SETTLING)) == 0
    output = output_of(root)
    found = settled(scores(output))
    assert found is not None and found.best <= found.step < 60
    assert (output / f"learned_embeds-steps-{found.best}.bin").is_file(), "the recommended step has its snapshot"
    page = (output / "report.html").read_text()
    assert f"the evaluation score settled by step {found.step}; step {found.best} scored best" in page
    assert f"invokeai-ti --install-step {found.best} --root {root} --placeholder_token psychedelic" in page


def test_stop_when_settled_ends_the_run_there_saving_what_a_last_step_saves(make_root, capsys):
    root = make_root()
    assert main(command(root, *SETTLING, "--stop_when_settled")) == 0
    out = capsys.readouterr().out
    output = output_of(root)
    found = settled(scores(output))
    assert found is not None and found.step < 60
    assert f"The evaluation score settled by step {found.step}: stopping here" in out
    assert [step for step, _ in scores(output)][-1] == found.step
    with open(output / "loss_log.csv", newline="") as handle:
        assert int(list(csv.DictReader(handle))[-1]["step"]) == found.step
    assert (output / f"checkpoint-{found.step}").is_dir(), "a checkpoint to continue from"
    assert (output / f"learned_embeds-steps-{found.step}.safetensors").is_file(), "the last step keeps its files"
    picked = "the last step" if found.best == found.step else f"step {found.best}"
    assert re.search(rf"settled by step {found.step}; {picked} scored best", (output / "report.html").read_text())


def test_a_resumed_run_stops_where_the_straight_run_stops_with_the_same_vectors(make_root, tmp_path):
    root = make_root()
    straight = tmp_path / "straight"
    assert main(command(root, *SETTLING, "--stop_when_settled", f"--output_dir={straight}")) == 0
    settled = scores(straight)[-1][0]
    first = [flag for flag in SETTLING if not flag.startswith("--max_train_steps")]
    assert main(command(root, *first, "--max_train_steps=10", "--stop_when_settled")) == 0
    assert main(command(root, *SETTLING, "--stop_when_settled", "--resume_from_checkpoint=latest")) == 0
    assert scores(output_of(root)) == scores(straight)
    assert scores(output_of(root))[-1][0] == settled
    assert torch.equal(vectors(output_of(root)), vectors(straight))


def test_an_sdxl_run_scores_the_fixed_batch_through_both_encoders(tmp_path, tiny_sdxl_model):
    from conftest import build_root

    root = build_root(tmp_path / "invokeai", tiny_sdxl_model, "sdxl-base")
    flags = [a.replace("stable-diffusion-1.5", "sdxl-base") for a in command(root)]
    assert main([*flags, "--max_train_steps=4", "--validation_steps=2", "--learning_rate=0.01"]) == 0
    first = scores(output_of(root))
    assert [step for step, _ in first] == [0, 2, 4] and all(0 < score < 10 for _, score in first)
    again = tmp_path / "again"
    assert main([*flags, "--max_train_steps=4", "--validation_steps=2", "--learning_rate=0.01",
                 f"--output_dir={again}"]) == 0
    assert scores(again) == first


def test_no_three_scores_can_settle_so_the_fewest_that_can_is_four():
    """The first two scores after step 0's hold all the gain so far: they never gained under a
    tenth of it, however the score falls."""
    for second, third in [(0.5, 0.49), (0.9, 0.1), (0.99, 0.98), (0.2, 0.2)]:
        assert settled([(0, 1.0), (30, second), (60, third)]) is None
    assert settled([(0, 1.0), (20, 0.5), (40, 0.49), (60, 0.49)]) == Settled(60, 40)
    assert MIN_SCORES == 4 and scores_in(60, 30) == 3 and scores_in(60, 20) == 4 and scores_in(70, 20) == 5


def test_a_short_run_at_the_half_run_interval_skips_the_scores_that_could_never_settle(make_root):
    """Without --validation_steps a short run previews at 0, half-way and the end: three scores,
    which cost a CPU run more than its steps. It scores none, and the report says why and how to
    get a step recommended; an interval the user gives is always scored."""
    root = make_root()
    assert main(command(root, "--learning_rate=0.05", "--max_train_steps=6", "--save_steps=500")) == 0
    output = output_of(root)
    assert not (output / "evaluation.csv").exists()
    record = json.loads((output / "training_settings.json").read_text())
    assert (record["evaluation_scored"], record["validation_steps"], record["total_steps"]) == (False, 3, 6)
    page = (output / "report.html").read_text()
    assert ("<td>Step to pick</td><td>The fixed evaluation batch is not scored: 3 scores (every 3 of 6 steps) "
            "are too few to show where it settles; --validation_steps 2 scores it 4 times.</td>") in page
    assert main(command(root, "--learning_rate=0.05", "--max_train_steps=6", "--validation_steps=3")) == 0
    assert [step for step, _ in scores(output)] == [0, 3, 6]
    assert json.loads((output / "training_settings.json").read_text())["evaluation_scored"] is True


def test_stop_when_settled_on_a_run_too_short_to_settle_says_so_before_training(make_root, capsys):
    root = make_root()
    assert main(command(root, "--learning_rate=0.05", "--max_train_steps=6", "--save_steps=500",
                        "--stop_when_settled")) == 0
    out = capsys.readouterr().out
    said = ("The fixed evaluation batch is not scored: 3 scores (every 3 of 6 steps) are too few to show where "
            "it settles; --validation_steps 2 scores it 4 times; --stop_when_settled cannot stop this run.")
    assert said in out and out.index(said) < out.index("Trained <psychedelic> for 6 steps")
