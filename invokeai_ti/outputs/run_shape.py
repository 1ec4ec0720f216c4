"""What defines a training run, so that a checkpoint continues only the run it was made in.

``RunShape`` holds the settings that decide which samples each step sees and what the optimizer
state restores, read from a run's settings or from a checkpoint's record (older records simply
know fewer of them), compared field by field and named in the words a message shows the user.
``checkpoints`` records it in every checkpoint; ``resume`` and the form compare it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..settings import MAX_TIMESTEP, TrainingSettings

# What a difference is called in a message, in the order messages list them.
SHAPE_LABELS = {
    "model": "model",
    "token": "trigger",
    "num_vectors": "number of vectors",
    "token_dims": "token widths",
    "resolution": "resolution",
    "train_batch_size": "batch size",
    "gradient_accumulation_steps": "gradient accumulation steps",
    "num_processes": "number of processes",
    "learning_rate": "learning rate",
    "scale_lr": "learning-rate scaling",
    "lr_scheduler": "learning rate scheduler",
    "lr_warmup_steps": "warm-up steps",
    "lr_num_cycles": "scheduler cycles",
    "lr_power": "scheduler power",
    "adam_beta1": "AdamW beta1",
    "adam_beta2": "AdamW beta2",
    "adam_weight_decay": "AdamW weight decay",
    "adam_epsilon": "AdamW epsilon",
    "learnable_property": "learnable property",
    "center_crop": "center crop",
    "bucket": "aspect-ratio buckets",
    "bucket_reso_steps": "bucket step",
    "masked_loss": "masked loss",
    "shuffle_caption": "caption shuffle",
    "keep_tokens": "kept tags",
    "caption_tag_dropout_rate": "tag dropout rate",
    "snr_gamma": "min-SNR gamma",
    "noise_offset": "noise offset",
    "min_timestep": "lowest timestep",
    "max_timestep": "timesteps below",
    "preserve_embedding_norm": "vectors kept at the vocabulary's size",
    "learn_direction_only": "direction-only learning",
    "direction_learning_rate": "direction learning rate",
}
# Shape fields that are TrainingSettings fields of the same name (and so can be set back).
SETTING_FIELDS = tuple(
    name for name in SHAPE_LABELS if name not in ("model", "token", "token_dims", "num_processes")
)
# Schedule parameters matter only to the schedulers that read them.
SCHEDULE_PARAMETERS = {
    "lr_warmup_steps": ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup"),
    "lr_num_cycles": ("cosine_with_restarts",),
    "lr_power": ("polynomial",),
}


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return "+".join(map(str, value))
    return str(value)


@dataclass(frozen=True)
class RunShape:
    """What must match for a checkpoint to continue the same run exactly.

    The optimizer state restores AdamW's settings and the base learning rate, so a different
    value given on resume would be silently ignored; the others decide which samples each step
    sees. None means "not known": an older checkpoint that did not record the field, or a
    caller (the form) that cannot know it yet. Unknown fields are not compared, so every older
    checkpoint still resumes.
    """

    model: str | None = None
    token: str | None = None
    num_vectors: int | None = None
    # One width per text encoder: (768,) for SD-1, (768, 1280) for SDXL.
    token_dims: tuple[int, ...] | None = None
    resolution: int | None = None
    train_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    num_processes: int | None = None
    learning_rate: float | None = None
    scale_lr: bool | None = None
    lr_scheduler: str | None = None
    lr_warmup_steps: int | None = None
    lr_num_cycles: int | None = None
    lr_power: float | None = None
    adam_beta1: float | None = None
    adam_beta2: float | None = None
    adam_weight_decay: float | None = None
    adam_epsilon: float | None = None
    learnable_property: str | None = None
    center_crop: bool | None = None
    bucket: bool | None = None
    bucket_reso_steps: int | None = None
    masked_loss: bool | None = None
    shuffle_caption: bool | None = None
    keep_tokens: int | None = None
    caption_tag_dropout_rate: float | None = None
    snr_gamma: float | None = None
    noise_offset: float | None = None
    min_timestep: int | None = None
    max_timestep: int | None = None
    preserve_embedding_norm: bool | None = None
    learn_direction_only: bool | None = None
    direction_learning_rate: float | None = None

    @classmethod
    def of_run(
        cls,
        settings: TrainingSettings,
        *,
        model: str | None,
        resolution: int,
        num_vectors: int,
        token_dims: tuple[int, ...] | None,
        num_processes: int | None,
    ) -> RunShape:
        values = {name: getattr(settings, name) for name in SETTING_FIELDS}
        values.update(resolution=resolution, num_vectors=num_vectors)
        for name, schedulers in SCHEDULE_PARAMETERS.items():
            if settings.lr_scheduler not in schedulers:
                values[name] = None
        if not settings.bucket:
            values["bucket_reso_steps"] = None
        if not settings.learn_direction_only:
            values["direction_learning_rate"] = None
        return cls(model=model, token=settings.token, token_dims=token_dims,
                   num_processes=num_processes, **values)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunShape:
        """Read a recorded shape; fields a later version added are simply unknown.

        Checkpoints from before SDXL recorded one ``token_dim``; it is the one width of ``token_dims``.
        Those from before the timestep range trained on all of them, which a resume now keeps.
        """
        record = dict(record)
        if "token_dim" in record:
            width = record.pop("token_dim")
            record.setdefault("token_dims", None if width is None else [width])
        if record.get("token_dims") is not None:
            record["token_dims"] = tuple(int(width) for width in record["token_dims"])
        # Runs from before the timestep range trained on every timestep.
        record.setdefault("min_timestep", 0)
        record.setdefault("max_timestep", MAX_TIMESTEP)
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in record.items() if name in known})

    def setting_values(self) -> dict[str, Any]:
        """The recorded values that are settings, to set a run back to this one's."""
        return {name: getattr(self, name) for name in SETTING_FIELDS if getattr(self, name) is not None}

    def differing(self, other: RunShape) -> list[str]:
        """Names of the fields both shapes know and that differ, in message order."""
        return [
            name
            for name in SHAPE_LABELS
            if None not in (getattr(self, name), getattr(other, name))
            and getattr(self, name) != getattr(other, name)
        ]

    def differences(self, other: RunShape) -> list[str]:
        return [
            f"{SHAPE_LABELS[name]} {shown(getattr(self, name))} (checkpoint) vs "
            f"{shown(getattr(other, name))} (now)"
            for name in self.differing(other)
        ]
