"""The optimizer step as a unit: folding micro-batches, compiling, determinism, and running out of memory.

These are the GPU fast path's rules, checked on the CPU with the tiny model: the maths of a folded
step, the fallbacks, and the sentences. The same behaviours on CUDA are in tests/test_cuda.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from invokeai_ti.cli import main
from invokeai_ti.device import DeviceCaps
from invokeai_ti.outputs.family_files import StableDiffusionFiles
from invokeai_ti.outputs.layout import OutputLayout
from invokeai_ti.settings import TrainingSettings
from invokeai_ti.training.evaluation import FixedEvaluation, samples_per_pass
from invokeai_ti.training.family import StableDiffusionFamily
from invokeai_ti.training.latents import LatentCache
from invokeai_ti.training.loading import LoadedModel, TextEncoders
from invokeai_ti.training.plan import SamplePlan
from invokeai_ti.training.prompts import Prompts
from invokeai_ti.training.run import Run
from invokeai_ti.training.step import Samples, TrainingStep, fold_that_fits, largest_divisor_at_most
from invokeai_ti.training.tokens import ExtendedEmbedding, add_tokens, new_tokens


@pytest.fixture(scope="module")
def parts(tiny_model: Path):
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(tiny_model / "tokenizer"))
    text_encoder = CLIPTextModel.from_pretrained(str(tiny_model / "text_encoder")).requires_grad_(False)
    _, vectors = add_tokens(tokenizer, text_encoder, new_tokens("<t>", 2), "*", None)
    text_encoder.set_input_embeddings(ExtendedEmbedding(text_encoder.get_input_embeddings(), vectors))
    unet = UNet2DConditionModel.from_pretrained(str(tiny_model / "unet")).requires_grad_(False)
    scheduler = DDPMScheduler.from_pretrained(str(tiny_model / "scheduler"))
    captions = Prompts([tokenizer], ["a photo of <t> <t>_1", "a painting of <t> <t>_1"], [None] * 3,
                       placeholder="<t> <t>_1", seed=5)
    generator = torch.Generator().manual_seed(0)
    shape = (3, 2, unet.config.in_channels, 8, 8)
    cache = LatentCache(torch.randn(shape, generator=generator), torch.rand(shape, generator=generator) * 0.1)
    return text_encoder, unet, scheduler, captions, cache, vectors


def step_unit(parts, *, fold: int, accumulation: int = 4, batch: int = 1) -> TrainingStep:
    text_encoder, unet, scheduler, captions, cache, vectors = parts
    text = TextEncoders([None], [text_encoder], ["<t>", "<t>_1"], [[0, 1]], (vectors,))
    model = LoadedModel(StableDiffusionFamily(), text, unet, scheduler, torch.float32, lambda: None)
    samples = Samples(SamplePlan(5, num_images=3, num_templates=2, num_timesteps=1000), cache, captions)
    settings = TrainingSettings(placeholder_token="t", train_batch_size=batch, gradient_accumulation_steps=accumulation)
    run = Run(settings, OutputLayout(Path("unused"), "t"), StableDiffusionFiles(), seed=5, total_steps=10)
    unit = TrainingStep(model, samples, run)
    unit.fold = fold
    return unit


def gradient_of_step(unit: TrainingStep, step: int = 3) -> tuple[float, torch.Tensor]:
    (vectors,) = unit.vectors
    vectors.grad = None
    loss = unit(step)
    grad = vectors.grad.clone()
    vectors.grad = None
    return float(loss), grad


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_the_loss_compares_the_unet_with_the_target_its_scheduler_predicts(parts, prediction_type):
    """The noise for an epsilon model, ``get_velocity`` for a v-prediction one (SD-2 768-v)."""
    from diffusers import DDPMScheduler

    text_encoder, unet, scheduler, captions, cache, vectors = parts
    scheduler = DDPMScheduler.from_config(scheduler.config, prediction_type=prediction_type)
    unit = step_unit((text_encoder, unet, scheduler, captions, cache, vectors), fold=1)
    numbers = [0, 1, 2]
    with torch.no_grad():
        ours = unit.loss(numbers)
        batch = unit.samples.plan.batch(numbers, cache)
        noisy = scheduler.add_noise(batch.latents, batch.noise, batch.timesteps)
        context = text_encoder(captions.ids(batch)[0])[0]
        prediction = unet(noisy, batch.timesteps, encoder_hidden_states=context).sample
    velocity = scheduler.get_velocity(batch.latents, batch.noise, batch.timesteps)
    expected = velocity if prediction_type == "v_prediction" else batch.noise
    other = batch.noise if prediction_type == "v_prediction" else velocity
    assert float(ours) == pytest.approx(float(torch.nn.functional.mse_loss(prediction, expected)), rel=1e-6)
    assert float(ours) != pytest.approx(float(torch.nn.functional.mse_loss(prediction, other)), rel=1e-3)


def float32_reordering_bound(*models: torch.nn.Module) -> float:
    """How far float32 results computed through ``models`` may move when only the order of their
    additions changes, relative to their size: L * K * u.

    Reordering a sum of K float32 terms changes it by at most K * u * sum(|terms|), u = 2^-24
    (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., section 4.2). Through L
    layers in a row these first-order errors add up, so a result may move by L * K * u relative to
    its size, taken as a norm: with K the longest reduction of any layer (a convolution's input
    channels x kernel, a linear layer's width) and L the number of layers. Element by element
    there is no such bound: an entry that is a nearly cancelling sum can move by any fraction of
    itself (an AMD CPU moved one from 1.0752e-03 to 1.0751e-03, past an element-wise 1e-4).
    """
    layers, longest = 0, 0
    for model in models:
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                kernel = module.kernel_size[0] * module.kernel_size[1]
                layers, longest = layers + 1, max(longest, kernel * max(module.in_channels, module.out_channels))
            elif isinstance(module, torch.nn.Linear):
                layers, longest = layers + 1, max(longest, module.in_features, module.out_features)
    return layers * longest * 2.0**-24


@pytest.mark.parametrize("fold", [2, 4])
def test_folding_micro_batches_gives_the_gradient_of_running_them_one_at_a_time(parts, fold):
    """One forward of 4 micro-batches is the same sum of means over the accumulation steps.

    Folding changes the order of float32 additions (and the batch the kernels block by) and nothing
    else, so the loss may move by the forward pass's reordering bound and the gradient by twice it
    (forward and backward); for the tiny model that is about 0.7 % and 1.3 %. A folding mistake
    moves them by a whole micro-batch's share at least: a quarter or more.
    """
    text_encoder, unet, *_ = parts
    forward = float32_reordering_bound(text_encoder, unet)
    loss_one, grad_one = gradient_of_step(step_unit(parts, fold=1))
    loss_folded, grad_folded = gradient_of_step(step_unit(parts, fold=fold))
    assert grad_one.abs().max() > 0
    assert forward < 0.05, "the bound must stay far below what a folding mistake changes"
    assert abs(loss_folded - loss_one) <= forward * abs(loss_one)
    assert torch.linalg.vector_norm(grad_folded - grad_one) <= 2 * forward * torch.linalg.vector_norm(grad_one)


def test_folds_carry_the_same_samples_as_the_micro_batches_they_replace(parts):
    unfolded = step_unit(parts, fold=1, batch=2).chunks(7)
    folded = step_unit(parts, fold=2, batch=2).chunks(7)
    assert [n for chunk in folded for n in chunk] == [n for chunk in unfolded for n in chunk]
    assert [len(chunk) for chunk in folded] == [4, 4]


def test_a_fold_is_the_largest_divisor_of_the_accumulation_that_fits_in_memory():
    assert fold_that_fits(accumulation=4, bytes_per_micro_batch=100, budget_bytes=1000) == 4
    assert fold_that_fits(accumulation=4, bytes_per_micro_batch=100, budget_bytes=350) == 2
    assert fold_that_fits(accumulation=6, bytes_per_micro_batch=100, budget_bytes=500) == 3
    assert fold_that_fits(accumulation=4, bytes_per_micro_batch=100, budget_bytes=50) == 1
    assert largest_divisor_at_most(7, 6) == 1


def test_the_step_does_not_rebuild_its_inputs_from_text(parts, monkeypatch):
    """Captions were tokenised at start: a step calls no tokenizer, which would stop CUDA graphs."""
    from transformers import CLIPTokenizer

    def refuse(*_args, **_kwargs):
        raise AssertionError("the step tokenised a caption")

    monkeypatch.setattr(CLIPTokenizer, "__call__", refuse)
    gradient_of_step(step_unit(parts, fold=1))


def command(root: Path, output: Path, *extra: str) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", "--placeholder_token=psychedelic",
        "--resolution=64", "--train_batch_size=2", "--gradient_accumulation_steps=2",
        "--mixed_precision=no", "--seed=9", "--max_train_steps=4", f"--output_dir={output}", *extra,
    ]


def vectors_in(output: Path) -> torch.Tensor:
    return load_file(str(output / "learned_embeds.safetensors"))["<psychedelic>"]


def test_a_compile_failure_falls_back_to_eager_with_one_line_and_the_same_result(make_root, tmp_path, monkeypatch, capsys):
    root = make_root()
    assert main(command(root, tmp_path / "eager", "--no-compile")) == 0

    def broken_compile(module, **_options):
        def compiled(*_args, **_kwargs):
            raise RuntimeError("inductor could not build a kernel")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    capsys.readouterr()
    assert main(command(root, tmp_path / "compiled", "--compile")) == 0
    out = capsys.readouterr().out
    assert out.count("Compiling the UNet failed (RuntimeError: inductor could not build a kernel)") == 1
    assert torch.equal(vectors_in(tmp_path / "compiled"), vectors_in(tmp_path / "eager"))


def test_deterministic_runs_repeat_bit_for_bit_and_leave_torch_as_they_found_it(make_root, tmp_path):
    root = make_root()
    assert main(command(root, tmp_path / "a", "--deterministic")) == 0
    assert main(command(root, tmp_path / "b", "--deterministic")) == 0
    assert torch.equal(vectors_in(tmp_path / "a"), vectors_in(tmp_path / "b"))
    assert not torch.are_deterministic_algorithms_enabled()


def test_running_out_of_memory_keeps_the_work_and_names_the_batch_size_that_fits(make_root, tmp_path, monkeypatch, capsys):
    """From step 3 on, pretend more than 1 image per forward does not fit on this device."""
    from diffusers import UNet2DConditionModel

    real_forward = UNet2DConditionModel.forward
    calls = {"n": 0}

    def tight_memory(self, sample, *args, **kwargs):
        # Training's passes only: the previews and the evaluation batch run without gradients.
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] > 4 and sample.shape[0] > 1 and torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(self, sample, *args, **kwargs)

    root = make_root()
    monkeypatch.setattr(UNet2DConditionModel, "forward", tight_memory)
    output = tmp_path / "out"
    assert main(command(root, output, "--checkpointing_steps=100", "--validation_prompt=none")) == 2
    err = capsys.readouterr().err
    assert "ran out of memory at step 3 on a forward pass of 2 images at 64 px" in err
    assert "--train_batch_size 1 fits" in err and "--gradient_checkpointing" in err
    assert "Traceback" not in err
    assert (output / "checkpoint-2").is_dir(), "the steps finished before running out are kept"
    assert (output / "learned_embeds.safetensors").exists()


@pytest.mark.parametrize(
    "caps, batch, why",
    [
        (DeviceCaps("cpu", "CPU", 1, False, False, False, "not installed"), 3, "runs on the CPU"),
        (DeviceCaps("cuda", "GPU", 1, True, True, False, "not installed", memory_bytes=24 * 10**9,
                    sdpa_efficient=True), 8, "PyTorch's memory-efficient attention works"),
        (DeviceCaps("cuda", "GPU", 1, True, True, True, "works", memory_bytes=24 * 10**9), 8, "xFormers works"),
        (DeviceCaps("cuda", "GPU", 1, True, True, False, "not installed", memory_bytes=8 * 10**9,
                    sdpa_efficient=True), 3, "under 12 GB"),
        (DeviceCaps("cuda", "GPU", 1, True, True, False, "not installed", memory_bytes=24 * 10**9,
                    sdpa_efficient=False, sdpa_reason="no kernel for this GPU"), 3, "no kernel for this GPU"),
    ],
)
def test_batch_size_default_is_8_only_with_efficient_attention_on_a_12_gb_gpu(caps, batch, why):
    assert caps.default_batch_size == batch
    assert f"defaults to {batch}" in caps.batch_reason() and why in caps.batch_reason()


def test_the_evaluation_batch_goes_through_as_few_passes_as_memory_allows():
    """Without gradients a pass carries four training passes' samples (the demo's batch of 4:
    16), at most 32 at 128 px (16 x 16 latents), 8 at 256 px, 2 at 512 px, never fewer than
    training puts through the UNet at once, and with two processes each scores its half."""
    assert samples_per_pass(size=32, training_pass=1, cells_per_sample=16 * 16) == 4
    assert samples_per_pass(size=32, training_pass=4, cells_per_sample=4 * 4) == 16
    assert samples_per_pass(size=32, training_pass=8, cells_per_sample=16 * 16) == 32
    assert samples_per_pass(size=32, training_pass=4, cells_per_sample=32 * 32) == 8
    assert samples_per_pass(size=32, training_pass=1, cells_per_sample=64 * 64) == 2
    assert samples_per_pass(size=32, training_pass=8, cells_per_sample=64 * 64) == 8
    assert samples_per_pass(size=32, training_pass=16, cells_per_sample=4 * 4, processes=2) == 16


def test_scoring_in_one_pass_gives_the_score_of_the_training_micro_batches(parts):
    """The same mean over the same samples: one pass of 32 instead of 32 passes of 1 changes the
    order of float32 additions only, so the score moves within the forward pass's reordering
    bound; a pass that lost or repeated a sample would move it by a thirty-second at least."""
    text_encoder, unet, *_ = parts
    evaluation = FixedEvaluation(step_unit(parts, fold=1, accumulation=1, batch=8), images=3)
    assert evaluation.per_pass == evaluation.size == 32
    assert [len(numbers) for numbers in evaluation.chunks()] == [32]
    batched = evaluation.score()
    evaluation.per_pass = 1
    assert sorted(n for numbers in evaluation.chunks() for n in numbers) == list(range(32))
    one_at_a_time = evaluation.score()
    assert abs(batched - one_at_a_time) <= float32_reordering_bound(text_encoder, unet) * one_at_a_time


def test_a_pass_of_the_evaluation_batch_stacks_pictures_of_one_bucket(parts):
    """Photos of two shapes: each pass holds one bucket's samples, and the score is the mean over
    all of them as one-at-a-time scoring finds it."""
    text_encoder, unet, scheduler, captions, _, vectors = parts
    generator = torch.Generator().manual_seed(1)
    shapes = [(2, unet.config.in_channels, 8, 8), (2, unet.config.in_channels, 8, 16), (2, unet.config.in_channels, 8, 16)]
    cache = LatentCache([torch.randn(s, generator=generator) for s in shapes],
                        [torch.rand(s, generator=generator) * 0.1 for s in shapes])
    unit = step_unit((text_encoder, unet, scheduler, captions, cache, vectors), fold=1, accumulation=1, batch=8)
    unit.samples = Samples(SamplePlan(5, num_images=3, num_templates=2, num_timesteps=1000, buckets=[0, 1, 1]),
                           cache, captions)
    evaluation = FixedEvaluation(unit, images=3)
    chunks = evaluation.chunks()
    assert len(chunks) == 2 and sum(len(numbers) for numbers in chunks) == 32
    assert all(len({evaluation.bucket_of(n) for n in numbers}) == 1 for numbers in chunks)
    batched = evaluation.score()
    evaluation.per_pass = 1
    assert abs(batched - evaluation.score()) <= float32_reordering_bound(text_encoder, unet) * batched


def test_memory_running_out_while_scoring_halves_the_passes_and_scores_the_same_samples(parts, monkeypatch):
    unit = step_unit(parts, fold=1, accumulation=1, batch=2)
    evaluation = FixedEvaluation(unit, images=3)
    assert evaluation.per_pass == 8
    seen: list[int] = []
    original = TrainingStep.loss

    def small_memory(self, numbers, **options):
        if len(numbers) > 4:
            raise torch.OutOfMemoryError("out of memory")
        seen.extend(numbers)
        return original(self, numbers, **options)

    monkeypatch.setattr(TrainingStep, "loss", small_memory)
    score = evaluation.score()
    assert evaluation.per_pass == 4 and sorted(seen) == list(range(32))
    evaluation.per_pass = 1
    assert score == pytest.approx(evaluation.score(), rel=float32_reordering_bound(*parts[:2]))


def test_steps_leave_their_results_on_the_device_until_something_acts_on_them(make_root, tmp_path, monkeypatch):
    """The loop reads losses and sizes only where an evaluation, a snapshot or a checkpoint needs
    them (and at most every ``LOOK_SECONDS``), yet writes the very rows of reading every step."""
    from invokeai_ti.training import loop as loop_module

    root = make_root()
    flags = ("--max_train_steps=8", "--validation_steps=4", "--save_steps=4", "--checkpointing_steps=4",
             "--validation_prompt=none", "--gradient_accumulation_steps=1")
    monkeypatch.setattr(loop_module, "LOOK_SECONDS", 0.0)
    assert main(command(root, tmp_path / "every", *flags)) == 0
    looked: list[list[int]] = []
    original = loop_module.TrainingLoop.look

    def watched(self):
        looked.append([step for step, *_ in self.unread])
        return original(self)

    monkeypatch.setattr(loop_module, "LOOK_SECONDS", 3600.0)
    monkeypatch.setattr(loop_module.TrainingLoop, "look", watched)
    assert main(command(root, tmp_path / "deferred", *flags)) == 0
    assert looked == [[1, 2, 3, 4], [5, 6, 7, 8]]

    def without_seconds(path: Path) -> list[list[str]]:
        return [row.split(",")[:3] for row in path.read_text().splitlines()]

    for name in ("loss_log.csv", "vector_norms.csv", "evaluation.csv"):
        assert without_seconds(tmp_path / "deferred" / name) == without_seconds(tmp_path / "every" / name), name
    assert torch.equal(vectors_in(tmp_path / "deferred"), vectors_in(tmp_path / "every"))
