"""Tiny Stable-Diffusion-shaped pipelines with random weights, for the demo and the tests.

They have every part a real pipeline has (CLIP BPE tokenizers, CLIP text encoders, UNet, VAE,
noise scheduler, ``model_index.json``), so they go through exactly the loading and training code a
real SD-1.5 or SDXL folder does. They produce noise, not pictures, and are named so nobody
mistakes them for real models.
"""

from __future__ import annotations

import json
from pathlib import Path

from invokeai_ti.quiet import quiet_imports, quiet_library_progress

# Whole words the tiny tokenizer knows as single tokens, so initializers such as "painting"
# behave as they do with the real CLIP vocabulary, while unknown words split into letters.
KNOWN_WORDS = (
    "a", "an", "the", "of", "in", "on", "photo", "picture", "painting", "rendering", "art",
    "style", "cat", "dog", "toy", "object", "thing", "clean", "dark", "bright", "cool", "nice",
    "close", "up", "small", "large", "weird", "good", "cropped", "rendition", "my", "one", "by",
    "sculpture", "drawing", "sketch", "orange", "blue",
)


def write_tiny_tokenizer(
    folder: Path, extra_words: tuple[str, ...] = (), *, pad_token: str = "<|endoftext|>"
) -> None:
    """A CLIP BPE vocabulary of letters, digits, punctuation and ``KNOWN_WORDS``.

    ``pad_token`` exists because SDXL's second tokenizer pads with "!" where the first pads with
    the end token; code that mixes the two up should fail on the tiny model as on the real one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz0123456789*.,!?'-_<>()[]:;/&+":
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    merges: list[str] = []
    for word in KNOWN_WORDS + extra_words:
        pieces = _bpe_pieces(word, {merge: rank for rank, merge in enumerate(merges)})
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
            str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77,
            pad_token=pad_token,
        )
    tokenizer.save_pretrained(str(folder))


def _bpe_pieces(word: str, ranks: dict[str, int]) -> list[str]:
    """How CLIP's BPE splits ``word`` with the merges so far: the lowest-ranked pair first.

    A word is made whole by chaining merges from these pieces, not from its letters: merges added
    for earlier words ("c l" from "clean") apply first and would otherwise leave "circle" split.
    """
    pieces = list(word[:-1]) + [word[-1] + "</w>"]
    while len(pieces) > 1:
        pairs = [(ranks.get(f"{a} {b}"), index) for index, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        known = [(rank, index) for rank, index in pairs if rank is not None]
        if not known:
            break
        _, index = min(known)
        pieces[index:index + 2] = [pieces[index] + pieces[index + 1]]
    return pieces


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


# The noise schedule every SD-1, SD-2 and SDXL model ships with; the families differ only in the
# sampler class around it.
SD_NOISE_SCHEDULE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
}


def sd_scheduler(prediction_type: str = "epsilon"):
    """SD-1 and SD-2's scheduler: DDPM, without sample clipping."""
    with quiet_imports():
        from diffusers import DDPMScheduler

    return DDPMScheduler(**SD_NOISE_SCHEDULE, prediction_type=prediction_type, clip_sample=False)


# What every tiny UNet shares: two small blocks, one layer each; the families differ in where
# cross-attention sits and what else conditions the UNet.
TINY_UNET = {"in_channels": 4, "out_channels": 4, "layers_per_block": 1, "block_out_channels": (32, 64),
             "norm_num_groups": 8}


