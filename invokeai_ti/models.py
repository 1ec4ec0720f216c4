"""Which Stable Diffusion models can be trained, found where InvokeAI users already keep them.

Users come with an InvokeAI root (2.3 or 3.x ``configs/models.yaml``, 4.x-7.x's database, a
``models/`` folder) and often a Hugging Face cache; they expect ``--model`` to accept the names
InvokeAI shows them.
Discovery only reads folders and small JSON/YAML files: listing models must be instant, must work
offline, and must never start a multi-gigabyte download or load a weight.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bases import (
    BASE_SD1, BASE_SD2, BASE_SDXL, BASE_SDXL_REFINER, BASE_UNKNOWN, FORMAT_CHECKPOINT, FORMAT_DIFFUSERS,
)
from .errors import UserError
from .invokeai_db import ModelRecord, models_dir, read_model_records
from .paths import DEMO_ROOT, RootLayout
from .root_kind import RootKind, detect_root_kind
from .single_file import (
    CHECKPOINT_SUFFIXES, CheckpointProblem, config_problem, diffusers_problem, is_checkpoint_file, read_shape,
    shipped_config,
)
from .yaml_file import YamlFileError, read_yaml

SOURCE_YAML = "models.yaml"
SOURCE_FOLDER = "models folder"
SOURCE_HUB = "hub cache"
SOURCE_GIVEN = "given"
SOURCE_DATABASE = "InvokeAI database"

BASE_BY_TOKEN_WIDTH = {768: BASE_SD1, 1024: BASE_SD2}
# InvokeAI 3.x names the base in the first part of a models.yaml key (sdxl-refiner/main/<name>);
# 4.x and later use the same names in a database record's ``base``.
BASE_BY_INVOKEAI3_KEY = {
    "sd-1": BASE_SD1, "sd-2": BASE_SD2, "sdxl": BASE_SDXL, "sdxl-refiner": BASE_SDXL_REFINER,
}
# Used when the configs do not say (a hub id that is not downloaded, a config without sizes).
FALLBACK_RESOLUTION = {BASE_SD1: 512, BASE_SD2: 768, BASE_SDXL: 1024, BASE_SDXL_REFINER: 1024}
DEFAULT_RESOLUTION = 512

# InvokeAI 3.x puts pipelines in models/<base>/<type>/<name>; one level more is slack for
# hand-made layouts, while stopping well before a deep tree of unrelated files gets walked.
MODELS_SCAN_DEPTH = 4
INVOKEAI3_MAIN_TYPE = "main"
METADATA_KEY = "__metadata__"

HUB_REPO_PREFIX = "models--"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
WEIGHTED_PARTS = ("text_encoder", "unet", "vae")
TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",))
# Each part and the file sets of which one must be present for diffusers to load it.
REQUIRED_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    "tokenizer": TOKENIZER_FILES,
    "text_encoder": (("config.json",),),
    "unet": (("config.json",),),
    "vae": (("config.json",),),
    "scheduler": (("scheduler_config.json",),),
}
# What an SDXL pipeline has on top: the second (OpenCLIP bigG) text encoder and its tokenizer.
SDXL_REQUIRED_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    "tokenizer_2": TOKENIZER_FILES,
    "text_encoder_2": (("config.json",),),
}
SDXL_WEIGHTED_PARTS = ("text_encoder_2",)

MISSING_FOLDER_HINT = "check the path, or pick a model from `invokeai-ti --list-models`"
INCOMPLETE_HINT = "download or convert the model again so that every part is complete"
REFINER_PROBLEM = (
    "is an SDXL refiner, which cannot be trained: it has only the second of SDXL's two text "
    "encoders and only refines images an SDXL base model made"
)
REFINER_HINT = "train on an SDXL base model instead"
UNTRAINABLE_HINT = "train on an SD-1, SD-2 or SDXL model instead (see `invokeai-ti --list-models`)"
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


@dataclass(frozen=True)
class ModelInfo:
    """A trainable model as the list shows it, with what training needs to know up front."""

    name: str
    location: str
    path: Path | None
    source: str
    base: str
    token_dim: int | None
    native_resolution: int
    prediction_type: str
    is_default: bool
    description: str = ""
    # SDXL's second text encoder (clip_g); ``token_dim`` is always the first one's (clip_l).
    token_dim_2: int | None = None
    # FORMAT_DIFFUSERS (a pipeline folder) or FORMAT_CHECKPOINT (one file in the original layout).
    format: str = FORMAT_DIFFUSERS
    # A checkpoint's weightless diffusers folder (the shipped one for its base, or --model_config),
    # which says each part's shape; None for a diffusers folder, which has its own.
    config: Path | None = None
    # Why this model cannot be trained, as a fragment after its name (``has the base flux ...``),
    # where its record says so before any file is read; empty for a model that may be trained.
    refusal: str = ""

    @property
    def token_dims(self) -> tuple[int, ...]:
        """The widths of the vectors one embedding for this model holds, one per text encoder."""
        return tuple(width for width in (self.token_dim, self.token_dim_2) if width is not None)

    @property
    def trainable(self) -> bool:
        return self.base != BASE_SDXL_REFINER and not self.refusal


@dataclass
class ModelScan:
    """Discovery's result, with a sentence for each thing it had to skip.

    Skipping instead of raising keeps ``--list-models`` and the form usable when one entry of a
    hand-edited models.yaml is broken; the notes let them say what was skipped and why.
    """

    models: list[ModelInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Which InvokeAI the root belongs to, which decides where its models are registered.
    kind: RootKind = RootKind.NEW
    # Every string that names a model (shown name, 3.x full key, names of its duplicates).
    names: dict[str, ModelInfo] = field(default_factory=dict, init=False)
    _by_folder: dict[str, ModelInfo] = field(default_factory=dict, init=False, repr=False)

    def add(self, model: ModelInfo, alternative_name: str) -> ModelInfo | None:
        """Keep the first model per folder; rename a later one whose name is already taken.

        The same folder is often both registered in models.yaml and present under models/ or in
        the hub cache; the models.yaml entry carries the name and description the user chose, and
        the duplicate's names (a repo id, say) still find it. Returns the model as listed, or None
        when it duplicates one listed before.
        """
        identity = str(model.path) if model.path is not None else model.location
        listed = None
        if (kept := self._by_folder.get(identity)) is None:
            if model.name in self.names:
                model = dataclasses.replace(model, name=alternative_name)
            kept = listed = self._by_folder[identity] = model
            self.models.append(model)
        for name in (model.name, alternative_name):
            self.names.setdefault(name, kept)
        return listed

    def lookup(self, spec: str) -> ModelInfo | None:
        """Exact name first, then case-insensitively, as users retype names from memory."""
        if spec in self.names:
            return self.names[spec]
        folded = spec.casefold()
        return next((model for name, model in self.names.items() if name.casefold() == folded), None)


def discover_models(layout: RootLayout) -> list[ModelInfo]:
    return scan_models(layout).models


def scan_models(layout: RootLayout) -> ModelScan:
    """The root's registered models first (InvokeAI 4.x and later: its database; 2.3 and 3.x:
    models.yaml), so the names and default the user chose win over what the folder scans find.

    A 4.x root never reads the models.yaml a migration from 3.x left beside its database, so
    neither do we: its entries may be long deleted.
    """
    scan = ModelScan(kind=detect_root_kind(layout.root))
    caches = hub_caches(layout)
    if scan.kind is RootKind.INVOKEAI_4_PLUS:
        for model, key in _database_entries(layout, scan.notes):
            listed = scan.add(model, key)
            if listed is not None and (not listed.trainable or not _exists(listed.path)):
                if (problem := _model_problem(listed)) is not None:
                    scan.notes.append(f"InvokeAI's model {listed.name} cannot be used: {problem[0]}.")
    else:
        for model, key in _models_yaml_entries(layout, caches, scan.notes):
            scan.add(model, key)
            if (problem := _model_problem(model)) is not None:
                scan.notes.append(f"The models.yaml entry {key} cannot be used: {problem[0]}.")
    folder = models_dir(layout.root)
    found = [
        (describe_model(pipeline.name, str(pipeline), pipeline, SOURCE_FOLDER),
         Path(os.path.relpath(pipeline, folder.resolve())).as_posix())
        for pipeline in _pipeline_folders(folder, MODELS_SCAN_DEPTH)
    ]
    found += [
        (describe_model(repo_id, repo_id, snapshot, SOURCE_HUB), repo_id)
        for repo_id, snapshot in _cached_pipelines(caches)
    ]
    for model, alternative_name in found:
        # Only refiners get a note here: a scanned folder that is merely incomplete is refused
        # with its reason when chosen, while a refiner is complete and would look trainable.
        listed = scan.add(model, alternative_name)
        if listed is not None and not listed.trainable and (problem := _model_problem(listed)):
            scan.notes.append(f"{listed.name} ({listed.location}) cannot be used: {problem[0]}.")
    return scan


def default_model(models: list[ModelInfo], last_used: str | None = None) -> ModelInfo | None:
    """The last-used model first, so a user who picked one keeps getting it without asking.

    Without a marked default, the first trainable model: an SDXL refiner listed first (its
    folder sorts after the base's, but a hub cache may hold only the refiner) is never picked.
    """
    if last_used:
        for model in models:
            if last_used in (model.name, model.location):
                return model
    return next(
        (model for model in models if model.is_default),
        next((model for model in models if model.trainable), models[0] if models else None),
    )


def no_model_message(layout: RootLayout) -> str:
    """Where a model can come from, pointing at the demo root when one exists elsewhere.

    After `invokeai-ti --demo` the usual next command has no --root, and looks in ~/invokeai.
    """
    text = f"No diffusers model was found under {layout.root}"
    demo = DEMO_ROOT.expanduser()
    if demo.resolve() != layout.root.resolve() and (demo / "configs").is_dir() and scan_models(RootLayout(demo)).models:
        return (
            f"{text}; the demo root {demo} has one: add --root {demo} (or set INVOKEAI_ROOT={demo}). "
            "For a real model, add one with InvokeAI's model manager, pass a diffusers folder or a "
            "Hugging Face repo id in your cache to --model (see the README, 'Getting a model')."
        )
    return (
        f"{text}; add one with InvokeAI's model manager or to configs/models.yaml, pass a diffusers "
        "folder or a Hugging Face repo id in your cache to --model (see the README, 'Getting a "
        f"model'), or try the world-of-shapes model: `invokeai-ti --demo` makes a demo root at {demo}, "
        f"which --root {demo} then opens."
    )


def find_model(
    spec: str | None, layout: RootLayout, revision: str | None = None, model_config: Path | None = None
) -> ModelInfo:
    """Resolve ``--model`` (at ``--revision``, a checkpoint with ``--model_config``) to a complete
    local pipeline or checkpoint, or say exactly what to do instead.

    Checking the folder here, before any weights load, turns diffusers' tracebacks about a
    missing config into a sentence that names the missing part.
    """

    def usable(model: ModelInfo) -> ModelInfo:
        return _usable(_with_model_config(_at_revision(model, revision, layout), model_config))

    scan = scan_models(layout)
    spec = (spec or "").strip()
    if not spec:
        model = default_model(scan.models)
        if model is None:
            raise UserError(no_model_message(layout) + _notes_suffix(scan))
        return usable(model)
    if (model := scan.lookup(spec)) is not None:
        return usable(model)
    for candidate in (Path(spec).expanduser(), layout.root / spec):
        if candidate.exists():
            folder = candidate.resolve()
            return usable(describe_model(folder.name, str(folder), folder, SOURCE_GIVEN))
    if HUB_ID.match(spec):
        snapshot = _cached_snapshot(spec, hub_caches(layout))
        return usable(describe_model(spec, spec, snapshot, SOURCE_HUB))
    if _looks_like_path(spec):
        raise _unusable(f"the folder {spec} does not exist", MISSING_FOLDER_HINT)
    known = ", ".join(model.name for model in scan.models) or "none"
    raise UserError(
        f"Unknown model '{spec}'. Known models: {known}. Pass a name from "
        "`invokeai-ti --list-models`, a diffusers folder or a Hugging Face repo id."
        + _notes_suffix(scan)
    )


def pipeline_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be trained on as an SD diffusers pipeline, as a lower-case fragment.

    A fragment so the form can list it among other problems and ``find_model`` can add the fix.
    """
    found = _pipeline_problem(Path(folder).expanduser())
    return found[0] if found else None


def format_model_table(models: list[ModelInfo]) -> str:
    """The ``--list-models`` table; the marked model is the one used when --model is left out."""
    chosen = default_model(models)
    rows = [("", "NAME", "BASE", "FORMAT", "TOKEN WIDTH", "RESOLUTION", "LOCATION")]
    for model in models:
        location = model.location
        if model.path is None:
            location += " (not in the local Hugging Face cache)"
        if not model.trainable:
            location += " (cannot be trained)"
        width = "+".join(str(width) for width in model.token_dims) or "-"
        rows.append(("*" if model is chosen else "", model.name, model.base, model.format, width,
                     str(model.native_resolution), location))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + "  " + row[-1]
        for row in rows
    ]
    lines.append("* the model used when --model is not given")
    return "\n".join(lines)


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
    index = _read_json(path / "model_index.json")
    token_dim = _token_width(path / "text_encoder")
    token_dim_2 = _token_width(path / "text_encoder_2")
    base = _base(path, index, token_dim)
    if base == BASE_UNKNOWN:
        base = stated_base
    resolution = _native_resolution(path) or FALLBACK_RESOLUTION.get(base, DEFAULT_RESOLUTION)
    return ModelInfo(name, location, path, source, base, token_dim, resolution, _prediction_type(path),
                     is_default, description, token_dim_2)


