"""Training on a single-file checkpoint: the weights in the original layout, the shape from a
weightless diffusers folder (shipped for SD-1.5, SD-2.1 768-v and SDXL base, or --model_config).

The checkpoints are the tiny diffusers models of conftest.py, written in the original layout by
tools/diffusers_to_original.py, so what the file holds is known to the bit.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from invokeai_ti.bases import BASE_SD1, BASE_SD2, BASE_SDXL, FORMAT_CHECKPOINT
from invokeai_ti.cli import main
from invokeai_ti.errors import UserError
from invokeai_ti.models import find_model
from invokeai_ti.paths import RootLayout
from invokeai_ti.settings import TrainingSettings
from invokeai_ti.single_file import CONFIGS, SHIPPED, clip_vocabulary, shipped_config, weightless_folder
from invokeai_ti.training import Trainer
from invokeai_ti.training.loading import PartLoader
from invokeai_ti.training.trainer import TrainingResult
from invokeai_ti.workflow import plan_run
from tools.diffusers_to_original import write_original_checkpoint
from tools.pipelines import build_tiny_pipeline

FAST = ["--resolution=64", "--train_batch_size=2", "--gradient_accumulation_steps=1", "--mixed_precision=no"]
TEXT_ENCODERS = {"text_encoder": "CLIPTextModel", "text_encoder_2": "CLIPTextModelWithProjection"}


def weightless_copy(folder: Path, target: Path) -> Path:
    """The folder as --model_config wants it: every config and tokenizer file, no weights."""
    return Path(shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin")))


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path_factory):
    """The shipped folders are assembled in the user's cache; here, in one of the test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def sd_checkpoint(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return (write_original_checkpoint(tiny_model, folder / "tiny-sd.safetensors"),
            weightless_copy(tiny_model, folder / "tiny-sd-config"))


@pytest.fixture(scope="module")
def sdxl_checkpoint(tiny_sdxl_model, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return (write_original_checkpoint(tiny_sdxl_model, folder / "tiny-sdxl.safetensors"),
            weightless_copy(tiny_sdxl_model, folder / "tiny-sdxl-config"))


def first_step(root: Path, model: str, output: Path, **changes) -> TrainingResult:
    """One training step, in this process so its loss comes back exact (loss_log.csv rounds it
    to six decimals); previews off, since the loss never uses the VAE's decoder they need (the
    decoder is compared bit for bit in test_checkpoint_parts_load_bit_identical_to_the_folder)."""
    settings = TrainingSettings(
        root=root, model=model, output_dir=output, placeholder_token="psychedelic", initializer_token="*",
        max_train_steps=1, train_batch_size=2, gradient_accumulation_steps=1, learning_rate=0.05, seed=5,
        mixed_precision="no", resolution=64, validation_prompt=("none",), **changes,
    )
    plan = plan_run(settings)
    return Trainer(plan.settings, plan.model, plan.data_dir, plan.output_dir, show_progress=False).run()


def assert_same_first_step(root: Path, folder_model: str, file: Path, config: Path, out: Path) -> None:
    """Tolerance zero, by this argument: the file's parts load bit-identical to the folder's
    (test_checkpoint_parts_load_bit_identical_to_the_folder), the seed, images and settings are the
    same, and every test process computes with one thread (conftest.py), so both runs perform the
    same IEEE float32 operations on the same bits in the same order; IEEE arithmetic is
    deterministic, so float32 rounding cannot differ between them. Any difference at all means
    something else was loaded, which is what this exists to catch (one weight one float32 step
    off changes the trained vectors)."""
    from_folder = first_step(root, folder_model, out / "folder")
    from_file = first_step(root, str(file), out / "file", model_config=config)
    assert from_folder.final_loss is not None and from_folder.final_loss > 0
    assert from_file.final_loss == from_folder.final_loss
    assert all(torch.equal(a, b) for a, b in zip(from_file.vectors, from_folder.vectors, strict=True))
    record = json.loads((out / "file" / "training_settings.json").read_text(encoding="utf-8"))
    assert record["model_location"] == str(file) and record["model_config"] == str(config)


def test_training_on_a_checkpoint_file_matches_training_on_its_folder(make_root, sd_checkpoint, tmp_path):
    file, config = sd_checkpoint
    assert_same_first_step(make_root(), "stable-diffusion-1.5", file, config, tmp_path)


def test_training_on_an_sdxl_checkpoint_file_matches_training_on_its_folder(make_root, tiny_sdxl_model,
                                                                            sdxl_checkpoint, tmp_path):
    """Through both of SDXL's text encoders, its pooled embedding and its time ids."""
    file, config = sdxl_checkpoint
    assert_same_first_step(make_root(), str(tiny_sdxl_model), file, config, tmp_path)


def sd2_checkpoint(tmp: Path) -> tuple[Path, Path]:
    """A tiny SD-2-shaped checkpoint: its text encoder in OpenCLIP's layout (cond_stage_model.model)."""
    folder = build_tiny_pipeline(tmp / "tiny-sd2")
    return (write_original_checkpoint(folder, tmp / "tiny-sd2.safetensors", text_layout="openclip"),
            weightless_copy(folder, tmp / "tiny-sd2-config"))


def pickle_free_ckpt(file: Path, tmp: Path) -> Path:
    """The same tensors as a .ckpt whose only other content is what weights_only allows."""
    target = tmp / file.with_suffix(".ckpt").name
    torch.save({"state_dict": load_file(str(file)), "global_step": 1000}, str(target))
    return target


@pytest.mark.parametrize("layout", ["SD-1", "SD-1 as .ckpt", "SD-2", "SDXL"])
def test_checkpoint_parts_load_bit_identical_to_the_folder(layout, sd_checkpoint, sdxl_checkpoint,
                                                         tiny_model, tiny_sdxl_model, tmp_path):
    if layout == "SD-2":
        file, config = sd2_checkpoint(tmp_path)
        folder, base = tmp_path / "tiny-sd2", BASE_SD2
    elif layout == "SDXL":
        (file, config), folder, base = sdxl_checkpoint, tiny_sdxl_model, BASE_SDXL
    else:
        (file, config), folder, base = sd_checkpoint, tiny_model, BASE_SD1
        if layout.endswith(".ckpt"):
            file = pickle_free_ckpt(file, tmp_path)
    model = find_model(str(file), RootLayout(tmp_path / "root"), model_config=config)
    assert (model.base, model.format, model.config) == (base, FORMAT_CHECKPOINT, config)
    loader = PartLoader(model, None)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    pairs = [(loader.part(part, torch.float32), kind.from_pretrained(str(folder), subfolder=part))
             for part, kind in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL))]
    pairs += [(loader.text_encoder(part, kind),
               getattr(transformers, kind).from_pretrained(str(folder), subfolder=part))
              for part, kind in TEXT_ENCODERS.items() if (folder / part).is_dir()]
    for from_file, from_folder in pairs:
        loaded, expected = from_file.state_dict(), from_folder.state_dict()
        assert loaded.keys() == expected.keys()
        assert all(torch.equal(loaded[name], expected[name]) for name in expected), type(from_file).__name__


