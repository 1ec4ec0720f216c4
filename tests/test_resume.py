"""Checkpoints at every multiple and at the end, and continuing a run, finished or not."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from invokeai_ti.cli import main
from invokeai_ti.outputs.checkpoints import RunShape, checkpoints_on_disk, list_checkpoints
from invokeai_ti.outputs.layout import SET_ASIDE
from invokeai_ti.settings import TrainingSettings


def command(root: Path, *extra: str) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", "--placeholder_token=psychedelic",
        "--resolution=64", "--train_batch_size=1", "--gradient_accumulation_steps=1",
        "--mixed_precision=no", "--seed=5", "--learning_rate=0.002", "--no-scale_lr", *extra,
    ]


def output_of(root: Path) -> Path:
    return root / "text-inversion-output" / "psychedelic"


def vectors_in(folder: Path) -> torch.Tensor:
    return load_file(str(folder / "learned_embeds.safetensors"))["<psychedelic>"]


def checkpoint_names(folder: Path) -> list[str]:
    return [path.name for _, path in list_checkpoints(folder)]


def logged_rates(folder: Path) -> dict[int, float]:
    with open(folder / "loss_log.csv", newline="") as handle:
        return {int(row["step"]): float(row["learning_rate"]) for row in csv.DictReader(handle)}


def test_the_limit_keeps_the_newest_checkpoints_by_step_the_last_step_included(make_root, capsys):
    """The diffusers example's own cases: 3 steps, a checkpoint every step, a limit of 2."""
    root = make_root()
    limit = ["--checkpointing_steps=1", "--checkpoints_total_limit=2"]
    assert main(command(root, "--max_train_steps=3", *limit)) == 0
    assert checkpoint_names(output_of(root)) == ["checkpoint-2", "checkpoint-3"]
    straight = vectors_in(output_of(root))

    assert main(command(root, "--max_train_steps=3", *limit, "--resume_from_checkpoint=checkpoint-2")) == 0
    assert "Resuming from checkpoint-2 (step 2 of 3)." in capsys.readouterr().out
    assert checkpoint_names(output_of(root)) == ["checkpoint-2", "checkpoint-3"]
    assert torch.equal(vectors_in(output_of(root)), straight)


def test_the_disk_estimate_counts_the_final_checkpoint():
    assert checkpoints_on_disk(3000, 500, 0) == 6
    assert checkpoints_on_disk(3001, 500, 0) == 7
    assert checkpoints_on_disk(3001, 500, 3) == 4
    assert checkpoints_on_disk(10, 500, 3) == 1


@pytest.mark.parametrize("scheduler", ["constant", "constant_with_warmup"])
def test_continuing_a_finished_run_equals_the_longer_run_bit_for_bit(make_root, tmp_path, capsys, scheduler):
    root = make_root()
    flags = [f"--lr_scheduler={scheduler}", "--lr_warmup_steps=3"]
    assert main(command(root, "--max_train_steps=2", *flags)) == 0
    assert checkpoint_names(output_of(root)) == ["checkpoint-2"]
    capsys.readouterr()

    assert main(command(root, "--max_train_steps=4", *flags, "--resume_from_checkpoint=latest")) == 0
    out = capsys.readouterr().out
    assert "Resuming from checkpoint-2 (step 2 of 4)." in out and "schedule is rebuilt" not in out
    longer = tmp_path / "longer"
    assert main(command(root, "--max_train_steps=4", *flags, f"--output_dir={longer}")) == 0
    assert torch.equal(vectors_in(output_of(root)), vectors_in(longer))
    assert logged_rates(output_of(root)) == logged_rates(longer)