def _native_resolution(folder: Path) -> int | None:
    sample_size = _read_json(folder / "unet" / "config.json").get("sample_size")
    vae_blocks = _read_json(folder / "vae" / "config.json").get("block_out_channels")
    if isinstance(sample_size, int) and isinstance(vae_blocks, list) and vae_blocks:
        return sample_size * 2 ** (len(vae_blocks) - 1)
    return None


def _prediction_type(folder: Path) -> str:
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
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


def hub_caches(layout: RootLayout) -> list[Path]:
    """The root's own caches first (InvokeAI 2.3 downloads repo_ids to models/hub, its early
    releases to models/diffusers), then the user's.

    The user's cache is located exactly as huggingface_hub does, but from the environment at call
    time: huggingface_hub reads it once at import, which would miss later changes.
    """
    env = os.environ
    if explicit := env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        user_cache = Path(explicit)
    elif home := env.get("HF_HOME"):
        user_cache = Path(home) / "hub"
    else:
        user_cache = Path(env.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface" / "hub"
    caches = [layout.models / "hub", layout.models / "diffusers", user_cache.expanduser()]
    return list(dict.fromkeys(caches))


def _token_width(text_encoder: Path) -> int | None:
    config = _read_json(text_encoder / "config.json")
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


def _exists(path: Path | None) -> bool:
    return path is not None and path.exists()


def _configured_folder(layout: RootLayout, configured: str) -> Path:
    """2.3 paths are relative to the root, 3.x paths to ``models/``; whichever exists wins."""
    path = Path(configured).expanduser()
    if path.is_absolute():
        return path.resolve()
    candidates = [layout.root / path, layout.models / path]
    return next((c for c in candidates if c.exists()), candidates[0]).resolve()


def _pipeline_folders(folder: Path, depth: int) -> Iterator[Path]:
    """SD pipeline folders below ``folder``, not descending into pipelines or hub caches."""
    try:
        children = sorted(child for child in folder.iterdir() if child.is_dir())
    except OSError:
        return
    for child in children:
        if child.name.startswith((".", HUB_REPO_PREFIX)):
            continue
        if (child / "model_index.json").is_file():
            if _is_sd_pipeline(child):
                yield child.resolve()
        elif depth > 1:
            yield from _pipeline_folders(child, depth - 1)


def _cached_pipelines(caches: list[Path]) -> Iterator[tuple[str, Path]]:
    for cache in caches:
        if not cache.is_dir():
            continue
        for repo in sorted(cache.glob(HUB_REPO_PREFIX + "*")):
            snapshot = _snapshot_of(repo)
            if snapshot is not None and _is_sd_pipeline(snapshot):
                yield repo.name[len(HUB_REPO_PREFIX):].replace("--", "/", 1), snapshot


def _cached_snapshot(repo_id: str, caches: list[Path]) -> Path | None:
    folder_name = HUB_REPO_PREFIX + repo_id.replace("/", "--")
    return next(
        (snapshot for cache in caches if (snapshot := _snapshot_of(cache / folder_name)) is not None),
        None,
    )


def _hub_repo(model: ModelInfo) -> str | None:
    """The repo id behind ``model`` when it comes from a Hugging Face cache (a hub id, or a
    models.yaml ``repo_id``), else None: a folder has only the version it holds."""
    in_cache = model.path is None or (
        model.path.parent.name == "snapshots" and model.path.parent.parent.name.startswith(HUB_REPO_PREFIX)
    )
    if model.source in (SOURCE_HUB, SOURCE_YAML) and in_cache and HUB_ID.match(model.location):
        return model.location
    return None


def _at_revision(model: ModelInfo, revision: str | None, layout: RootLayout) -> ModelInfo:
    """``model`` at ``--revision``: the cached snapshot that branch, tag or commit names.

    The default resolution takes the snapshot ``refs/main`` names, and that folder is what every
    part is loaded from; a revision handed on to ``from_pretrained`` with a local folder would be
    ignored, so it is resolved here or refused.
    """
    if not revision:
        return model
    repo_id = _hub_repo(model)
    if repo_id is None:
        raise UserError(
            f"--revision {revision} picks a version of a Hugging Face repo id, but {model.name} is "
            f"the folder {model.path or model.location}, which holds one version; leave --revision out."
        )
    snapshot = _revision_snapshot(repo_id, revision, hub_caches(layout))
    if snapshot is None:
        raise UserError(
            f"Revision {revision} of {repo_id} is not in the local Hugging Face cache; fetch it with "
            f"`hf download {repo_id} --revision {revision}`, or leave --revision out to train on the "
            "cached main revision."
        )
    return describe_model(model.name, model.location, snapshot, model.source,
                          is_default=model.is_default, description=model.description)


def _revision_snapshot(repo_id: str, revision: str, caches: list[Path]) -> Path | None:
    """The cached snapshot of a branch or tag (``refs/<revision>``) or of a full commit hash."""
    folder_name = HUB_REPO_PREFIX + repo_id.replace("/", "--")
    for cache in caches:
        repo = cache / folder_name
        try:
            commit = (repo / "refs" / revision).read_text(encoding="utf-8").strip()
        except OSError:
            commit = revision
        snapshot = repo / "snapshots" / commit
        if commit and "/" not in commit and (snapshot / "model_index.json").is_file():
            return snapshot.resolve()
    return None


def _snapshot_of(repo: Path) -> Path | None:
    """The revision ``refs/main`` names, as huggingface_hub would load offline, else the newest."""
    snapshots = repo / "snapshots"
    try:
        main = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        main = ""
    if main and (snapshots / main / "model_index.json").is_file():
        return (snapshots / main).resolve()
    if not snapshots.is_dir():
        return None
    complete = [s for s in snapshots.iterdir() if (s / "model_index.json").is_file()]
    return max(complete, key=lambda s: s.stat().st_mtime).resolve() if complete else None


def _is_sd_pipeline(folder: Path) -> bool:
    """Other pipelines in a shared cache (Flux, Kandinsky, ...) have no CLIP embedding to train."""
    class_name = _read_json(folder / "model_index.json").get("_class_name", "")
    return isinstance(class_name, str) and class_name.startswith("StableDiffusion")


def _pipeline_problem(folder: Path) -> tuple[str, str] | None:
    """The first problem and its fix; one at a time, since fixing the first often fixes the rest."""
    if not folder.exists():
        return f"the folder {folder} does not exist", MISSING_FOLDER_HINT
    if folder.is_file():
        if is_checkpoint_file(folder):
            return _checkpoint_problem(describe_checkpoint(folder.name, str(folder), folder, SOURCE_GIVEN))
        return (f"the file {folder} is neither a diffusers pipeline folder nor a checkpoint "
                "(.safetensors or .ckpt)", MISSING_FOLDER_HINT)
    if not folder.is_dir():
        return f"{folder} is not a folder (nor a file)", MISSING_FOLDER_HINT
    if not (folder / "model_index.json").is_file():
        try:
            checkpoints = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES)
        except OSError as error:
            return f"the folder {folder} cannot be read ({error.strerror or type(error).__name__})", MISSING_FOLDER_HINT
        if checkpoints:
            return (
                f"the folder {folder} is not a diffusers pipeline: it has no model_index.json, "
                f"only the single-file checkpoint {checkpoints[0]}",
                f"pass the file {folder / checkpoints[0]} itself",
            )
        return (
            f"the folder {folder} is not a diffusers pipeline: it has no model_index.json",
            "pass the folder that holds model_index.json",
        )
    index = _read_json(folder / "model_index.json")
    required, weighted = REQUIRED_FILES, WEIGHTED_PARTS
    if (base := _base(folder, index, None)) == BASE_SDXL_REFINER:
        return f"the folder {folder} {REFINER_PROBLEM}", REFINER_HINT
    if base == BASE_SDXL:
        required, weighted = {**REQUIRED_FILES, **SDXL_REQUIRED_FILES}, WEIGHTED_PARTS + SDXL_WEIGHTED_PARTS
    for part, file_sets in required.items():
        if not any(all((folder / part / name).is_file() for name in files) for files in file_sets):
            wanted = ", or ".join(" and ".join(f"{part}/{name}" for name in files) for files in file_sets)
            return f"the folder {folder} is missing its {part} ({wanted})", INCOMPLETE_HINT
    for part in weighted:
        if not any(any((folder / part).glob(pattern)) for pattern in WEIGHT_PATTERNS):
            return (
                f"the folder {folder} is missing the weights of its {part} "
                f"(no .safetensors or .bin file in {part}/)",
                INCOMPLETE_HINT,
            )
    return None