def shapes_only(path: Path, widths: dict[str, int]) -> Path:
    """A file with an original checkpoint's names and, where the base is read from them, its real
    widths; one row each, since telling the base reads shapes and never values."""
    attention = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    tensors = {attention: torch.zeros(1, widths["context"]),
               "model.diffusion_model.out.2.weight": torch.zeros(1),
               "first_stage_model.decoder.conv_out.weight": torch.zeros(1)}
    tensors |= {key: torch.zeros(1, width) for key, width in widths.items() if key != "context"}
    save_file(tensors, str(path))
    return path


REAL_SHAPES = {
    BASE_SD1: {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": 768, "context": 768},
    BASE_SD2: {"cond_stage_model.model.token_embedding.weight": 1024, "context": 1024},
    BASE_SDXL: {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": 768,
                "conditioner.embedders.1.model.token_embedding.weight": 1280, "context": 2048},
}
# What each shipped folder says; SD-2 is assumed to be 768-v (v-prediction, 768 pixels).
NATIVE = {BASE_SD1: (512, "epsilon"), BASE_SD2: (768, "v_prediction"), BASE_SDXL: (1024, "epsilon")}


@pytest.mark.parametrize("base", list(REAL_SHAPES))
def test_base_of_a_real_sized_checkpoint_is_told_from_its_weights(base, tmp_path):
    file = shapes_only(tmp_path / "model.safetensors", REAL_SHAPES[base])
    model = find_model(str(file), RootLayout(tmp_path / "root"))
    widths = tuple(width for key, width in REAL_SHAPES[base].items() if key != "context")
    assert (model.base, model.token_dims, model.config) == (base, widths, shipped_config(base))
    assert (model.native_resolution, model.prediction_type) == NATIVE[base]


def test_tiny_sdxl_checkpoint_is_told_sdxl_from_its_weights(sdxl_checkpoint, tmp_path):
    file, config = sdxl_checkpoint
    model = find_model(str(file), RootLayout(tmp_path / "root"), model_config=config)
    assert (model.base, model.token_dims, model.native_resolution) == (BASE_SDXL, (32, 48), 64)


def test_an_sdxl_refiner_checkpoint_is_refused_as_a_refiner(tmp_path):
    """The refiner has only OpenCLIP bigG, as embedder 0; the UNet attends to its 1280 wide text."""
    file = shapes_only(tmp_path / "refiner.safetensors",
                       {"conditioner.embedders.0.model.token_embedding.weight": 1280, "context": 1280})
    with pytest.raises(UserError, match="is an SDXL refiner, which cannot be trained"):
        find_model(str(file), RootLayout(tmp_path / "root"))


# Published parameter counts of each part (the diffusers repos' weights and the papers' tables):
# SD-1.5 UNet 859,520,964; SD-2.x UNet 865,910,724; SDXL base UNet 2,567,463,684; the SD VAE
# 83,653,863; CLIP ViT-L/14's text encoder 123,060,480; OpenCLIP ViT-H/14's without its last layer
# (SD-2 uses the penultimate) 340,387,840; OpenCLIP bigG/14's with its projection 694,659,840.
PUBLISHED_COUNTS = {
    "sd-1.5": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd-2.1-768-v": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sdxl-base-1.0": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480,
                      "text_encoder_2": 694_659_840},
}


