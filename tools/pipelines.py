"""Stable-Diffusion-shaped pipelines with random weights, for the tests and the benchmarks.

Two sizes, one set of builders: tiny ones (``build_tiny_pipeline``, ``build_tiny_sdxl_pipeline``)
that the tests train in seconds, and ones with SD-1.5's and SDXL base 1.0's exact architecture
(``build_sd15_random``, ``build_sdxl_random``) that ``benchmarks/bench.py`` times. They have every
part a real pipeline has (CLIP BPE tokenizers, CLIP text encoders, UNet, VAE, noise scheduler,
``model_index.json``), so they go through exactly the loading and training code a real SD-1.5 or
SDXL folder does. They produce noise, not pictures, and are named so nobody mistakes them for
real models.

Both tokenizers make the words they know single tokens with merges chained as CLIP's BPE applies
them (``_merge_words``): merges added for one word apply first to the next, and a naive chain from
the letters would leave such a word split.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz0123456789*.,!?'-_<>()[]:;/&+":
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    merges: list[str] = []
    _merge_words(KNOWN_WORDS + extra_words, vocab, merges)
    _save_tokenizer(folder, vocab, merges, pad_token)


def _merge_words(words: tuple[str, ...], vocab: dict[str, int], merges: list[str], limit: int | None = None) -> None:
    """Add the merges that make each word one token, after those already there.

    The word is first split as the merges so far split it, and joined from there, so every word
    ends whole however its letters were merged for the words before it. With ``limit`` the
    vocabulary stops growing at that size.
    """
    for word in words:
        pieces = _bpe_pieces(word, {merge: rank for rank, merge in enumerate(merges)})
        while len(pieces) > 1 and (limit is None or len(vocab) < limit):
            merge = f"{pieces[0]} {pieces[1]}"
            joined = pieces[0] + pieces[1]
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(joined, len(vocab))
            pieces = [joined] + pieces[2:]


def _save_tokenizer(folder: Path, vocab: dict[str, int], merges: list[str], pad_token: str) -> None:
    """``vocab.json`` and ``merges.txt``, then the ``CLIPTokenizer`` files made from them."""
    folder.mkdir(parents=True, exist_ok=True)
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


# --------------------------------------------------------------------------------------------
# Full size: SD-1.5's and SDXL base 1.0's architectures, for the benchmarks
# --------------------------------------------------------------------------------------------

CLIP_VOCAB_SIZE = 49408
# Words of the prompt templates beyond KNOWN_WORDS that the full-size vocabulary keeps whole.
TEMPLATE_WORDS = ("with", "there", "is", "rendition", "dirty", "clean", "cropped")


def _clip_byte_characters() -> list[str]:
    """CLIP's ``bytes_to_unicode``: printable bytes stand for themselves, the rest for 256 onwards."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_clip_sized_tokenizer(
    folder: Path, vocab_size: int = CLIP_VOCAB_SIZE, pad_token: str = "<|endoftext|>"
) -> None:
    """A CLIP BPE tokenizer with exactly ``vocab_size`` entries, laid out like CLIP's.

    The real CLIP vocabulary cannot be downloaded, so the merges are synthetic: CLIP's 256 byte
    characters (each also with ``</w>``), whole words of the prompt templates, then letter pairs,
    triples and quadruples up to ``vocab_size - 2`` entries, with ``<|startoftext|>`` and
    ``<|endoftext|>`` last (ids 49406 and 49407, as in CLIP). ``*`` is a single token. SDXL's
    second tokenizer has the same vocabulary and pads with ``!`` (``pad_token``).
    """
    chars = _clip_byte_characters()
    vocab = {symbol: index for index, symbol in enumerate(chars + [char + "</w>" for char in chars])}
    merges: list[str] = []
    limit = vocab_size - 2
    _merge_words(KNOWN_WORDS + TEMPLATE_WORDS, vocab, merges, limit)
    _fill_with_letter_merges(vocab, merges, limit)
    if len(vocab) != limit:
        raise RuntimeError(f"synthetic vocabulary has {len(vocab)} entries, expected {limit}")
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    _save_tokenizer(folder, vocab, merges, pad_token)
    with quiet_imports():
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(str(folder))
    if len(tokenizer) != vocab_size:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} entries, expected {vocab_size}")
    if len(tokenizer.encode("*", add_special_tokens=False)) != 1:
        raise RuntimeError("'*' is not a single token of the synthetic vocabulary")


