"""Why a model cannot be trained, as a lower-case fragment and its fix: a missing or incomplete
diffusers folder, an SDXL refiner, an unreadable checkpoint or one whose configs do not fit its
weights, or what its InvokeAI record refuses.

Checked before any weight loads, so that diffusers' tracebacks about a missing config become a
sentence that names the missing part.
"""

from __future__ import annotations

from pathlib import Path

from ..bases import BASE_SDXL, BASE_SDXL_REFINER, FORMAT_CHECKPOINT
from ..single_file import (
    CHECKPOINT_SUFFIXES, CheckpointProblem, config_problem, diffusers_problem, is_checkpoint_file, read_shape,
)
from ..files import json_object_or_empty
from .describe import _base, describe_checkpoint
from .record import SOURCE_GIVEN, ModelInfo

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


def pipeline_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be trained on as an SD diffusers pipeline, as a lower-case fragment.

    A fragment so the form can list it among other problems and ``find_model`` can add the fix.
    """
    found = _pipeline_problem(Path(folder).expanduser())
    return found[0] if found else None


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
    index = json_object_or_empty(folder / "model_index.json")
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
