"""The learned vectors' size: recorded every step beside the vocabulary's median norm, and held there
on request (``--preserve_embedding_norm``, ``--learn_direction_only``), on SD-1 and SDXL alike.

The vocabulary's median is computed here from the model's own files, not read from the trainer,
so a trainer that measured the wrong matrix (or the new rows with it) fails.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import build_root
from safetensors.torch import load_file

from invokeai_ti.cli import main

TOKEN = "<psychedelic>"


def command(root: Path, *extra: str, model: str = "stable-diffusion-1.5") -> list[str]:
    return [
        f"--root={root}", f"--model={model}", "--placeholder_token=psychedelic", "--resolution=64",
        "--train_batch_size=1", "--gradient_accumulation_steps=1", "--mixed_precision=no", "--seed=5",
        "--learning_rate=0.02", "--no-scale_lr", "--validation_prompt=none", "--num_vectors=2", *extra,
    ]


def output_of(root: Path) -> Path:
    return root / "text-inversion-output" / "psychedelic"


def vocabulary_median(model: Path, encoder: str = "text_encoder") -> float:
    (weights,) = [w for k, w in load_file(str(model / encoder / "model.safetensors")).items()
                  if k.endswith("token_embedding.weight")]
    return float(weights.float().norm(dim=1).median())


def logged_norms(output: Path) -> list[dict[str, str]]:
    with open(output / "vector_norms.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def saved(output: Path, name: str = "learned_embeds.safetensors") -> torch.Tensor:
    return load_file(str(output / name))[TOKEN]


def test_every_step_records_the_vectors_norm_beside_the_vocabulary_median(make_root, tiny_model):
    root = make_root()
    assert main(command(root, "--max_train_steps=3")) == 0
    rows = logged_norms(output_of(root))
    assert [int(row["step"]) for row in rows] == [0, 1, 2, 3]
    assert {row["encoder"] for row in rows} == {"text encoder"}
    median = vocabulary_median(tiny_model)
    assert all(float(row["vocabulary_median"]) == pytest.approx(median, rel=1e-5) for row in rows)
    final = saved(output_of(root)).norm(dim=1)
    assert float(rows[-1]["mean_norm"]) == pytest.approx(float(final.mean()), rel=1e-5)
    assert float(rows[-1]["largest_norm"]) == pytest.approx(float(final.max()), rel=1e-5)


@pytest.mark.parametrize("flag", ["--preserve_embedding_norm", "--learn_direction_only"])
def test_each_size_mode_holds_every_vector_at_the_vocabulary_median_while_it_learns(make_root, tiny_model, flag):
    root = make_root()
    assert main(command(root, "--max_train_steps=3", flag)) == 0
    median = vocabulary_median(tiny_model)
    vectors = saved(output_of(root))
    assert torch.allclose(vectors.norm(dim=1), torch.full((2,), median), rtol=1e-5)
    rows = logged_norms(output_of(root))
    held = [row for row in rows if int(row["step"]) >= (0 if flag == "--learn_direction_only" else 1)]
    assert all(float(row["largest_norm"]) == pytest.approx(median, rel=1e-5) for row in held)
    root_free = build_root(root.parent / "free", tiny_model)
    assert main(command(root_free, "--max_train_steps=3")) == 0
    start = vectors / vectors.norm(dim=1, keepdim=True)
    free = saved(output_of(root_free))
    assert not torch.allclose(start, free / free.norm(dim=1, keepdim=True), atol=1e-3), "the direction is learned"


def test_direction_only_learns_at_its_own_rate(make_root):
    root = make_root()
    assert main(command(root, "--max_train_steps=2", "--learn_direction_only", "--direction_learning_rate=0.07")) == 0
    with open(output_of(root) / "loss_log.csv", newline="") as handle:
        assert {float(row["learning_rate"]) for row in csv.DictReader(handle)} == {0.07}


@pytest.mark.parametrize("flag", ["--preserve_embedding_norm", "--learn_direction_only"])
def test_a_resumed_run_with_size_control_ends_bit_identical_to_the_straight_run(make_root, tmp_path, flag):
    root = make_root()
    assert main(command(root, "--max_train_steps=2", flag)) == 0
    assert main(command(root, "--max_train_steps=4", flag, "--resume_from_checkpoint=latest")) == 0
    straight = tmp_path / "straight"
    assert main(command(root, "--max_train_steps=4", flag, f"--output_dir={straight}")) == 0
    assert torch.equal(saved(output_of(root)), saved(straight))


def test_resuming_with_another_size_mode_is_refused(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=1")) == 0
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=2", "--learn_direction_only", "--resume_from_checkpoint=latest")) == 2
    assert "direction-only learning off (checkpoint) vs on (now)" in capsys.readouterr().err


def test_both_size_modes_at_once_are_refused_in_one_sentence(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=1", "--preserve_embedding_norm", "--learn_direction_only")) == 2
    assert capsys.readouterr().err.strip() == (
        "--preserve_embedding_norm and --learn_direction_only both hold the vectors' size; choose one of them."
    )


def test_vectors_grown_past_the_threshold_are_named_once_in_one_sentence(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=6", "--learning_rate=0.5")) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if "times the vocabulary's median norm" in line]
    assert len(warnings) == 1, out
    assert "--preserve_embedding_norm or --learn_direction_only" in warnings[0]


@pytest.mark.parametrize("flag", ["--preserve_embedding_norm", "--learn_direction_only"])
def test_sdxl_holds_clip_l_and_clip_g_each_at_its_own_vocabulary_median(tmp_path, tiny_sdxl_model, flag):
    root = build_root(tmp_path / "invokeai", tiny_sdxl_model, "sdxl-base")
    assert main(command(root, "--max_train_steps=2", flag, model="sdxl-base")) == 0
    output = output_of(root)
    medians = (vocabulary_median(tiny_sdxl_model), vocabulary_median(tiny_sdxl_model, "text_encoder_2"))
    assert medians[0] != pytest.approx(medians[1], rel=1e-3)
    for name, median in zip(("learned_embeds.safetensors", "learned_embeds_2.safetensors"), medians):
        assert torch.allclose(saved(output, name).norm(dim=1), torch.full((2,), median), rtol=1e-5)
    rows = logged_norms(output)
    assert {row["encoder"] for row in rows} == {"clip_l", "clip_g"}
    for encoder, median in zip(("clip_l", "clip_g"), medians):
        last = [row for row in rows if row["encoder"] == encoder][-1]
        assert float(last["vocabulary_median"]) == pytest.approx(median, rel=1e-5)
