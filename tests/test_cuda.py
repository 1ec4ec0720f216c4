"""Behaviours that exist only on a CUDA GPU: fp16 with loss scaling, compiling, exact runs, folding.

They run where a GPU is present and are skipped with the reason elsewhere; the CPU-checkable
parts of the same rules are in tests/test_training_step.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from invokeai_ti.cli import main
from invokeai_ti.device import detect

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def command(root: Path, output: Path, *extra: str) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", "--placeholder_token=psychedelic",
        "--resolution=64", "--train_batch_size=2", "--gradient_accumulation_steps=4", "--seed=13",
        "--max_train_steps=6", "--learning_rate=0.002", f"--output_dir={output}", *extra,
    ]


def vectors_in(output: Path) -> torch.Tensor:
    return load_file(str(output / "learned_embeds.safetensors"))["<psychedelic>"]


def test_fp16_trains_with_a_loss_scaler_and_keeps_the_vectors_in_float32(make_root, tmp_path):
    flags = ("--mixed_precision=fp16", "--no-compile", "--checkpointing_steps=3")
    assert main(command(make_root(), tmp_path / "out", *flags)) == 0
    vectors = vectors_in(tmp_path / "out")
    assert vectors.dtype == torch.float32 and torch.isfinite(vectors).all()
    assert (tmp_path / "out" / "checkpoint-3" / "scaler.pt").exists(), "the loss scale is resumed too"


def test_a_compiled_run_trains_to_nearly_the_eager_result(make_root, tmp_path):
    root = make_root()
    assert main(command(root, tmp_path / "eager", "--mixed_precision=no", "--no-compile")) == 0
    assert main(command(root, tmp_path / "compiled", "--mixed_precision=no", "--compile")) == 0
    assert torch.allclose(vectors_in(tmp_path / "compiled"), vectors_in(tmp_path / "eager"), atol=1e-3)


def test_deterministic_mode_repeats_a_cuda_run_bit_for_bit(make_root, tmp_path):
    root = make_root()
    for name in ("a", "b"):
        assert main(command(root, tmp_path / name, "--mixed_precision=fp16", "--deterministic", "--no-compile")) == 0
    assert torch.equal(vectors_in(tmp_path / "a"), vectors_in(tmp_path / "b"))


def test_the_tiny_model_folds_every_micro_batch_into_one_forward(make_root, tmp_path, capsys):
    """A 64-pixel tiny model needs a few MB per micro-batch: all four fit in one pass."""
    from invokeai_ti.settings import TrainingSettings
    from invokeai_ti.training import Trainer
    from invokeai_ti.workflow import plan_run

    settings = TrainingSettings(
        root=make_root(), model="stable-diffusion-1.5", placeholder_token="psychedelic", resolution=64,
        train_batch_size=2, gradient_accumulation_steps=4, max_train_steps=2, seed=1, compile=False,
    )
    plan = plan_run(settings)
    trainer = Trainer(plan.settings, plan.model, plan.data_dir, tmp_path / "fold", show_progress=False)
    trainer.run()
    assert trainer.step is not None and trainer.step.fold == 4


def test_the_device_probe_finds_memory_efficient_attention_on_this_gpu():
    caps = detect()
    assert caps.kind == "cuda" and caps.memory_bytes > 0
    assert caps.sdpa_efficient, caps.sdpa_reason
