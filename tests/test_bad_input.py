"""Every input a user can get wrong ends in one sentence with the fix, and nothing finished is lost;
odd but usable images train normally."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from invokeai_ti.cli import main

FINISHED = {
    "embeddings/psychedelic/learned_embeds.bin": b"earlier embedding",
    "text-inversion-output/psychedelic/learned_embeds.safetensors": b"earlier output",
    "text-inversion-output/psychedelic/checkpoint-5/trainer_state.json": b"{}",
}


def base_command(root: Path) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", "--placeholder_token=psychedelic",
        "--resolution=64", "--train_batch_size=1", "--gradient_accumulation_steps=1",
        "--max_train_steps=2", "--mixed_precision=no", "--seed=1",
    ]


def with_flag(argv: list[str], flag: str) -> list[str]:
    name = flag.split("=")[0]
    return [a for a in argv if a.split("=")[0] != name] + [flag]


def bad_data_missing(root: Path, tmp: Path) -> str:
    return f"--train_data_dir={tmp / 'no-such-folder'}"


def bad_data_empty(root: Path, tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return f"--train_data_dir={tmp / 'empty'}"


def bad_data_not_images(root: Path, tmp: Path) -> str:
    folder = tmp / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a picture")
    (folder / "model.ckpt").write_bytes(b"\0" * 10)
    return f"--train_data_dir={folder}"


def bad_model_missing(root: Path, tmp: Path) -> str:
    return f"--model={tmp / 'no-such-model'}"


def bad_model_not_diffusers(root: Path, tmp: Path) -> str:
    folder = tmp / "just-a-folder"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0")
    return f"--model={folder}"


def bad_model_missing_part(root: Path, tmp: Path) -> str:
    folder = tmp / "no-unet"
    shutil.copytree(root / "models" / "diffusers" / "stable-diffusion-1.5", folder)
    shutil.rmtree(folder / "unet")
    return f"--model={folder}"


def bad_output_under_a_file(root: Path, tmp: Path) -> str:
    (tmp / "a-file").write_text("x")
    return f"--output_dir={tmp / 'a-file' / 'out'}"


def bad_initial_embedding_for_sdxl(root: Path, tmp: Path) -> str:
    """clip_l and clip_g of the tiny SDXL model's widths, given to the tiny SD-1 model (width 32)."""
    path = tmp / "sdxl-style.safetensors"
    save_file({"clip_l": torch.zeros(1, 32), "clip_g": torch.zeros(1, 48)}, str(path))
    return f"--initial_embedding={path}"


def literal(flag: str):
    return lambda root, tmp: flag


CASES = {
    "data folder missing": (bad_data_missing, "does not exist"),
    "data folder empty": (bad_data_empty, "is empty"),
    "data folder holds only non-images": (bad_data_not_images, "no usable image"),
    "empty trigger": (literal("--placeholder_token="), "No trigger term was given"),
    "trigger with a space": (literal("--placeholder_token=my cat"), "space"),
    "trigger with other characters": (literal("--placeholder_token=cat$"), "'$'"),
    "trigger named like the trainer's own files": (
        literal("--placeholder_token=Learned_Embeds-steps-500"), "name of the trainer's own files"
    ),
    "empty initializer": (literal("--initializer_token="), "initializer is empty"),
    "several-token initializer": (literal("--initializer_token=psychedelic"), "tokens for this model"),
    "model folder missing": (bad_model_missing, "does not exist"),
    "model folder is not a diffusers pipeline": (bad_model_not_diffusers, "model_index.json"),
    "model folder missing a part": (bad_model_missing_part, "unet"),
    "unknown model name": (literal("--model=sd-9000"), "Known models: stable-diffusion-1.5"),
    "resolution not a multiple of 8": (literal("--resolution=100"), "multiple of 8"),
    "zero steps": (literal("--max_train_steps=0"), "training steps must be at least 1"),
    "negative batch": (literal("--train_batch_size=-2"), "batch size must be at least 1"),
    "zero accumulation": (literal("--gradient_accumulation_steps=0"), "accumulation steps must be at least 1"),
    "negative learning rate": (literal("--learning_rate=-0.1"), "learning rate must be a positive number"),
    "fp16 on a CPU": (literal("--mixed_precision=fp16"), "Mixed precision fp16 needs a CUDA GPU"),
    "logger that is not installed": (literal("--report_to=wandb"), "needs wandb, which is not installed"),
    "output folder under a file": (bad_output_under_a_file, "cannot be written"),
    "SDXL embedding for an SD-1 model": (
        bad_initial_embedding_for_sdxl,
        "The embedding sdxl-style.safetensors was trained on an SDXL model (token widths 32 and 48), but "
        "stable-diffusion-1.5 is a model with one text encoder (token width 32)",
    ),
    "output folder on a read-only path": (literal("--output_dir=/proc/invokeai-ti-out"), "cannot be written"),
}