def test_continuing_a_decaying_schedule_says_how_the_rate_jumps(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=2", "--lr_scheduler=linear")) == 0
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=4", "--lr_scheduler=linear", "--resume_from_checkpoint=latest")) == 0
    # The old schedule ended at 0 after 2 steps; the new one is halfway down from 0.002 at step 2.
    assert (
        "The linear learning-rate schedule is rebuilt for 4 steps instead of 2, so the learning "
        "rate jumps from 0 to 0.001 at step 2." in capsys.readouterr().out
    )
    rates = logged_rates(output_of(root))
    assert rates[2] == pytest.approx(0.001) and rates[3] == pytest.approx(0.001)
    assert rates[4] == pytest.approx(0.0005)


def test_resuming_a_finished_run_with_the_same_steps_says_there_is_nothing_to_train(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=2")) == 0
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=2", "--resume_from_checkpoint=latest")) == 2
    assert capsys.readouterr().err.strip() == (
        "checkpoint-2 is already at step 2 of the 2 this run asks for, so there is nothing to "
        "train; to train more, run the same command with a larger --max_train_steps."
    )


def test_another_learning_rate_or_schedule_is_refused_with_the_checkpoints_flags(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=1")) == 0
    capsys.readouterr()
    argv = [a for a in command(root) if not a.startswith("--learning_rate")]
    resumed = argv + ["--learning_rate=0.01", "--lr_scheduler=cosine", "--max_train_steps=3",
                      "--resume_from_checkpoint=latest"]
    assert main(resumed) == 2
    err = capsys.readouterr().err
    assert (
        "was made by a different run: learning rate 0.002 (checkpoint) vs 0.01 (now); learning "
        "rate scheduler constant (checkpoint) vs cosine (now). To continue it, run with the "
        "checkpoint's values (--learning_rate=0.002 --lr_scheduler=constant); to start a new run "
        "with these settings, leave out --resume_from_checkpoint." in err
    )


def test_a_checkpoint_from_before_the_new_fields_still_resumes(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=1")) == 0
    state_file = output_of(root) / "checkpoint-1" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    (state["shape"]["token_dim"],) = state["shape"].pop("token_dims")
    old_fields = ("model", "token", "num_vectors", "token_dim", "resolution", "train_batch_size",
                  "gradient_accumulation_steps", "num_processes")
    state["shape"] = {name: state["shape"][name] for name in old_fields}
    del state["total_steps"]
    state_file.write_text(json.dumps(state))
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=2", "--resume_from_checkpoint=latest")) == 0
    assert "Resuming from checkpoint-1 (step 1 of 2)." in capsys.readouterr().out


def test_a_new_run_moves_the_earlier_runs_checkpoints_aside(make_root, capsys):
    """Left in place, the earlier checkpoint-2 would outrank the new run's checkpoint-1."""
    root = make_root()
    assert main(command(root, "--max_train_steps=2")) == 0
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=1", "--seed=6")) == 0
    assert "the earlier run's checkpoints (checkpoint-2 and older) were moved to" in capsys.readouterr().out
    assert checkpoint_names(output_of(root)) == ["checkpoint-1"]
    assert checkpoint_names(output_of(root) / SET_ASIDE) == ["checkpoint-2"]
    assert main(command(root, "--max_train_steps=2", "--resume_from_checkpoint=latest")) == 0
    assert "Resuming from checkpoint-1" in capsys.readouterr().out


def shape_of(**settings) -> RunShape:
    return RunShape.of_run(TrainingSettings(placeholder_token="cat", **settings), model="sd",
                           resolution=512, num_vectors=1, token_dims=(768,), num_processes=1)


def test_a_schedule_parameter_the_scheduler_does_not_read_is_not_compared():
    constant = shape_of(lr_scheduler="constant", lr_warmup_steps=50, lr_power=2.0)
    assert constant.lr_warmup_steps is None and constant.lr_power is None
    warm = shape_of(lr_scheduler="constant_with_warmup", lr_warmup_steps=5)
    assert constant.differences(warm) == [
        "learning rate scheduler constant (checkpoint) vs constant_with_warmup (now)"]
    assert shape_of(lr_scheduler="linear", lr_warmup_steps=50).differences(
        shape_of(lr_scheduler="linear", lr_warmup_steps=10)) == ["warm-up steps 50 (checkpoint) vs 10 (now)"]


def test_a_field_an_older_checkpoint_did_not_record_is_not_compared():
    old = RunShape.from_record({"model": "sd", "train_batch_size": 3, "added_later": 1})
    assert old.differences(shape_of(train_batch_size=2, learning_rate=1.0)) == [
        "batch size 3 (checkpoint) vs 2 (now)"]


def test_a_refused_resume_keeps_the_runs_record_and_a_resume_records_the_seed_it_trains_with(make_root, capsys):
    root = make_root()
    unseeded = [a for a in command(root) if not a.startswith("--seed")]
    assert main(unseeded + ["--max_train_steps=2"]) == 0
    record = output_of(root) / "training_settings.json"
    first = record.read_text()
    seed = json.loads(first)["seed"]

    assert main(unseeded + ["--max_train_steps=4", "--train_batch_size=2", "--resume_from_checkpoint=latest"]) == 2
    assert "batch size 1 (checkpoint) vs 2 (now)" in capsys.readouterr().err
    assert record.read_text() == first, "the refused run left the record of the run it belongs to"

    assert main(unseeded + ["--max_train_steps=4", "--resume_from_checkpoint=latest"]) == 0
    resumed = json.loads(record.read_text())
    assert resumed["seed"] == seed and resumed["max_train_steps"] == 4
