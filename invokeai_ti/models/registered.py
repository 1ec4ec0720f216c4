"""The models an InvokeAI root registers: the diffusers entries of a 2.3 or 3.x
``configs/models.yaml`` and the main-model rows of 4.x-7.x's database (read by ``invokeai_db``),
each described with the name and the full key the user knows it by.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from ..bases import (
    BASE_SD1, BASE_SD2, BASE_SDXL, BASE_SDXL_REFINER, BASE_UNKNOWN, FORMAT_CHECKPOINT, FORMAT_DIFFUSERS,
)
from ..invokeai_db import ModelRecord, read_model_records
from ..paths import RootLayout
from ..yaml_file import YamlFileError, read_yaml
from .describe import DEFAULT_RESOLUTION, FALLBACK_RESOLUTION, describe_model
from .hub_cache import _cached_snapshot
from .problems import REFINER_PROBLEM
from .record import SOURCE_DATABASE, SOURCE_YAML, ModelInfo

# InvokeAI 3.x names the base in the first part of a models.yaml key (sdxl-refiner/main/<name>);
# 4.x and later use the same names in a database record's ``base``.
BASE_BY_INVOKEAI3_KEY = {
    "sd-1": BASE_SD1, "sd-2": BASE_SD2, "sdxl": BASE_SDXL, "sdxl-refiner": BASE_SDXL_REFINER,
}
INVOKEAI3_MAIN_TYPE = "main"
METADATA_KEY = "__metadata__"
# The text encoder widths each InvokeAI base has, for a checkpoint whose configs are not on disk.
TOKEN_DIMS_BY_BASE = {
    BASE_SD1: (768, None), BASE_SD2: (1024, None), BASE_SDXL: (768, 1280), BASE_SDXL_REFINER: (None, 1280),
}
# Why an InvokeAI variant of an SD model cannot be trained: its UNet wants more than the noise.
VARIANT_PROBLEMS = {
    "inpaint": "is an inpainting model: its UNet also takes a mask and a masked image, which "
               "training does not give it",
    "depth": "is a depth-to-image model: its UNet also takes a depth map, which training does not give it",
}


def _models_yaml_entries(
    layout: RootLayout, caches: list[Path], notes: list[str]
) -> Iterator[tuple[ModelInfo, str]]:
    """Diffusers entries of a 2.3 or 3.x models.yaml with their full keys.

    Checkpoint entries, and 3.x entries that are not main models (LoRAs, VAEs, embeddings),
    are skipped without a note: they are valid, just not something to train an embedding on.
    """
    file = layout.models_yaml
    if not file.is_file():
        return
    try:
        config = read_yaml(file)
    except YamlFileError as error:
        notes.append(f"{error}, so its models are not listed; fix or remove it.")
        return
    if config is None:
        return
    if not isinstance(config, dict):
        notes.append(f"{file} is not a list of named models, so it was skipped; fix or remove it.")
        return
    for key, entry in config.items():
        key = str(key)
        if key == METADATA_KEY:
            continue
        parts = key.split("/")
        if len(parts) == 3 and parts[1] != INVOKEAI3_MAIN_TYPE:
            continue
        if not isinstance(entry, dict):
            notes.append(f"The models.yaml entry {key} is not a set of settings, so it was skipped.")
            continue
        if str(entry.get("format", "diffusers")).lower() != "diffusers" or "weights" in entry:
            continue
        if entry.get("path"):
            location = str(entry["path"])
            path = _configured_folder(layout, location)
        elif entry.get("repo_id"):
            location = str(entry["repo_id"])
            path = _cached_snapshot(location, caches)
        else:
            notes.append(f"The models.yaml entry {key} has neither a path nor a repo_id, so it was skipped.")
            continue
        name = parts[-1] if len(parts) == 3 else key
        stated_base = BASE_BY_INVOKEAI3_KEY.get(parts[0], BASE_UNKNOWN) if len(parts) == 3 else BASE_UNKNOWN
        yield describe_model(
            name,
            location,
            path,
            SOURCE_YAML,
            is_default=entry.get("default") is True,
            description=str(entry.get("description") or ""),
            stated_base=stated_base,
        ), key


def _database_entries(layout: RootLayout, notes: list[str]) -> Iterator[tuple[ModelInfo, str]]:
    """InvokeAI 4.x-7.x's main models with their keys; LoRAs, VAEs, embeddings and the other
    types are skipped without a note: valid, just not something to train an embedding on."""
    read = read_model_records(layout.root)
    notes.extend(read.notes)
    for record in read.records:
        if record.is_main:
            yield _database_model(record), record.key


def _database_model(record: ModelRecord) -> ModelInfo:
    """A record as a model to list: described from its files like any other model, so it is
    trained as it will load, with what the record knows (InvokeAI's probe of the weights: base
    and widths) filling in what the files do not say, e.g. for a checkpoint listing never opens.

    The files of another base are not read: FLUX's T5 encoder sits in ``text_encoder_2`` and
    would read as SDXL.
    """
    base = BASE_BY_INVOKEAI3_KEY.get(record.base, record.base)
    location = str(record.path)
    if base not in TOKEN_DIMS_BY_BASE:
        refusal = (
            f"has the base {record.base}, and textual inversion here trains SD-1, SD-2 and SDXL "
            "models only"
        )
    elif base == BASE_SDXL_REFINER:
        refusal = REFINER_PROBLEM
    elif record.format not in (FORMAT_DIFFUSERS, FORMAT_CHECKPOINT):
        refusal = f"is stored as {record.format}, which only InvokeAI itself can load"
    else:
        refusal = VARIANT_PROBLEMS.get(record.variant or "", "")
    token_dim, token_dim_2 = TOKEN_DIMS_BY_BASE.get(base, (None, None))
    if refusal:
        return ModelInfo(record.name, location, record.path, SOURCE_DATABASE, base, token_dim,
                         FALLBACK_RESOLUTION.get(base, DEFAULT_RESOLUTION), record.prediction_type or "epsilon",
                         False, record.description, token_dim_2=token_dim_2, format=record.format,
                         refusal=refusal)
    model = describe_model(record.name, location, record.path, SOURCE_DATABASE,
                           description=record.description, stated_base=base)
    if not model.token_dims:
        model = dataclasses.replace(model, token_dim=token_dim, token_dim_2=token_dim_2)
    return dataclasses.replace(model, base=base if model.base == BASE_UNKNOWN else model.base, format=record.format)


def _configured_folder(layout: RootLayout, configured: str) -> Path:
    """2.3 paths are relative to the root, 3.x paths to ``models/``; whichever exists wins."""
    path = Path(configured).expanduser()
    if path.is_absolute():
        return path.resolve()
    candidates = [layout.root / path, layout.models / path]
    return next((c for c in candidates if c.exists()), candidates[0]).resolve()
