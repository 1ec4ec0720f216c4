"""Real SDXL training on the tiny SDXL pipeline: both text encoders learn, the UNet is conditioned
as SDXL's own pipeline conditions it, and every guarantee of an SD-1 run holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import build_root, isolate
from PIL import Image
from safetensors.torch import load_file, save_file
from test_distributed import invokeai_ti_command, launch_two, run_one

from invokeai_ti.cli import main
from invokeai_ti.data.folder import TrainingImage
from invokeai_ti.data.images import image_geometry
from invokeai_ti.quiet import quiet_imports, quiet_library_progress
from invokeai_ti.training.family import StableDiffusionFamily, StableDiffusionXLFamily

TOKEN = "<psychedelic>"
MODEL = "sdxl-base"
# Bit-identical resumes are promised on a CPU always and on CUDA with --deterministic.
EXACT = ("--deterministic",) if torch.cuda.is_available() else ()


def command(root: Path, *extra: str) -> list[str]:
    return [
        f"--root={root}", f"--model={MODEL}", "--placeholder_token=psychedelic", "--resolution=64",
        "--train_batch_size=1", "--gradient_accumulation_steps=1", "--mixed_precision=no", "--seed=11",
        "--learning_rate=0.002", *EXACT, *extra,
    ]


def output_of(root: Path) -> Path:
    return root / "text-inversion-output" / "psychedelic"


def pair_in(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The trained vectors as the diffusers pair holds them: (clip_l, clip_g)."""
    return (load_file(str(folder / "learned_embeds.safetensors"))[TOKEN],
            load_file(str(folder / "learned_embeds_2.safetensors"))[TOKEN])


def load_pipeline(folder: Path):
    with quiet_imports():
        from diffusers import StableDiffusionXLPipeline
    with quiet_library_progress():
        pipe = StableDiffusionXLPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def root(tmp_path, tiny_sdxl_model) -> Path:
    return build_root(tmp_path / "invokeai", tiny_sdxl_model, MODEL)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_sdxl_model) -> Path:
    """One SDXL run of three vectors, through the CLI, shared by the tests that only read it."""
    with pytest.MonkeyPatch.context() as patch:
        isolate(patch, tmp_path_factory)
        root = build_root(tmp_path_factory.mktemp("trained") / "invokeai", tiny_sdxl_model, MODEL)
        assert main(command(root, "--max_train_steps=3", "--num_vectors=3", "--learning_rate=0.05")) == 0
    return root


def test_the_output_folder_holds_both_encoders_vectors_in_every_layout(trained):
    output = output_of(trained)
    invokeai = torch.load(output / "learned_embeds.bin", weights_only=True)
    assert set(invokeai) == {"clip_l", "clip_g"}
    assert (invokeai["clip_l"].shape, invokeai["clip_g"].shape) == ((3, 32), (3, 48))
    single = load_file(str(output / "psychedelic.safetensors"))
    assert set(single) == {"clip_l", "clip_g"}
    clip_l, clip_g = pair_in(output)
    for layout in (invokeai, single):
        assert torch.equal(layout["clip_l"], clip_l) and torch.equal(layout["clip_g"], clip_g)
    installed = torch.load(trained / "embeddings" / "psychedelic" / "learned_embeds.bin", weights_only=True)
    assert set(installed) == {"clip_l", "clip_g"}
    assert torch.equal(installed["clip_l"], clip_l) and torch.equal(installed["clip_g"], clip_g)