def write_pipeline_index(folder: Path, index: dict[str, object] = PIPELINE_INDEX) -> None:
    """``model_index.json``: what makes a folder a diffusers pipeline (here without a safety checker)."""
    (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


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
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    vocab_size = _write_tokenizer(folder / "tokenizer")
    text_encoder = CLIPTextModel(_text_config(vocab_size, token_dim))
    unet = UNet2DConditionModel(
        **TINY_UNET,
        sample_size=sample_size,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=token_dim,
        attention_head_dim=4,
    )
    _save_parts(folder, text_encoder=text_encoder, unet=unet, vae=_tiny_vae(sample_size))
    sd_scheduler(prediction_type).save_pretrained(str(folder / "scheduler"))
    write_pipeline_index(folder)
    return folder


SDXL_PIPELINE_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "_diffusers_version": "0.27.0",
    "force_zeros_for_empty_prompt": True,
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
# SDXL conditions its UNet on (original height, width, crop top, crop left, target height, width).
SDXL_TIME_IDS = 6
# SDXL's VAE latents are scaled by this instead of SD's 0.18215; training must read it from the VAE.
SDXL_VAE_SCALING_FACTOR = 0.13025


def sdxl_scheduler():
    """SDXL base's scheduler: Euler, with "leading" timestep spacing."""
    with quiet_imports():
        from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(**SD_NOISE_SCHEDULE, prediction_type="epsilon", timestep_spacing="leading")


def build_tiny_sdxl_pipeline(
    folder: Path,
    *,
    token_dims: tuple[int, int] = (32, 48),
    projection_dim: int = 40,
    time_embed_dim: int = 8,
    sample_size: int = 8,
    seed: int = 0,
) -> Path:
    """Save a random tiny SDXL base pipeline in diffusers format to ``folder``.

    The two text encoders have different widths (``token_dims``, clip_l's then clip_g's) and the
    second projects to yet another width, so code that swaps the encoders, their outputs or the
    pooled embedding fails with a shape error instead of training silently on the wrong one.
    ``sample_size`` is in latents (8 gives 64-pixel images).
    """
    import torch

    with quiet_imports():
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(folder)
    torch.manual_seed(seed)
    width_l, width_g = token_dims
    vocab_size = _write_tokenizer(folder / "tokenizer")
    _write_tokenizer(folder / "tokenizer_2", pad_token="!")
    text_encoder = CLIPTextModel(_text_config(vocab_size, width_l))
    text_encoder_2 = CLIPTextModelWithProjection(
        _text_config(vocab_size, width_g, projection_dim=projection_dim)
    )
    unet = UNet2DConditionModel(
        **TINY_UNET,
        sample_size=sample_size,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=width_l + width_g,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=projection_dim + SDXL_TIME_IDS * time_embed_dim,
    )
    vae = _tiny_vae(sample_size, scaling_factor=SDXL_VAE_SCALING_FACTOR, force_upcast=True)
    _save_parts(folder, text_encoder=text_encoder, text_encoder_2=text_encoder_2, unet=unet, vae=vae)
    sdxl_scheduler().save_pretrained(str(folder / "scheduler"))
    write_pipeline_index(folder, SDXL_PIPELINE_INDEX)
    return folder


def _write_tokenizer(folder: Path, *, pad_token: str = "<|endoftext|>") -> int:
    """Write the tiny tokenizer and return its vocabulary size, which the text encoder needs."""
    write_tiny_tokenizer(folder, pad_token=pad_token)
    with quiet_imports():
        from transformers import CLIPTokenizer

        return len(CLIPTokenizer.from_pretrained(str(folder)))


def _text_config(vocab_size: int, width: int, **extra: int):
    with quiet_imports():
        from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        **extra,
    )


def sd_vae(*, block_out_channels: tuple[int, ...], layers_per_block: int, norm_num_groups: int,
           sample_size: int, **extra: object):
    """SD's VAE shape (four blocks, 8x down to four latent channels) at the given widths."""
    with quiet_imports():
        from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=block_out_channels,
        latent_channels=4,
        layers_per_block=layers_per_block,
        norm_num_groups=norm_num_groups,
        sample_size=sample_size,
        **extra,
    )


def _tiny_vae(sample_size: int, **extra: object):
    return sd_vae(block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=8,
                  sample_size=sample_size * 8, **extra)


def _save_parts(folder: Path, **parts) -> None:
    with quiet_library_progress():
        for name, part in parts.items():
            part.save_pretrained(str(folder / name))