@pytest.mark.parametrize("name", list(PUBLISHED_COUNTS))
def test_shipped_configs_build_the_published_architectures(name):
    """Built on the meta device (no memory): every part has the published number of weights."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = CONFIGS / name
    counts = {}
    with init_empty_weights():
        for part, kind in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL)):
            counts[part] = kind.from_config(kind.load_config(str(folder), subfolder=part))
        for part, kind in TEXT_ENCODERS.items():
            if (folder / part).is_dir():
                config = transformers.CLIPTextConfig.from_pretrained(str(folder / part))
                counts[part] = getattr(transformers, kind)(config)
    built = {part: sum(p.numel() for p in module.parameters()) for part, module in counts.items()}
    assert built == PUBLISHED_COUNTS[name]
    assert name in SHIPPED.values()


def test_shipped_tokenizers_are_clips_vocabulary(tmp_path):
    """One shared vocabulary, assembled on first use, tokenizes as CLIP: "a photo of a cat" is
    CLIP's 320 1125 539 320 2368 between its start (49406) and end (49407) tokens. SD-2's and
    SDXL's second tokenizer pad with "!", CLIP's entry 0; SD-1's with the end token."""
    vocabulary, merges = clip_vocabulary()
    assert (len(vocabulary), len(merges)) == (49408, 48894)
    pads = {(BASE_SD1, "tokenizer"): 49407, (BASE_SD2, "tokenizer"): 0, (BASE_SDXL, "tokenizer"): 49407,
            (BASE_SDXL, "tokenizer_2"): 0}
    for (base, subfolder), pad in pads.items():
        folder = weightless_folder(shipped_config(base))
        assert not list(folder.rglob("*.safetensors"))
        tokenizer = transformers.CLIPTokenizer.from_pretrained(str(folder), subfolder=subfolder)
        assert len(tokenizer) == 49408 and tokenizer.pad_token_id == pad
        assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def lora_like(tmp: Path) -> str:
    path = tmp / "a-lora.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8)}, str(path))
    return str(path)


def torn(tmp: Path, sd_checkpoint: tuple[Path, Path]) -> str:
    data = sd_checkpoint[0].read_bytes()
    path = tmp / "torn.safetensors"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def needs_pickle(tmp: Path) -> str:
    path = tmp / "old.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.out.2.weight": torch.zeros(1)},
                "hyper_parameters": argparse.Namespace(lr=1.0)}, str(path))
    return str(path)


