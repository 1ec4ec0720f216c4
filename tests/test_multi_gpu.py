"""The form offers "GPUs to use" on multi-GPU machines and starts accelerate itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from invokeai_ti.cli import build_parser, settings_from_args
from invokeai_ti.device import DeviceCaps
from invokeai_ti.form.multi_gpu import launch_command, train_on_gpus
from invokeai_ti.form.state import FormState
from invokeai_ti.models import discover_models
from invokeai_ti.paths import RootLayout
from invokeai_ti.settings import TrainingSettings, settings_to_argv
from invokeai_ti.workflow import plan_run

CPU = DeviceCaps("cpu", "CPU", 1, False, True, False, "xFormers is not installed")
TWO_GPUS = DeviceCaps("cuda", "GPU", 2, True, True, False, "not installed", ("RTX A", "RTX B"))
ONE_GPU = dataclasses.replace(TWO_GPUS, count=1, device_names=("RTX A",))


def test_settings_turn_back_into_the_flags_that_make_them():
    settings = TrainingSettings(
        root=Path("/r"), placeholder_token="<cat>", scale_lr=False, center_crop=True,
        learning_rate=1.5e-3, train_batch_size=2, resume_from_checkpoint="latest", seed=9,
        validation_prompt=("a photo of {}", "{} on the beach"), learn_direction_only=True,
    )
    assert settings_from_args(build_parser().parse_args(settings_to_argv(settings))) == settings


def form(root: Path, caps: DeviceCaps) -> FormState:
    layout = RootLayout(root)
    return FormState.build({"root": root}, layout=layout, caps=caps, models=discover_models(layout), saved={})


def test_gpus_to_use_is_offered_only_with_several_cuda_devices(make_root):
    root = make_root()
    assert form(root, TWO_GPUS).gpu_choices() == ["GPU 0: RTX A", "GPU 1: RTX B"]
    assert form(root, TWO_GPUS).gpus == [0, 1]
    assert form(root, TWO_GPUS).trains_in_child_process()
    assert form(root, ONE_GPU).gpu_choices() == []
    assert not form(root, ONE_GPU).trains_in_child_process()


def test_choosing_no_gpu_is_a_problem_on_ok(make_root):
    state = form(make_root(), TWO_GPUS)
    state.gpus = []
    _, problems = state.to_settings()
    (problem,) = problems
    assert "no GPU is chosen" in problem.text and "GPUs to use" in problem.text


def plan_for(root: Path):
    return plan_run(
        TrainingSettings(
            root=root, model="stable-diffusion-1.5", placeholder_token="psychedelic", max_train_steps=2,
            train_batch_size=1, gradient_accumulation_steps=1, seed=4, resolution=64,
        ),
        CPU,
    )


def test_several_gpus_run_through_accelerate_launch_and_one_gpu_through_its_visibility(make_root):
    plan = plan_for(make_root())
    command, _ = launch_command(plan, [0, 2])
    text = " ".join(command)
    assert "accelerate.commands.launch --multi_gpu" in text
    assert "--num_processes 2 --gpu_ids 0,2" in text and "-m invokeai_ti" in text
    assert f"--output_dir={plan.output_dir}" in command
    command, env = launch_command(plan, [1])
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and "accelerate" not in " ".join(command)


@pytest.mark.slow
@pytest.mark.skipif(
    torch.cuda.is_available() and torch.cuda.device_count() < 2,
    reason="two GPUs are asked for and this machine has one (without CUDA the test runs over gloo)",
)
def test_a_two_process_run_started_for_the_form_installs_one_embedding(make_root, capfd):
    """On a CPU machine accelerate runs the two processes over gloo: the same code path."""
    root = make_root()
    assert train_on_gpus(plan_for(root), [0, 1]) == 0
    assert capfd.readouterr().out.count("The embedding is installed at") == 1
    installed = root / "embeddings" / "psychedelic" / "learned_embeds.bin"
    vectors = torch.load(installed, weights_only=True)["<psychedelic>"]
    assert vectors.shape == (32,) and torch.isfinite(vectors).all()
    settings = (root / "text-inversion-output" / "psychedelic" / "training_settings.json").read_text()
    assert '"num_processes": 2' in settings