def _has_part(folder: Path, index: dict[str, Any], part: str) -> bool:
    """Whether the pipeline has ``part``: model_index.json says so (a refiner's names
    ``text_encoder`` as ``[null, null]``); without an entry there, whether its folder exists."""
    if part in index:
        entry = index[part]
        return isinstance(entry, list) and bool(entry) and entry[0] is not None
    return (folder / part).is_dir()


def _model_problem(model: ModelInfo) -> tuple[str, str] | None:
    """Why a listed model cannot be trained and the fix; a refiner is known even undownloaded."""
    if model.refusal:
        hint = REFINER_HINT if model.base == BASE_SDXL_REFINER else UNTRAINABLE_HINT
        return f"the model {model.name} {model.refusal}", hint
    if model.path is not None and (found := _files_problem(model)) is not None:
        return found
    if not model.trainable:
        return f"the model {model.name} {REFINER_PROBLEM}", REFINER_HINT
    return None


def _usable(model: ModelInfo) -> ModelInfo:
    """Refuse a model that would fail or start a download when loaded, before anything loads.

    A refiner is refused first: downloading it would not make it trainable.
    """
    if not model.trainable and (found := _model_problem(model)) is not None:
        raise _unusable(*found)
    if model.path is None:
        named = model.name if model.name == model.location else f"{model.name} ({model.location})"
        raise UserError(
            f"The model {named} is not in the local Hugging Face cache; "
            f"download it with `hf download {model.location}` (or `huggingface-cli download "
            f"{model.location}` with older huggingface_hub), or pass a local diffusers folder."
        )
    if (found := _files_problem(model)) is not None:
        raise _unusable(*found)
    return model


