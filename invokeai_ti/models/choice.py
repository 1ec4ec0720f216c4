"""Choosing the model for a run: ``find_model`` turns ``--model`` (with ``--revision`` and
``--model_config``) into a complete local pipeline or checkpoint, or one sentence saying what to
do instead; ``default_model`` picks one when none is named; ``format_model_table`` is the
``--list-models`` table.
"""

from __future__ import annotations

from pathlib import Path

from ..bases import FORMAT_CHECKPOINT
from ..errors import UserError
from ..paths import DEMO_ROOT, RootLayout
from ..single_file import CHECKPOINT_SUFFIXES
from .describe import describe_checkpoint, describe_model
from .hub_cache import HUB_ID, _cached_snapshot, _hub_repo, _revision_snapshot, hub_caches
from .problems import MISSING_FOLDER_HINT, _files_problem, _model_problem
from .record import SOURCE_GIVEN, SOURCE_HUB, ModelInfo, ModelScan
from .scan import scan_models


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