def test_diffusers_puts_each_trained_vector_in_its_own_encoder_and_every_original_row_stays(
    trained, tiny_sdxl_model
):
    pipe = load_pipeline(tiny_sdxl_model)
    before = [encoder.get_input_embeddings().weight.detach().clone()
              for encoder in (pipe.text_encoder, pipe.text_encoder_2)]
    installed = torch.load(trained / "embeddings" / "psychedelic" / "learned_embeds.bin", weights_only=True)
    pipe.load_textual_inversion(installed["clip_l"], token=TOKEN, text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(installed["clip_g"], token=TOKEN, text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    tokens = [TOKEN, f"{TOKEN}_1", f"{TOKEN}_2"]
    for tokenizer, encoder, key, original in zip(
        (pipe.tokenizer, pipe.tokenizer_2), (pipe.text_encoder, pipe.text_encoder_2), ("clip_l", "clip_g"), before
    ):
        weight = encoder.get_input_embeddings().weight.detach()
        assert torch.equal(weight[tokenizer.convert_tokens_to_ids(tokens)], installed[key])
        assert torch.equal(weight[: len(original)], original)
        star = original[tokenizer.convert_tokens_to_ids("*</w>")]
        assert not torch.allclose(installed[key][0], star), f"{key} should have moved from its initializer"
    result = pipe(f"a {TOKEN} painting", num_inference_steps=1, height=64, width=64, output_type="latent")
    assert torch.isfinite(result.images).all()


def test_the_unet_gets_the_conditioning_diffusers_sdxl_pipeline_gives_it(tiny_sdxl_model, tmp_path):
    """Both penultimate hidden states side by side, the second encoder's pooled output, and time
    ids laid out as the pipeline lays out (original size, crop corner, target size)."""
    pipe = load_pipeline(tiny_sdxl_model)
    prompt = "a photo of a cat"
    ids = [tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids for tokenizer in (pipe.tokenizer, pipe.tokenizer_2)]
    Image.new("RGB", (98, 64)).save(tmp_path / "wide.png")
    time_ids = StableDiffusionXLFamily().image_time_ids(
        [TrainingImage(tmp_path / "wide.png", None, None, None)], 32, center_crop=True
    )
    with torch.no_grad():
        ours = StableDiffusionXLFamily().conditioning([pipe.text_encoder, pipe.text_encoder_2], ids, time_ids[:, 0])
        context, _, pooled, _ = pipe.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False)
    assert torch.equal(ours["encoder_hidden_states"], context)
    assert torch.equal(ours["added_cond_kwargs"]["text_embeds"], pooled)
    theirs = pipe._get_add_time_ids((64, 98), (0, 8), (32, 32), dtype=torch.float32,
                                    text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim)
    assert torch.equal(ours["added_cond_kwargs"]["time_ids"], theirs)


def test_time_ids_tell_the_true_size_and_the_crop_really_taken(tmp_path):
    """Sizes come from the file, upright; crops are in the picture scaled to a short side of 32."""
    Image.new("RGB", (98, 64)).save(tmp_path / "wide.png")
    Image.new("RGB", (64, 98)).save(tmp_path / "tall.png")
    rotated = Image.new("RGB", (120, 60))
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    Image.new("RGB", (1024, 512)).save(tmp_path / "large.jpg")

    wide = image_geometry(tmp_path / "wide.png", 32, center_crop=True)
    assert (wide.height, wide.width, wide.crop_top, wide.crop_left) == (64, 98, 0, 8)
    assert wide.mirrored_crop_left == 9, "the square lies 9 from the right edge in a picture 49 wide"
    tall = image_geometry(tmp_path / "tall.png", 32, center_crop=True)
    assert (tall.height, tall.width, tall.crop_top, tall.crop_left, tall.mirrored_crop_left) == (98, 64, 8, 0, 0)
    squashed = image_geometry(tmp_path / "wide.png", 32, center_crop=False)
    assert (squashed.crop_top, squashed.crop_left, squashed.mirrored_crop_left) == (0, 0, 0)
    turned = image_geometry(tmp_path / "rotated.jpg", 32, center_crop=False)
    assert (turned.height, turned.width) == (120, 60), "EXIF orientation 6 stands the picture upright"
    large = image_geometry(tmp_path / "large.jpg", 64, center_crop=False)
    assert (large.height, large.width) == (512, 1024), "a JPEG decoded at a fraction keeps its own size"

    table = StableDiffusionXLFamily().image_time_ids(
        [TrainingImage(tmp_path / "wide.png", None, None, None)], 32, center_crop=True
    )
    assert table.tolist() == [[[64, 98, 0, 8, 32, 32], [64, 98, 0, 9, 32, 32]]]


@pytest.mark.parametrize(
    ("family", "precision", "force_upcast", "expected"),
    [
        (StableDiffusionXLFamily(), torch.float16, True, torch.float32),
        (StableDiffusionXLFamily(), torch.float16, False, torch.float16),
        (StableDiffusionXLFamily(), torch.bfloat16, True, torch.bfloat16),
        (StableDiffusionFamily(), torch.float16, True, torch.float16),
    ],
    ids=["SDXL fp16", "SDXL fp16 with an fp16-safe VAE", "SDXL bf16", "SD-1 fp16"],
)
def test_sdxls_vae_encodes_the_cache_in_fp32_where_fp16_would_overflow(family, precision, force_upcast, expected):
    assert family.vae_dtype(precision, {"force_upcast": force_upcast}) == expected


def test_a_resumed_sdxl_run_ends_bit_identical_to_one_left_alone(root, tmp_path):
    straight = tmp_path / "straight"
    assert main(command(root, "--max_train_steps=4", f"--output_dir={straight}")) == 0
    assert main(command(root, "--max_train_steps=2", "--checkpointing_steps=1")) == 0
    assert main(command(root, "--max_train_steps=4", "--resume_from_checkpoint=latest")) == 0
    resumed, alone = pair_in(output_of(root)), pair_in(straight)
    assert torch.equal(resumed[0], alone[0]) and torch.equal(resumed[1], alone[1])
    state = json.loads((output_of(root) / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["shape"]["token_dims"] == [32, 48]


@pytest.mark.slow
def test_two_processes_train_one_sdxl_embedding_like_one_process_at_twice_the_batch(root, tmp_path):
    if invokeai_ti_command() is None:
        pytest.skip("the invokeai-ti console script is not installed")
    data = root / "text-inversion-training-data" / "psychedelic"
    common = [f"--train_data_dir={data}", "--gradient_accumulation_steps=2", "--max_train_steps=2"]
    two = launch_two(root, *command(root, *common, "--train_batch_size=1", f"--output_dir={tmp_path / 'two'}"))
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_one(*command(root, *common, "--train_batch_size=2", f"--output_dir={tmp_path / 'one'}"))
    assert one.returncode == 0, one.stderr[-3000:]
    for from_two, from_one in zip(pair_in(tmp_path / "two"), pair_in(tmp_path / "one")):
        assert torch.allclose(from_two, from_one, atol=1e-6, rtol=0)


def test_training_continues_from_an_sdxl_embedding(root, tmp_path):
    start = {"clip_l": torch.randn(2, 32), "clip_g": torch.randn(2, 48)}
    save_file(start, str(tmp_path / "earlier.safetensors"))
    flags = ["--max_train_steps=1", "--learning_rate=1e-9", f"--initial_embedding={tmp_path / 'earlier.safetensors'}"]
    assert main(command(root, *flags)) == 0
    clip_l, clip_g = pair_in(output_of(root))
    assert torch.allclose(clip_l, start["clip_l"], atol=1e-4) and torch.allclose(clip_g, start["clip_g"], atol=1e-4)


def test_an_sd1_embedding_given_to_an_sdxl_run_is_refused_naming_both_widths(root, tmp_path, capsys):
    save_file({TOKEN: torch.zeros(1, 32)}, str(tmp_path / "sd1.safetensors"))
    assert main(command(root, "--max_train_steps=1", f"--initial_embedding={tmp_path / 'sd1.safetensors'}")) == 2
    err = capsys.readouterr().err
    assert (
        "The embedding sd1.safetensors was trained on a model with one text encoder (token width 32), but "
        f"{MODEL} is an SDXL model (token widths 32 and 48); pass an SDXL embedding (" in err
    )
    assert "Traceback" not in err and not (root / "embeddings").exists()


@pytest.mark.parametrize(
    ("flag", "fragment"),
    [
        ("--placeholder_token=learned_embeds_2", "is the name of one of the files an SDXL embedding is saved in"),
        ("--initializer_token=psychedelic art", "is 12 tokens for this model"),
    ],
)
def test_bad_sdxl_input_ends_in_one_sentence(root, capsys, flag, fragment):
    argv = [a for a in command(root, "--max_train_steps=1") if a.split("=")[0] != flag.split("=")[0]] + [flag]
    argv.append(f"--train_data_dir={root / 'text-inversion-training-data' / 'psychedelic'}")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count(fragment) == 1, "a problem both tokenizers share is said once"
    assert "Traceback" not in err and not (root / "embeddings").exists()


def test_full_pipeline_export_knows_the_trigger_in_both_encoders(root):
    assert main(command(root, "--max_train_steps=1", "--no-only_save_embeds")) == 0
    pipe = load_pipeline(output_of(root) / "pipeline")
    for tokenizer, encoder, trained in zip(
        (pipe.tokenizer, pipe.tokenizer_2), (pipe.text_encoder, pipe.text_encoder_2), pair_in(output_of(root))
    ):
        token_id = tokenizer.convert_tokens_to_ids(TOKEN)
        assert torch.equal(encoder.get_input_embeddings().weight[token_id].detach(), trained[0])
    assert pipe.tokenizer_2.pad_token == "!", "each tokenizer is saved as its own"


def test_an_sdxl_model_chosen_in_the_form_trains_at_its_size_and_installs_both_encoders(root):
    """The form's path (its state, its validation, the shared run) with an SDXL model chosen."""
    from invokeai_ti.device import detect
    from invokeai_ti.form.state import FormState
    from invokeai_ti.models import scan_models
    from invokeai_ti.paths import RootLayout
    from invokeai_ti.workflow import run_plan

    layout = RootLayout(root)
    state = FormState.build({}, layout=layout, caps=detect(), models=scan_models(layout).models, saved={})
    state.model_chosen(MODEL)
    assert state.values["resolution"] == 64, "the tiny SDXL model's native size is chosen"
    assert state.values["train_batch_size"] == 1, "SDXL on a CPU defaults to batch 1"
    state.trigger_edited("psychedelic")
    state.values.update(max_train_steps=2, gradient_accumulation_steps=1, validation_prompt="none")
    plan, problems = state.validate()
    assert problems == [] and plan is not None and plan.model.base == "SDXL"
    outcome = run_plan(plan, notify=lambda _text: None, show_progress=False)
    installed = torch.load(outcome.installed, weights_only=True)
    assert sorted(installed) == ["clip_g", "clip_l"]
    assert installed["clip_l"].shape == (1, 32) and installed["clip_g"].shape == (1, 48)