def _files_problem(model: ModelInfo) -> tuple[str, str] | None:
    if model.format == FORMAT_CHECKPOINT and model.path is not None and model.path.is_file():
        return _checkpoint_problem(model)
    return _pipeline_problem(model.path) if model.path is not None else None


def _checkpoint_problem(model: ModelInfo) -> tuple[str, str] | None:
    """What stops training on a checkpoint file: unreadable, a refiner, no shipped folder for its
    base, or configs (shipped or --model_config) of another shape than its weights."""
    path = model.path
    try:
        shape = read_shape(path)
    except CheckpointProblem as problem:
        return problem.problem, problem.fix
    if shape.base == BASE_SDXL_REFINER:
        return f"the checkpoint {path} {REFINER_PROBLEM}", REFINER_HINT
    if (problem := diffusers_problem()) is not None:
        return problem.problem, problem.fix
    if model.config is None:
        return (f"no configs for a {shape.base} checkpoint ship with invokeai-ti, so {path} cannot be read",
                "pass --model_config with a weightless diffusers folder of its shape")
    if (problem := config_problem(path, shape, model.config)) is not None:
        return problem.problem, problem.fix
    return None


def _with_model_config(model: ModelInfo, model_config: Path | None) -> ModelInfo:
    """``model`` read with ``--model_config``'s configs: only a checkpoint has none of its own.

    A checkpoint listed without configs (a database row names only its file and base) is read
    again from its weights, which pick the shipped configs.
    """
    if model.refusal:
        return model
    if model_config is None:
        if model.format == FORMAT_CHECKPOINT and model.config is None and model.path is not None:
            return describe_checkpoint(model.name, model.location, model.path, model.source,
                                       is_default=model.is_default, description=model.description,
                                       stated_base=model.base)
        return model
    if model.format != FORMAT_CHECKPOINT:
        raise UserError(
            f"--model_config describes the shape of a single-file checkpoint, but {model.name} is a "
            "diffusers folder with configs of its own; leave --model_config out."
        )
    folder = Path(model_config).expanduser()
    if not folder.is_dir():
        raise UserError(f"The --model_config folder {folder} does not exist; pass the folder of a diffusers model "
                        "(its weights may be left out).")
    return describe_checkpoint(model.name, model.location, model.path, model.source, config=folder.resolve(),
                               is_default=model.is_default, description=model.description,
                               stated_base=model.base)


def _unusable(problem: str, fix: str) -> UserError:
    return UserError(f"{problem[0].upper()}{problem[1:]}; {fix}.")


def _looks_like_path(spec: str) -> bool:
    return (
        Path(spec).is_absolute()
        or spec.startswith(("~", "."))
        or "\\" in spec
        or spec.lower().endswith(CHECKPOINT_SUFFIXES)
    )


def _notes_suffix(scan: ModelScan) -> str:
    return "".join(f" {note}" for note in scan.notes)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