BAD_CHECKPOINTS = {
    "damaged": (lambda tmp, ckpt: [f"--model={torn(tmp, ckpt)}"], "could not be read as a checkpoint"),
    "of no known kind": (lambda tmp, ckpt: [f"--model={lora_like(tmp)}"], "is not a whole Stable Diffusion"),
    "a .ckpt that needs pickle": (lambda tmp, ckpt: [f"--model={needs_pickle(tmp)}"], "holds Python objects"),
    "of another shape than the shipped configs": (
        lambda tmp, ckpt: [f"--model={ckpt[0]}"],
        "has a text encoder 32 wide and a UNet attending to 32-wide text, but the configs in",
    ),
    "with a --model_config of another shape": (
        lambda tmp, ckpt: [f"--model={ckpt[0]}", f"--model_config={shipped_config(BASE_SD1)}"], "pass --model_config",
    ),
    "with a --model_config that does not exist": (
        lambda tmp, ckpt: [f"--model={ckpt[0]}", f"--model_config={tmp / 'nowhere'}"], "does not exist",
    ),
    "saved as a pipeline": (
        lambda tmp, ckpt: [f"--model={ckpt[0]}", f"--model_config={ckpt[1]}", "--no-only_save_embeds"],
        "is a single-file checkpoint; leave it out",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_a_checkpoint_that_cannot_be_trained_ends_in_one_sentence(case, make_root, sd_checkpoint, tmp_path, capsys):
    root = make_root()
    flags, fragment = BAD_CHECKPOINTS[case]
    code = main([f"--root={root}", "--placeholder_token=psychedelic", "--max_train_steps=1", *FAST,
                 *flags(tmp_path, sd_checkpoint)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and fragment in err
    assert "Traceback" not in err and err.endswith(".") and "\n" not in err
    assert not (root / "embeddings").exists()


def test_model_config_for_a_diffusers_folder_is_refused(make_root, sd_checkpoint, capsys):
    root = make_root()
    code = main([f"--root={root}", "--placeholder_token=psychedelic", f"--model_config={sd_checkpoint[1]}", *FAST])
    err = capsys.readouterr().err
    assert code != 0 and "is a diffusers folder with configs of its own; leave --model_config out" in err


def test_the_form_takes_a_checkpoint_with_its_config_folder(make_root, sd_checkpoint):
    """--model and --model_config given with --gui fill the form; OK hands both to the run. A
    saved config folder is dropped when the model chosen is a diffusers folder, which has its own."""
    from invokeai_ti.device import DeviceCaps
    from invokeai_ti.form.state import FormState
    from invokeai_ti.models import discover_models
    from invokeai_ti.workflow import check_run

    cpu = DeviceCaps("cpu", "CPU", 1, fp16=False, bf16=True, xformers=False, xformers_reason="not installed")
    root = make_root()
    file, config = sd_checkpoint
    layout = RootLayout(root)
    state = FormState.build({"model": str(file), "model_config": config, "placeholder_token": "psychedelic"},
                            layout=layout, caps=cpu, models=discover_models(layout), saved={})
    assert (state.values["model"], state.values["model_config"]) == (str(file), str(config))
    settings, problems = state.to_settings()
    assert not problems and settings.model_config == config
    plan, problems = check_run(settings, cpu)
    assert not problems and plan.model.format == FORMAT_CHECKPOINT and plan.model.config == config

    state = FormState.build({}, layout=layout, caps=cpu, models=discover_models(layout),
                            saved={"model_config": str(config)})
    assert state.values["model_config"] == "" and state.to_settings()[0].model_config is None


def test_an_edited_copy_of_a_shipped_folder_reads_an_sd2_512_base_checkpoint(tmp_path):
    """SD-2's 512 base and 768-v weights have the same shapes; the docs' recipe for the former
    (epsilon, 64 latents, no vocabulary of its own) gives its native size, prediction and CLIP's
    tokenizer."""
    config = Path(shutil.copytree(shipped_config(BASE_SD2), tmp_path / "sd-2.1-base"))
    scheduler, unet = config / "scheduler" / "scheduler_config.json", config / "unet" / "config.json"
    scheduler.write_text(json.dumps(json.loads(scheduler.read_text()) | {"prediction_type": "epsilon"}))
    unet.write_text(json.dumps(json.loads(unet.read_text()) | {"sample_size": 64}))
    file = shapes_only(tmp_path / "v2-1_512-ema-pruned.safetensors", REAL_SHAPES[BASE_SD2])
    model = find_model(str(file), RootLayout(tmp_path / "root"), model_config=config)
    assert (model.base, model.native_resolution, model.prediction_type) == (BASE_SD2, 512, "epsilon")
    tokenizer = PartLoader(model, None).tokenizer("tokenizer")
    assert len(tokenizer) == 49408 and tokenizer.pad_token_id == 0
    assert not (config / "tokenizer" / "vocab.json").exists(), "the user's folder is left as it was"


def test_a_checkpoint_listed_without_configs_gets_the_shipped_ones(tmp_path, monkeypatch):
    """Discovery may list a checkpoint from InvokeAI's database with its file and base alone (a
    stand-in list here: discovery is not what is checked); choosing it reads the weights, which
    pick the shipped configs."""
    from invokeai_ti.models import ModelInfo, ModelScan

    file = shapes_only(tmp_path / "dreamshaper.safetensors", REAL_SHAPES[BASE_SDXL])
    listed = ModelInfo("DreamShaper XL", str(file), file, "database", BASE_SDXL, None, 1024, "epsilon", False,
                       format=FORMAT_CHECKPOINT)
    scan = ModelScan()
    scan.add(listed, listed.name)
    monkeypatch.setattr("invokeai_ti.models.choice.scan_models", lambda layout: scan)
    model = find_model("DreamShaper XL", RootLayout(tmp_path / "root"))
    assert (model.name, model.config, model.token_dims) == ("DreamShaper XL", shipped_config(BASE_SDXL), (768, 1280))
