"""A tiny Stable-Diffusion-shaped pipeline with random weights, for the demo and the tests.

It has every part a real SD pipeline has (CLIP BPE tokenizer, CLIP text encoder, UNet, VAE,
noise scheduler, ``model_index.json``), so it goes through exactly the loading and training code a
real SD-1.5 folder does. It produces noise, not pictures, and is named so nobody mistakes it for a
real model.
"""

from __future__ import annotations

import json
from pathlib import Path

from .quiet import quiet_imports, quiet_library_progress

# Whole words the tiny tokenizer knows as single tokens, so initializers such as "painting"
# behave as they do with the real CLIP vocabulary, while unknown words split into letters.
KNOWN_WORDS = (
    "a", "an", "the", "of", "in", "on", "photo", "picture", "painting", "rendering", "art",
    "style", "cat", "dog", "toy", "object", "thing", "clean", "dark", "bright", "cool", "nice",
    "close", "up", "small", "large", "weird", "good", "cropped", "rendition", "my", "one", "by",
    "sculpture", "drawing", "sketch", "orange", "blue",
)


def write_tiny_tokenizer(folder: Path, extra_words: tuple[str, ...] = ()) -> None:
    """A CLIP BPE vocabulary of letters, digits, punctuation and ``KNOWN_WORDS``."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz0123456789*.,!?'-_<>()[]:;/&+":
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    merges: list[str] = []
    for word in KNOWN_WORDS + extra_words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merge = f"{pieces[0]} {pieces[1]}"
            joined = pieces[0] + pieces[1]
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(joined, len(vocab))
            pieces = [joined] + pieces[2:]
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    with quiet_imports():
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer(
            str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
        )
    tokenizer.save_pretrained(str(folder))


PIPELINE_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.27.0",
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDPMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def sd_scheduler(prediction_type: str = "epsilon"):
    """The noise schedule every SD-1/SD-2 model ships with."""
    with quiet_imports():
        from diffusers import DDPMScheduler

    return DDPMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        prediction_type=prediction_type,
        clip_sample=False,
        steps_offset=1,
    )


def write_pipeline_index(folder: Path) -> None:
    """``model_index.json``: what makes a folder a diffusers pipeline without a safety checker."""
    (folder / "model_index.json").write_text(json.dumps(PIPELINE_INDEX, indent=2), encoding="utf-8")


def build_tiny_pipeline(
    folder: Path,
    *,
    token_dim: int = 32,
    prediction_type: str = "epsilon",
    sample_size: int = 8,
    seed: int = 0,
) -> Path:
    """Save a random tiny SD pipeline in diffusers format to ``folder``.

    ``token_dim`` 768 or 1024 make it look like an SD-1 or SD-2 model to discovery;
    ``sample_size`` is in latents (8 gives 64-pixel images).
    """
    import torch

    with quiet_imports():
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    write_tiny_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=token_dim,
            intermediate_size=2 * token_dim,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=token_dim,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 32, 32),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=sample_size * 8,
    )
    scheduler = sd_scheduler(prediction_type)
    with quiet_library_progress():
        for name, part in (("text_encoder", text_encoder), ("unet", unet), ("vae", vae)):
            part.save_pretrained(str(folder / name))
    scheduler.save_pretrained(str(folder / "scheduler"))
    write_pipeline_index(folder)
    return folder
