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
    """Those runs trained on every timestep, today's default: resuming one keeps that."""
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
    assert main(command(root, "--max_train_steps=2", "--resume_from_checkpoint=latest", "--min_timestep=250")) != 0
    assert "lowest timestep 0 (checkpoint) vs 250 (now)" in capsys.readouterr().err
    assert main(command(root, "--max_train_steps=2", "--resume_from_checkpoint=latest")) == 0
    assert "Resuming from checkpoint-1 (step 1 of 2)." in capsys.readouterr().out


def test_a_new_run_moves_every_file_of_the_earlier_run_aside(make_root, capsys):
    """Left in place, the earlier checkpoint-2 would outrank the new run's checkpoint-1, and its
    snapshots, loss log and previews would pass for the new run's."""
    root = make_root()
    output = output_of(root)
    previews = ["--num_validation_images=1", "--save_steps=1"]
    assert main(command(root, "--max_train_steps=2", *previews)) == 0
    earlier = sorted(path.name for path in output.iterdir() if not path.name.startswith("."))
    assert {"checkpoint-2", "learned_embeds-steps-1.bin", "samples", "loss_log.csv", "report.html"} <= set(earlier)
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=1", "--seed=6", *previews)) == 0
    out = capsys.readouterr().out
    assert "Starting a new run: the earlier run's files (checkpoint-2 and older, the snapshots of steps 1, 2," in out
    assert sorted(path.name for path in (output / SET_ASIDE).iterdir()) == earlier
    assert checkpoint_names(output) == ["checkpoint-1"]
    assert not (output / "learned_embeds-steps-2.bin").exists()
    assert sorted(path.name for path in (output / "samples").iterdir()) == ["step-000000.png", "step-000001.png"]
    assert [row["step"] for row in csv.DictReader((output / "loss_log.csv").open())] == ["1"]

    assert main(command(root, "--max_train_steps=1", "--seed=7", *previews)) == 0
    assert checkpoint_names(output / SET_ASIDE / SET_ASIDE) == ["checkpoint-2"], (
        "a run set aside before is kept inside the newer one, never deleted")
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=2", "--resume_from_checkpoint=latest")) == 0
    assert "Resuming from checkpoint-1" in capsys.readouterr().out


def test_install_step_offers_and_installs_only_the_current_runs_steps(make_root, capsys):
    root = make_root()
    output = output_of(root)
    assert main(command(root, "--max_train_steps=4", "--save_steps=1", "--validation_prompt=none")) == 0
    assert main(command(root, "--max_train_steps=2", "--save_steps=1", "--validation_prompt=none", "--seed=6")) == 0
    install = ["--install-step", "--root", str(root), "--placeholder_token", "psychedelic"]
    capsys.readouterr()
    install[1:1] = ["4"]
    assert main(install) == 2
    assert "has no embedding of step 4; the steps saved there are 1, 2 (the final one)" in capsys.readouterr().err
    # A folder an older version shared between runs still holds the earlier run's later snapshots.
    for path in (output / SET_ASIDE).glob("*-steps-4.*"):
        path.replace(output / path.name)
    assert main(install) == 2, "a snapshot past the run's last step is another run's"
    install[1] = "1"
    assert main(install) == 0
    installed = root / "embeddings" / "psychedelic" / "learned_embeds.bin"
    assert installed.read_bytes() == (output / "learned_embeds-steps-1.bin").read_bytes()
    assert installed.read_bytes() != (output / SET_ASIDE / "learned_embeds-steps-1.bin").read_bytes()


def test_resuming_a_set_aside_run_in_the_folder_of_the_run_that_replaced_it_is_refused(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=2")) == 0
    assert main(command(root, "--max_train_steps=1", "--seed=6")) == 0
    capsys.readouterr()
    aside = f"{SET_ASIDE}/checkpoint-2"
    assert main(command(root, "--max_train_steps=3", f"--resume_from_checkpoint={aside}")) == 2
    err = capsys.readouterr().err
    assert f"belongs to the earlier run set aside in {output_of(root) / SET_ASIDE}" in err
    assert err.strip().endswith("resume there with --output_dir that folder --resume_from_checkpoint latest.")
    assert checkpoint_names(output_of(root)) == ["checkpoint-1"], "nothing was trained or moved"


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
    assert old.differences(shape_of(train_batch_size=2, learning_rate=1.0, min_timestep=0)) == [
        "batch size 3 (checkpoint) vs 2 (now)"]


def test_an_older_checkpoint_trained_on_every_timestep():
    old = RunShape.from_record({"model": "sd", "train_batch_size": 3})
    assert (old.min_timestep, old.max_timestep) == (0, 1000)


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