def _fill_with_letter_merges(vocab: dict[str, int], merges: list[str], limit: int) -> None:
    """Letter pairs, then triples, then word-final quadruples, until the vocabulary has ``limit``."""
    letters = "etaoinshrdlcumwfgypbvkjxqz"

    def merge(left: str, right: str) -> None:
        joined = left + right
        if len(vocab) < limit and joined not in vocab and left in vocab and right in vocab:
            merges.append(f"{left} {right}")
            vocab[joined] = len(vocab)

    for a in letters:
        for b in letters:
            merge(a, b)
            merge(a, b + "</w>")
    for a in letters:
        for b in letters:
            for c in letters:
                merge(a + b, c)
                merge(a + b, c + "</w>")
    for a in letters:
        for b in letters:
            for c in letters:
                for d in letters:
                    merge(a + b + c, d + "</w>")


def save_random_pipeline(
    folder: Path, seed: int, parts: dict[str, Callable[[], Any]], *, tokenizers: dict[str, str], scheduler,
    index: dict[str, object],
) -> Path:
    """Build each part from ``seed`` and save it (one in memory at a time), then the tokenizers
    (name: pad token), the scheduler and ``model_index.json``; the folder appears only complete."""
    import torch

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    torch.manual_seed(seed)
    for name, pad_token in tokenizers.items():
        write_clip_sized_tokenizer(partial / name, pad_token=pad_token)
    counts = {}
    for name, build in parts.items():
        part = build()
        counts[name] = sum(p.numel() for p in part.parameters())
        with quiet_library_progress():
            part.save_pretrained(str(partial / name), safe_serialization=True)
        del part
    scheduler.save_pretrained(str(partial / "scheduler"))
    write_pipeline_index(partial, index)
    (partial / "parameter_counts.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def clip_text_config(width: int, layers: int, heads: int, activation: str, *, pad_token_id: int = 1, **extra):
    """A CLIP text encoder's configuration with the SD tokenizers' 49408-token vocabulary."""
    with quiet_imports():
        from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act=activation,
        bos_token_id=CLIP_VOCAB_SIZE - 2,
        eos_token_id=CLIP_VOCAB_SIZE - 1,
        pad_token_id=pad_token_id,
        **extra,
    )


# SD's VAE (the same architecture in SD-1, SD-2 and SDXL; SDXL scales its latents differently).
SD_VAE = {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32}
SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
SDXL_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
    norm_num_groups=32,
)


def build_sd15_random(folder: Path, seed: int = 0) -> Path:
    """Save a diffusers SD pipeline with SD-1.5's architecture and random weights (safetensors)."""
    with quiet_imports():
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

    text_config = clip_text_config(768, 12, 12, "quick_gelu", pad_token_id=CLIP_VOCAB_SIZE - 1, projection_dim=768)
    parts = {
        "text_encoder": lambda: CLIPTextModel(text_config),
        "vae": lambda: sd_vae(sample_size=512, **SD_VAE),
        "unet": lambda: UNet2DConditionModel(**SD15_UNET),
    }
    return save_random_pipeline(
        folder, seed, parts, tokenizers={"tokenizer": "<|endoftext|>"}, scheduler=sd_scheduler(),
        index=PIPELINE_INDEX,
    )


def build_sdxl_random(folder: Path, seed: int = 0) -> Path:
    """Save a diffusers SDXL base pipeline with SDXL 1.0's architecture and random weights."""
    with quiet_imports():
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

    parts = {
        "text_encoder": lambda: CLIPTextModel(clip_text_config(768, 12, 12, "quick_gelu", projection_dim=768)),
        "text_encoder_2": lambda: CLIPTextModelWithProjection(
            clip_text_config(1280, 32, 20, "gelu", projection_dim=1280)
        ),
        "vae": lambda: sd_vae(
            sample_size=1024, scaling_factor=SDXL_VAE_SCALING_FACTOR, force_upcast=True, **SD_VAE
        ),
        "unet": lambda: UNet2DConditionModel(**SDXL_UNET),
    }
    return save_random_pipeline(
        folder, seed, parts, tokenizers={"tokenizer": "<|endoftext|>", "tokenizer_2": "!"},
        scheduler=sdxl_scheduler(), index=SDXL_PIPELINE_INDEX,
    )
