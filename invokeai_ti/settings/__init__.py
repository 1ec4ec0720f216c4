"""Every training setting, once: its default, its help text, its flags and its validation.

Each module of this package owns one concern and declares its part of the settings: ``locations``
(root, folders, model), ``outputs`` (the InvokeAI server, checkpoints, trackers), ``data`` (images
and captions), ``trigger`` (the trigger and its vectors), ``previews`` (evaluation and previews),
``learning`` (steps, batch, optimizer), ``timesteps`` (noise levels and loss weighting) and
``hardware``; ``fields`` is how a setting is declared. This module composes the parts into the one
``TrainingSettings`` and checks what spans them.

It imports nothing of this package but ``errors`` (for ``Problem``), so every layer can read
settings and ``invokeai-ti --help`` starts without torch.

The CLI flags, the form's fields and the saved preferences are all generated from
``TrainingSettings``. InvokeAI kept two copies and they drifted (learning rate 1e-4 on the
command line, 5e-4 in the form; warm-up 500 against 0; and so on); here there is no second copy
to drift.

Three defaults depend on the machine (batch size, mixed precision, xFormers). They are ``None``
("decide for this device") in the dataclass and are filled by ``resolve_device_defaults`` from a
real probe of the device, which the CLI and the form both call.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Problem
from .data import FORM_RESOLUTIONS, DataSettings
from .fields import INVALID, coerce, field_types, setting
from .hardware import COMPILE_MIN_STEPS, PRECISIONS, DeviceDefaults, HardwareSettings
from .learning import LR_SCHEDULERS, LearningSettings
from .locations import ModelSettings, RootSettings
from .outputs import (
    DEFAULT_INVOKEAI_URL,
    PASSWORD_VARIABLE,
    TOKEN_VARIABLE,
    CheckpointSettings,
    InvokeAISettings,
    TrackerSettings,
    secret_environment,
)
from .previews import PreviewSettings
from .timesteps import MAX_TIMESTEP, TimestepSettings
from .trigger import (
    LEARNABLE_PROPERTIES,
    TokenSettings,
    bare_trigger,
    invokeai_trigger_problem,
    trigger_problem,
)

__all__ = [
    "COMPILE_MIN_STEPS", "DEFAULT_INVOKEAI_URL", "FORM_RESOLUTIONS", "LEARNABLE_PROPERTIES", "LR_SCHEDULERS",
    "MAX_TIMESTEP", "PASSWORD_VARIABLE", "PRECISIONS", "TOKEN_VARIABLE", "DeviceDefaults",
    "TrainingSettings", "bare_trigger", "coerce", "field_named", "field_types",
    "fields_by_group", "invokeai_trigger_problem", "secret_environment", "setting", "settings_to_argv",
    "trigger_problem",
]

# Counts that must be at least 1, by what a problem calls them, in the order problems list them.
AT_LEAST_ONE = {
    "max_train_steps": "training steps",
    "gradient_accumulation_steps": "gradient accumulation steps",
    "num_vectors": "number of vectors",
    "repeats": "repeats",
    "checkpointing_steps": "checkpointing steps",
    "save_steps": "save steps",
    "num_validation_images": "number of preview images",
    "train_batch_size": "batch size",
    "num_train_epochs": "number of epochs",
    "validation_steps": "preview steps",
}
NOT_NEGATIVE = {
    "lr_warmup_steps": "the warm-up steps",
    "checkpoints_total_limit": "--checkpoints_total_limit",
    "keep_tokens": "--keep_tokens",
    "dataloader_num_workers": "--dataloader_num_workers",
}
NOT_NEGATIVE_HINTS = {"checkpoints_total_limit": "; use 0 to keep every checkpoint"}


# Dataclasses take the fields of the last base first, so the parts are listed from the end of
# ``--help`` back to its start: the fields keep ``--help``'s order, its groups and their order.
@dataclass
class TrainingSettings(
    TrackerSettings,
    HardwareSettings,
    TimestepSettings,
    LearningSettings,
    PreviewSettings,
    CheckpointSettings,
    TokenSettings,
    DataSettings,
    ModelSettings,
    InvokeAISettings,
    RootSettings,
):
    """The settings of one training run, with InvokeAI's names."""

    @property
    def preview_every(self) -> int:
        """``--validation_steps``, else ``--save_steps`` but at most half the run, rounded up: a
        30-step trial of a setup still gets one preview between the first and the last (at 0, 15
        and 30), and a 5-step one exactly one too (0, 3 and 5, not 0, 2, 4 and 5)."""
        if self.validation_steps:
            return self.validation_steps
        if self.num_train_epochs:
            return self.save_steps
        return max(1, min(self.save_steps, math.ceil(self.max_train_steps / 2)))

    def problems(self) -> list[Problem]:
        """Every value problem, each with the field that fixes it; empty when the settings can run.

        Each part checks its own fields; the form puts the cursor on the first problem's field.
        """
        found = [
            *self.word_problems(),
            self.preview_prompt_problem(self.trigger),
            self.server_problem(),
            *self._count_problems(),
            *self.learning_problems(),
            self.precision_problem(),
            self.property_problem(),
            *self.vector_size_problems(),
            *self.timestep_problems(),
            *self.data_problems(),
        ]
        return [problem for problem in found if problem is not None]

    def _count_problems(self) -> list[Problem]:
        """Counts that must be at least 1 (those that may be None mean "the default")."""
        found = []
        for name, what in AT_LEAST_ONE.items():
            value = getattr(self, name)
            if value is not None and value < 1:
                found.append(Problem(f"the {what} must be at least 1, not {value}", name))
        for name, what in NOT_NEGATIVE.items():
            if (value := getattr(self, name)) is not None and value < 0:
                found.append(Problem(f"{what} cannot be negative ({value}){NOT_NEGATIVE_HINTS.get(name, '')}",
                                     name))
        return found

    def resolve_device_defaults(self, caps: DeviceDefaults, base: str | None = None) -> TrainingSettings:
        """Fill the machine-dependent defaults from a probe of the device that will train.

        ``base`` is the model's base (SD-1, SD-2, SDXL): SDXL's batch size follows the GPU's memory.
        """
        xformers = caps.xformers if self.enable_xformers_memory_efficient_attention is None else (
            self.enable_xformers_memory_efficient_attention
        )
        compile_unet = self.compile
        if compile_unet is None:
            compile_unet = caps.kind == "cuda" and self.max_train_steps >= COMPILE_MIN_STEPS
        return dataclasses.replace(
            self,
            train_batch_size=self.train_batch_size or caps.batch_size_for(base),
            mixed_precision=self.mixed_precision or caps.default_precision,
            enable_xformers_memory_efficient_attention=xformers,
            compile=compile_unet,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings, several values as lists) for JSON and YAML files;
        sign-in secrets are left out, since every such file may be shared or read by others."""
        return {
            f.name: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
            for f in dataclasses.fields(self)
            if not f.metadata.get("secret")
            for v in [getattr(self, f.name)]
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, base: TrainingSettings | None = None) -> TrainingSettings:
        """Build settings from a saved dict, ignoring unknown keys and mistyped values.

        Saved files come from older versions and from InvokeAI itself; a key we do not know or a
        value of the wrong type must not stop anyone from training.
        """
        result = base or cls()
        known = {f.name: f for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known or known[key].metadata.get("secret"):
                continue
            converted = coerce(known[key], value)
            if converted is not INVALID:
                changes[key] = converted
        return dataclasses.replace(result, **changes)


def fields_by_group() -> dict[str, list[dataclasses.Field]]:
    groups: dict[str, list[dataclasses.Field]] = {}
    for f in dataclasses.fields(TrainingSettings):
        groups.setdefault(f.metadata["group"], []).append(f)
    return groups


def field_named(name: str) -> dataclasses.Field:
    for f in dataclasses.fields(TrainingSettings):
        if f.name == name:
            return f
    raise KeyError(name)


def settings_to_argv(settings: TrainingSettings) -> list[str]:
    """The flags that make ``invokeai-ti`` train with exactly ``settings``.

    The form uses it to start a distributed run through ``accelerate launch``; parsing the
    result gives back the same settings, less the sign-in secrets: a command line is visible to
    every user of the machine, so those travel in the environment (``secret_environment``).
    """
    argv = []
    for f in dataclasses.fields(TrainingSettings):
        value = getattr(settings, f.name)
        if value is None or f.metadata.get("secret"):
            continue
        if isinstance(value, bool):
            argv.append(f"--{f.name}" if value else f"--no-{f.name}")
        elif isinstance(value, tuple):
            argv += [f"--{f.name}={item}" for item in value]
        else:
            argv.append(f"--{f.name}={value}")
    return argv
