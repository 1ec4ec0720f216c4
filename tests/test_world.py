"""The world, its shipped model and its judge: what every learning check stands on."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from PIL import Image

from invokeai_ti.data.templates import OBJECT_TEMPLATES, STYLE_TEMPLATES
from invokeai_ti.models import pipeline_problem
from invokeai_ti.world import JUDGE_WEIGHTS, WORLD_MODEL, WORLD_MODEL_SDXL, is_world_model
from invokeai_ti.world.judge import judge, judge_many, share_showing
from invokeai_ti.world.scene import COLOURS, PAIRS, SHAPES, SIZE, all_captions, caption, draw, samples
from tools.vocabulary import INITIALIZERS, PROMPT_WORDS, write_world_tokenizer

HELD_OUT_SEED = 424_242


def test_the_generator_repeats_itself_for_a_seed_and_varies_every_drawing():
    first = [sample.image.tobytes() for sample in samples(seed=7, count=12)]
    again = [sample.image.tobytes() for sample in samples(seed=7, count=12)]
    other = [sample.image.tobytes() for sample in samples(seed=8, count=12)]
    assert first == again
    assert first != other
    rng = random.Random(1)
    stars = {draw("red", "star", rng).tobytes() for _ in range(5)}
    assert len(stars) == 5


def test_every_run_of_48_samples_shows_each_pair_once_with_its_caption():
    batch = list(samples(seed=3, count=len(PAIRS)))
    assert sorted((s.colour, s.shape) for s in batch) == sorted(PAIRS)
    for sample in batch:
        assert f"{sample.colour} {sample.shape}" in sample.caption
        assert sample.image.size == (SIZE, SIZE)
    assert caption("red", "star") == "a photo of a red star"


def test_the_world_has_the_colours_and_shapes_the_issue_asks_for():
    assert {"red", "orange", "yellow", "green", "blue", "purple", "white", "black"} <= set(COLOURS)
    assert {"circle", "square", "triangle", "star", "ring", "cross"} <= set(SHAPES)


def test_every_caption_template_initializer_and_prompt_word_is_one_whole_token(tmp_path):
    from transformers import CLIPTokenizer

    write_world_tokenizer(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp_path))
    texts = all_captions() + [t.format("") for t in OBJECT_TEMPLATES + STYLE_TEMPLATES]
    texts += list(INITIALIZERS) + list(PROMPT_WORDS)
    for text in texts:
        for piece in tokenizer.tokenize(text):
            assert piece.endswith("</w>"), f"{text!r} splits a word: {tokenizer.tokenize(text)}"
    assert len(tokenizer.tokenize("zorb")) > 1, "an unknown word falls back to pieces"


def test_the_judge_reads_fresh_world_pictures_at_least_98_percent_right_at_any_size():
    batch = list(samples(seed=HELD_OUT_SEED, count=480))
    truth = [(s.colour, s.shape) for s in batch]
    native = judge_many([s.image for s in batch])
    larger = judge_many([s.image.resize((4 * SIZE, 4 * SIZE), Image.Resampling.BICUBIC) for s in batch])
    assert sum(v == t for v, t in zip(native, truth)) / len(truth) >= 0.98
    assert sum(v == t for v, t in zip(larger, truth)) / len(truth) >= 0.98
    stars = [draw("red", "star", random.Random(i)) for i in range(10)]
    assert share_showing(stars, "red", "star") >= 0.9
    assert share_showing(stars, "blue", "star") == 0.0
    assert share_showing([], "red", "star") == 0.0


def test_the_judge_command_prints_each_verdict(tmp_path):
    path = tmp_path / "green-ring.png"
    draw("green", "ring", random.Random(5)).save(path)
    result = subprocess.run([sys.executable, "-m", "invokeai_ti.world.judge", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: green ring"


def test_the_shipped_folder_is_a_small_complete_sd1_pipeline_marked_as_the_world(tmp_path):
    assert is_world_model(WORLD_MODEL)
    write_world_tokenizer(tmp_path)
    assert (WORLD_MODEL / "tokenizer" / "vocab.json").read_text() == (tmp_path / "vocab.json").read_text()
    assert (WORLD_MODEL / "tokenizer" / "merges.txt").read_text() == (tmp_path / "merges.txt").read_text()
    assert pipeline_problem(WORLD_MODEL) is None
    assert (WORLD_MODEL / JUDGE_WEIGHTS).is_file()
    size = sum(path.stat().st_size for path in WORLD_MODEL.rglob("*") if path.is_file())
    assert size <= 10_000_000


def test_the_shipped_sdxl_folder_is_a_complete_sdxl_pipeline_of_the_same_world_and_judge(tmp_path):
    """Two tokenizers (the second padding with "!"), two text encoders of different widths, a UNet
    conditioned on the pooled text and the time ids, the SD-1 world's own judge, at most 15 MB."""
    import json

    assert is_world_model(WORLD_MODEL_SDXL)
    assert pipeline_problem(WORLD_MODEL_SDXL) is None
    index = json.loads((WORLD_MODEL_SDXL / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    write_world_tokenizer(tmp_path)
    for name, pad in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
        folder = WORLD_MODEL_SDXL / name
        assert (folder / "vocab.json").read_text() == (tmp_path / "vocab.json").read_text()
        assert json.loads((folder / "tokenizer_config.json").read_text())["pad_token"] == pad
    widths = [json.loads((WORLD_MODEL_SDXL / name / "config.json").read_text())["hidden_size"]
              for name in ("text_encoder", "text_encoder_2")]
    assert widths[0] != widths[1]
    unet = json.loads((WORLD_MODEL_SDXL / "unet" / "config.json").read_text())
    assert unet["addition_embed_type"] == "text_time" and unet["cross_attention_dim"] == sum(widths)
    assert (WORLD_MODEL_SDXL / JUDGE_WEIGHTS).read_bytes() == (WORLD_MODEL / JUDGE_WEIGHTS).read_bytes()
    size = sum(path.stat().st_size for path in WORLD_MODEL_SDXL.rglob("*") if path.is_file())
    assert size <= 15_000_000


def test_a_random_tiny_model_is_not_taken_for_the_world(tiny_model):
    assert not is_world_model(tiny_model)


@pytest.mark.parametrize("model, colour, shape", [
    (WORLD_MODEL, "red", "circle"), (WORLD_MODEL, "blue", "square"), (WORLD_MODEL, "yellow", "star"),
    (WORLD_MODEL_SDXL, "red", "circle"), (WORLD_MODEL_SDXL, "yellow", "triangle"),
], ids=["sd1-red-circle", "sd1-blue-square", "sd1-yellow-star", "sdxl-red-circle", "sdxl-yellow-triangle"])
def test_the_shipped_models_draw_what_their_captions_say(model, colour, shape):
    from tools.evaluate import draw_captions, load_pipeline

    pipeline = load_pipeline(model)
    pictures = draw_captions(pipeline, [caption(colour, shape)] * 6, seed=0)
    assert share_showing(pictures, colour, shape) >= 4 / 6, judge_many(pictures)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_pretraining_runs_end_to_end_into_a_loadable_world_folder_and_repeats_exactly(family, tmp_path):
    """One command, one code path, either family; the SDXL world reuses the SD-1 world's judge."""
    from tools.evaluate import draw_captions, load_pipeline
    from tools.pretrain import main

    tiny = ["--family", family, "--images", "96", "--batch", "8", "--judge-steps", "2", "--vae-steps", "2",
            "--unet-steps", "2"]
    assert main(["--out", str(tmp_path / "a"), "--seed", "5", *tiny]) == 0
    assert main(["--out", str(tmp_path / "b"), "--seed", "5", *tiny]) == 0
    folder = tmp_path / "a"
    assert is_world_model(folder)
    assert pipeline_problem(folder) is None
    parts = ["unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"]
    if family == "sdxl":
        parts.append("text_encoder_2/model.safetensors")
        assert (folder / JUDGE_WEIGHTS).read_bytes() == (WORLD_MODEL / JUDGE_WEIGHTS).read_bytes()
    for weights in parts:
        assert (folder / weights).read_bytes() == (tmp_path / "b" / weights).read_bytes(), weights
    picture = draw_captions(load_pipeline(folder), ["a photo of a red star"], seed=0)[0]
    assert picture.size == (SIZE, SIZE)
    assert judge(picture, folder / JUDGE_WEIGHTS)[0] in COLOURS