CPU_ONLY = {"fp16 on a CPU"}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_ends_in_a_sentence_and_loses_nothing(case, make_root, tmp_path, capsys):
    if case in CPU_ONLY and torch.cuda.is_available():
        pytest.skip("fp16 is a valid choice on this machine, which has a CUDA GPU")
    root = make_root()
    for relative, content in FINISHED.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    make_flag, fragment = CASES[case]
    code = main(with_flag(base_command(root), make_flag(root, tmp_path)))
    err = capsys.readouterr().err
    assert code != 0
    assert fragment in err
    assert "Traceback" not in err and err.strip().endswith(".")
    for relative, content in FINISHED.items():
        assert (root / relative).read_bytes() == content


def sdxl_refiner(tiny_sdxl_model: Path, tmp: Path) -> Path:
    folder = tmp / "refiner"
    shutil.copytree(tiny_sdxl_model, folder, ignore=shutil.ignore_patterns("text_encoder", "tokenizer"))
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    index.update(_class_name="StableDiffusionXLImg2ImgPipeline", text_encoder=[None, None], tokenizer=[None, None])
    (folder / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    return folder


def test_an_sdxl_refiner_is_refused_in_a_sentence(make_root, tiny_sdxl_model, tmp_path, capsys):
    root = make_root()
    model = sdxl_refiner(tiny_sdxl_model, tmp_path)
    code = main(with_flag(base_command(root), f"--model={model}"))
    err = capsys.readouterr().err
    assert code != 0
    assert "is an SDXL refiner, which cannot be trained" in err
    assert "Traceback" not in err and err.strip().endswith(".")
    assert not (root / "embeddings").exists()


def odd_images(folder: Path) -> None:
    """Every awkward-but-valid kind of file, plus one broken one, next to ordinary photos."""
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one pixel.png")
    Image.new("I;16", (40, 30), 40000).save(folder / "sixteen-bit.png")
    Image.new("CMYK", (50, 40), (0, 120, 200, 0)).save(folder / "cmyk.jpg")
    frames = [Image.new("P", (30, 30), i * 40) for i in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    palette = Image.new("P", (32, 32), 1)
    palette.info["transparency"] = 0
    palette.save(folder / "palette-transparent.png")
    Image.new("RGB", (30, 60), (0, 90, 0)).save(folder / "été 猫.webp")
    Image.new("RGB", (60, 30), (0, 0, 90)).save(folder / "UPPER.BMP")
    good = (folder / "good.jpg")
    Image.new("RGB", (64, 64), (10, 200, 10)).save(good)
    (folder / "broken.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (folder / "readme.txt").write_text("not a picture")


def test_odd_but_usable_images_train_with_only_a_note(make_root, capsys):
    root = make_root(images=2)
    odd_images(root / "text-inversion-training-data" / "psychedelic")
    assert main(base_command(root)) == 0
    out = capsys.readouterr().out
    assert "Skipping broken.jpg" in out and "Skipping readme.txt" in out
    assert (root / "embeddings" / "psychedelic" / "learned_embeds.bin").exists()
