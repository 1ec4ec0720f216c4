"""Describing one model from its files: base, text encoder widths, native resolution and
prediction type, read from a diffusers folder's small JSON configs, or for a single-file
checkpoint from its weights' names and shapes (``single_file``) and a weightless config folder.

Nothing here loads a weight: listing models must stay instant and offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import json_object_or_empty
from ..bases import BASE_SD1, BASE_SD2, BASE_SDXL, BASE_SDXL_REFINER, BASE_UNKNOWN, FORMAT_CHECKPOINT
from ..single_file import CheckpointProblem, read_shape, shipped_config
from .record import ModelInfo

BASE_BY_TOKEN_WIDTH = {768: BASE_SD1, 1024: BASE_SD2}
# Used when the configs do not say (a hub id that is not downloaded, a config without sizes).
FALLBACK_RESOLUTION = {BASE_SD1: 512, BASE_SD2: 768, BASE_SDXL: 1024, BASE_SDXL_REFINER: 1024}
DEFAULT_RESOLUTION = 512


def describe_model(
    name: str,
    location: str,
    path: Path | None,
    source: str,
    *,
    is_default: bool = False,
    description: str = "",
    stated_base: str = BASE_UNKNOWN,
) -> ModelInfo:
    """Fill in base, token widths and sizes from the config files alone; weights stay on disk.

    ``stated_base`` is what a models.yaml key says (InvokeAI 3.x); the folder's own configs win,
    and it decides only when there is no folder to read, e.g. a repo_id not downloaded yet.
    """
    if path is None:
        return ModelInfo(name, location, None, source, stated_base, None,
                         FALLBACK_RESOLUTION.get(stated_base, DEFAULT_RESOLUTION), "epsilon",
                         is_default, description)
    if path.is_file():
        return describe_checkpoint(name, location, path, source, is_default=is_default,
                                   description=description, stated_base=stated_base)
    index = json_object_or_empty(path / "model_index.json")
    token_dim = _token_width(path / "text_encoder")
    token_dim_2 = _token_width(path / "text_encoder_2")
    base = _base(path, index, token_dim)
    if base == BASE_UNKNOWN:
        base = stated_base
    resolution = _native_resolution(path) or FALLBACK_RESOLUTION.get(base, DEFAULT_RESOLUTION)
    return ModelInfo(name, location, path, source, base, token_dim, resolution, _prediction_type(path),
                     is_default, description, token_dim_2)


def _native_resolution(folder: Path) -> int | None:
    sample_size = json_object_or_empty(folder / "unet" / "config.json").get("sample_size")
    vae_blocks = json_object_or_empty(folder / "vae" / "config.json").get("block_out_channels")
    if isinstance(sample_size, int) and isinstance(vae_blocks, list) and vae_blocks:
        return sample_size * 2 ** (len(vae_blocks) - 1)
    return None


def _prediction_type(folder: Path) -> str:
    scheduler = json_object_or_empty(folder / "scheduler" / "scheduler_config.json")
    return str(scheduler.get("prediction_type") or "epsilon")


def describe_checkpoint(
    name: str,
    location: str,
    path: Path,
    source: str,
    *,
    config: Path | None = None,
    is_default: bool = False,
    description: str = "",
    stated_base: str = BASE_UNKNOWN,
) -> ModelInfo:
    """A single-file checkpoint: base and token widths from its weights' names and shapes (the
    header alone for .safetensors), sizes and prediction type from ``config`` (default: the
    folder shipped for its base). An unreadable file is described from ``stated_base``, and
    ``_usable`` says what is wrong with it."""
    try:
        shape = read_shape(path)
    except CheckpointProblem:
        base, token_dims = stated_base, ()
    else:
        base, token_dims = shape.base, shape.token_dims
    config = config or shipped_config(base)
    resolution, prediction_type = FALLBACK_RESOLUTION.get(base, DEFAULT_RESOLUTION), "epsilon"
    if config is not None:
        resolution = _native_resolution(config) or resolution
        prediction_type = _prediction_type(config)
    widths = (*token_dims, None, None)
    return ModelInfo(name, location, path, source, base, widths[0], resolution, prediction_type, is_default,
                     description, widths[1], FORMAT_CHECKPOINT, config)


def _token_width(text_encoder: Path) -> int | None:
    config = json_object_or_empty(text_encoder / "config.json")
    if isinstance(nested := config.get("text_config"), dict):
        config = nested
    width = config.get("hidden_size")
    return width if isinstance(width, int) else None


def _base(folder: Path, index: dict[str, Any], token_dim: int | None) -> str:
    """SDXL by its second text encoder, SD-1/SD-2 by token width.

    Widths other than 768 and 1024 come from tiny test and demo pipelines, which are built like
    SD-1 (one CLIP text encoder); calling them SD-1 keeps them trainable. ``token_dim`` still
    carries the real width, which is what embedding compatibility depends on.
    """
    class_name = str(index.get("_class_name", ""))
    if _has_part(folder, index, "text_encoder_2") or class_name.startswith("StableDiffusionXL"):
        return BASE_SDXL if _has_part(folder, index, "text_encoder") else BASE_SDXL_REFINER
    if token_dim in BASE_BY_TOKEN_WIDTH:
        return BASE_BY_TOKEN_WIDTH[token_dim]
    return BASE_SD1 if class_name.startswith("StableDiffusion") else BASE_UNKNOWN


def _is_sd_pipeline(folder: Path) -> bool:
    """Other pipelines in a shared cache (Flux, Kandinsky, ...) have no CLIP embedding to train."""
    class_name = json_object_or_empty(folder / "model_index.json").get("_class_name", "")
    return isinstance(class_name, str) and class_name.startswith("StableDiffusion")


def _has_part(folder: Path, index: dict[str, Any], part: str) -> bool:
    """Whether the pipeline has ``part``: model_index.json says so (a refiner's names
    ``text_encoder`` as ``[null, null]``); without an entry there, whether its folder exists."""
    if part in index:
        entry = index[part]
        return isinstance(entry, list) and bool(entry) and entry[0] is not None
    return (folder / part).is_dir()
