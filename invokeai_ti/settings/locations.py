"""Where a run reads and writes and which model it trains: the InvokeAI root, the output and log
folders, the model and its tokenizer.

Two parts, because ``--help`` shows the InvokeAI server's settings (``outputs``) between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .fields import setting


@dataclass
class RootSettings:
    """The InvokeAI root, and the folders a run writes to (``--help``'s general group)."""

    root: Path | None = setting(
        None,
        "InvokeAI root folder (default: $INVOKEAI_ROOT, else the parent of an InvokeAI virtual "
        "environment, else ~/invokeai)",
        group="general",
        aliases=("--root_dir",),
    )
    output_dir: Path | None = setting(
        None,
        "where checkpoints, logs and the embedding are written "
        "(default: <root>/text-inversion-output/<trigger>)",
        group="general",
        label="Output Destination Directory",
    )
    logging_dir: Path = setting(
        Path("logs"), "log folder, relative to the output folder", group="general"
    )


@dataclass
class ModelSettings:
    """The model to train on, and where its tokenizer comes from."""

    model: str | None = setting(
        None,
        "a model name from models.yaml (see --list-models), a diffusers folder, a single-file "
        "checkpoint (.safetensors) or a Hugging Face repo id (default: the model marked default, "
        "else the first one found)",
        group="model",
        aliases=("--pretrained_model_name_or_path",),
        label="Model Name",
    )
    revision: str | None = setting(
        None,
        "a branch, tag or commit of a Hugging Face repo id in your cache (default: main); "
        "fetch it first with hf download <repo id> --revision <revision>",
        group="model",
    )
    tokenizer_name: str | None = setting(
        None, "load the tokenizer from this folder or repo id instead of the model's", group="model"
    )
    model_config: Path | None = setting(
        None,
        "for a single-file checkpoint (.safetensors) of another shape than SD-1.5, SD-2.1 768-v or "
        "SDXL base: a diffusers folder whose configs and tokenizers describe it; its weights may be "
        "left out (default: the configs shipped for the base its weights show)",
        group="model",
        label="Checkpoint config folder",
    )
