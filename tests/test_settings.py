"""The settings dataclass is the single source of every default, flag and check."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from invokeai_ti.device import DeviceCaps
from invokeai_ti.settings import TrainingSettings, bare_trigger

CPU = DeviceCaps("cpu", "CPU", 1, fp16=False, bf16=True, xformers=False, xformers_reason="not installed")
GPU_WITH_XFORMERS = DeviceCaps("cuda", "GPU", 1, fp16=True, bf16=True, xformers=True, xformers_reason="works",
                               memory_bytes=24 * 10**9)
GPU_WITHOUT_XFORMERS = dataclasses.replace(GPU_WITH_XFORMERS, xformers=False)


def test_defaults_are_the_forms_defaults_not_invokeai_cli_ones():
    s = TrainingSettings()
    assert s.learning_rate == 5e-4
    assert s.scale_lr is True
    assert s.lr_warmup_steps == 0
    assert s.gradient_accumulation_steps == 4
    assert s.max_train_steps == 3000
    assert s.initializer_token == "*"
    assert s.lr_scheduler == "constant"
    assert s.learnable_property == "object"
    assert s.checkpointing_steps == 500 and s.save_steps == 500 and s.repeats == 100
    assert (s.adam_beta1, s.adam_beta2, s.adam_weight_decay, s.adam_epsilon) == (0.9, 0.999, 1e-2, 1e-8)


def test_batch_size_is_8_only_when_efficient_attention_works_on_a_12_gb_gpu():
    assert TrainingSettings().resolve_device_defaults(GPU_WITH_XFORMERS).train_batch_size == 8
    assert TrainingSettings().resolve_device_defaults(GPU_WITHOUT_XFORMERS).train_batch_size == 3
    with_sdpa = dataclasses.replace(GPU_WITHOUT_XFORMERS, sdpa_efficient=True)
    assert TrainingSettings().resolve_device_defaults(with_sdpa).train_batch_size == 8
    small = dataclasses.replace(with_sdpa, memory_bytes=8 * 10**9)
    assert TrainingSettings().resolve_device_defaults(small).train_batch_size == 3
    assert TrainingSettings().resolve_device_defaults(CPU).train_batch_size == 3


def test_precision_default_is_one_the_device_can_run():
    assert TrainingSettings().resolve_device_defaults(GPU_WITH_XFORMERS).mixed_precision == "fp16"
    cpu = TrainingSettings().resolve_device_defaults(CPU)
    assert cpu.mixed_precision in CPU.precisions and cpu.mixed_precision != "fp16"


def test_xformers_follows_the_probe_unless_the_user_chose():
    assert TrainingSettings().resolve_device_defaults(GPU_WITH_XFORMERS).enable_xformers_memory_efficient_attention
    assert not TrainingSettings().resolve_device_defaults(CPU).enable_xformers_memory_efficient_attention
    chosen = TrainingSettings(enable_xformers_memory_efficient_attention=False)
    assert not chosen.resolve_device_defaults(GPU_WITH_XFORMERS).enable_xformers_memory_efficient_attention


def test_explicit_values_survive_device_defaults():
    s = TrainingSettings(train_batch_size=5, mixed_precision="bf16").resolve_device_defaults(GPU_WITH_XFORMERS)
    assert (s.train_batch_size, s.mixed_precision) == (5, "bf16")


def test_fp16_on_a_cpu_is_refused_with_a_fix():
    problem = CPU.precision_problem("fp16")
    assert problem.field == "mixed_precision"
    assert "GPU" in problem.text and "bf16 or no" in problem.text
    assert GPU_WITH_XFORMERS.precision_problem("fp16") is None


@pytest.mark.parametrize("given", ["psychedelic", "<psychedelic>", " <psychedelic> "])
def test_trigger_with_or_without_brackets_trains_the_bracketed_token(given):
    s = TrainingSettings(placeholder_token=given)
    assert s.trigger == "psychedelic"
    assert s.token == "<psychedelic>"
    assert bare_trigger(given) == "psychedelic"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"placeholder_token": ""}, "empty"),
        ({"placeholder_token": "my cat"}, "space"),
        ({"placeholder_token": "cat!"}, "'!'"),
        ({"initializer_token": " "}, "empty"),
        ({"resolution": 500}, "multiple of 8"),
        ({"max_train_steps": 0}, "at least 1"),
        ({"train_batch_size": -1}, "at least 1"),
        ({"gradient_accumulation_steps": 0}, "at least 1"),
        ({"learning_rate": -1.0}, "5e-4"),
        ({"learning_rate": float("nan")}, "5e-4"),
        ({"lr_scheduler": "sawtooth"}, "'sawtooth'"),
        ({"mixed_precision": "fp8"}, "'fp8'"),
        ({"learnable_property": "colour"}, "'colour'"),
        ({"lr_warmup_steps": -1}, "negative"),
        ({"checkpoints_total_limit": -1}, "use 0 to keep every checkpoint"),
        ({"bucket_reso_steps": 60}, "64"),
        ({"caption_tag_dropout_rate": 1.0}, "between 0 and 1"),
        ({"snr_gamma": -1.0}, "0 (off)"),
        ({"noise_offset": 2.0}, "between 0 and 1"),
        ({"min_timestep": 1000}, "such as 0 (every timestep)"),
        ({"max_timestep": 1001}, "use 1000, the noisiest"),
        ({"dataloader_num_workers": -1}, "negative"),
    ],
)
def test_each_bad_value_is_a_problem_of_its_own_field_with_its_fix(changes, fragment):
    """The field is what the form puts the cursor on; the words are for the person."""
    problems = TrainingSettings(**{"placeholder_token": "ok", **changes}).problems()
    (name,) = changes
    assert [problem.field for problem in problems] == [name], problems
    assert fragment in problems[0].text


def test_good_settings_have_no_problems():
    assert TrainingSettings(placeholder_token="psychedelic.v2_x-y").problems() == []


def test_saved_values_round_trip_and_bad_ones_are_ignored():
    saved = TrainingSettings(placeholder_token="x", learning_rate=1e-3, output_dir=Path("/tmp/o")).to_dict()
    assert TrainingSettings.from_dict(saved) == TrainingSettings(
        placeholder_token="x", learning_rate=1e-3, output_dir=Path("/tmp/o")
    )
    loaded = TrainingSettings.from_dict(
        {"learning_rate": "not a number", "max_train_steps": "1200", "unknown_key": 3, "scale_lr": "false"}
    )
    assert loaded.learning_rate == 5e-4
    assert loaded.max_train_steps == 1200
    assert loaded.scale_lr is False


def test_bf16_on_a_cpu_without_bf16_instructions_is_refused_as_far_slower():
    no_bf16 = dataclasses.replace(CPU, bf16=False)
    problem = no_bf16.precision_problem("bf16")
    assert problem.field == "mixed_precision"
    assert "no bf16 instructions" in problem.text and "choose no" in problem.text
    assert CPU.precision_problem("bf16") is None


def test_compiling_is_on_by_default_only_for_cuda_runs_long_enough_to_pay_it_back():
    assert TrainingSettings().resolve_device_defaults(GPU_WITH_XFORMERS).compile is True
    assert TrainingSettings(max_train_steps=500).resolve_device_defaults(GPU_WITH_XFORMERS).compile is False
    assert TrainingSettings().resolve_device_defaults(CPU).compile is False
    assert TrainingSettings(compile=True).resolve_device_defaults(CPU).compile is True
