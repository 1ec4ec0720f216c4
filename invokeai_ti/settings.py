"""Every training setting, once: its default, its help text, its flags and its validation.

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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import Problem

LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)
PRECISIONS = ("no", "fp16", "bf16")
LEARNABLE_PROPERTIES = ("object", "style")
FORM_RESOLUTIONS = (512, 768, 1024)
# torch.compile with CUDA graphs took about 130 s on first use and saved about 70 ms a step at
# batch 4 on an H100 (issue 13's measurements), so it pays back after roughly 2000 steps.
COMPILE_MIN_STEPS = 2000
# The timesteps of every Stable Diffusion scheduler (num_train_timesteps); a model with fewer
# trains up to its own number.
MAX_TIMESTEP = 1000
# Where an object trains from by default: on the world model's photos the timesteps below it
# taught outlines and shading instead of the object (docs/benchmarks.md, "Learning what users
# care about").
OBJECT_MIN_TIMESTEP = 250
TRIGGER_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
# Counts that must be at least 1, by what a problem calls them.
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


def setting(default: Any, help: str, *, group: str, aliases: tuple[str, ...] = (), **meta: Any) -> Any:
    """A dataclass field carrying what the CLI and the form need to present it."""
    return field(default=default, metadata={"help": help, "group": group, "aliases": aliases, **meta})


def default_min_timestep(learnable_property: str) -> int:
    return OBJECT_MIN_TIMESTEP if learnable_property == "object" else 0


def bare_trigger(placeholder: str) -> str:
    """``<psychedelic>`` and ``psychedelic`` both name the trigger ``psychedelic``."""
    text = placeholder.strip()
    if len(text) >= 2 and text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return text


def trigger_problem(placeholder: str) -> Problem | None:
    trigger = bare_trigger(placeholder)
    if not trigger:
        return Problem("the trigger term is empty; type a word such as 'psychedelic'", "placeholder_token")
    if not TRIGGER_PATTERN.match(trigger):
        bad = sorted({c for c in trigger if not re.match(r"[A-Za-z0-9._-]", c)})
        shown = ", ".join("space" if c == " " else repr(c) for c in bad)
        return Problem(
            f"the trigger term '{trigger}' contains {shown}; use only letters, digits, '.', '-' and '_'",
            "placeholder_token",
        )
    return None


class DeviceDefaults(Protocol):
    """What the machine-dependent defaults are read from; ``device.DeviceCaps`` is one.

    A protocol rather than an import, so that this module (and ``invokeai-ti --help``) loads
    without torch.
    """

    @property
    def kind(self) -> str: ...

    @property
    def xformers(self) -> bool: ...

    @property
    def default_precision(self) -> str: ...

    def batch_size_for(self, base: str | None) -> int: ...


@dataclass
class TrainingSettings:
    """The settings of one training run, with InvokeAI's names."""

    # General
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
    # Model
    model: str | None = setting(
        None,
        "a model name from models.yaml (see --list-models), a diffusers folder or a Hugging Face "
        "repo id (default: the model marked default, else the first one found)",
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
    # Images
    train_data_dir: Path | None = setting(
        None,
        "folder of training images (default: <root>/text-inversion-training-data/<trigger>)",
        group="images",
        label="Data Training Directory",
    )
    resolution: int | None = setting(
        None,
        "training resolution in pixels, a multiple of 8 (default: the model's native size: 512 "
        "for SD-1, 768 for SD-2 768-v, 1024 for SDXL)",
        group="images",
        label="Image resolution (pixels)",
        choices_form=FORM_RESOLUTIONS,
    )
    center_crop: bool = setting(
        False, "crop images to a centred square before resizing", group="images",
        label="Center crop images before resizing",
    )
    bucket: bool = setting(
        True,
        "keep each image's aspect ratio: images are grouped into buckets of about the "
        "resolution's pixel count, sides in steps of --bucket_reso_steps, and each step trains "
        "on one bucket (--no-bucket squares every image, cropped or squashed per --center_crop)",
        group="images", label="Keep aspect ratios (buckets)",
    )
    bucket_reso_steps: int = setting(
        64,
        "the step between bucket sides in pixels: 64 for Stable Diffusion models, whose UNet "
        "needs sides in multiples of 64",
        group="images",
    )
    masked_loss: bool = setting(
        True,
        "weight the loss by each image's mask: photo.mask.png beside photo.jpg, or a PNG's alpha "
        "channel (white or opaque is learned, black or transparent is not)",
        group="images", label="Learn only the masked part (alpha or .mask.png)",
    )
    shuffle_caption: bool = setting(
        False,
        "shuffle the comma-separated tags of each caption file every time it is used "
        "(the first --keep_tokens tags stay in front)",
        group="images", label="Shuffle caption tags",
    )
    keep_tokens: int = setting(
        0, "comma-separated tags at the start of a caption that shuffling and dropout keep",
        group="images", label="Tags kept in front", slider=(0, 10),
    )
    caption_tag_dropout_rate: float = setting(
        0.0,
        "the chance that each tag of a caption file (not a kept one, never the trigger) is left "
        "out of a sample",
        group="images", label="Tag dropout rate (0-1)",
    )
    # Token
    placeholder_token: str = setting(
        "",
        "the trigger term; 'psychedelic' and '<psychedelic>' both train '<psychedelic>'",
        group="token",
        aliases=("--trigger_term",),
        label="Trigger Term",
    )
    learnable_property: str = setting(
        "object", "what the images share: an object or a style", group="token",
        choices=LEARNABLE_PROPERTIES, label="Learnable property",
    )
    initializer_token: str = setting(
        "*",
        "a word or phrase the new vectors start from, one token per vector ('blue triangle' with "
        "--num_vectors 2 starts them at 'blue' and 'triangle'; one word starts every vector)",
        group="token", label="Initializer",
    )
    num_vectors: int = setting(
        1, "number of vectors the trigger learns (more capture more detail, need more steps)",
        group="token", label="Vectors per trigger", slider=(1, 16),
    )
    preserve_embedding_norm: bool = setting(
        False,
        "after each step, rescale each new vector to the median norm of the text encoder's "
        "vocabulary (OneTrainer's option), so the trigger cannot grow to drown the rest of a prompt",
        group="token", label="Keep the vectors at the vocabulary's size",
    )
    learn_direction_only: bool = setting(
        False,
        "hold each new vector at the vocabulary's median norm from the start and learn only its "
        "direction, at --direction_learning_rate (Directional Textual Inversion)",
        group="token", label="Learn only the vectors' direction",
    )
    direction_learning_rate: float = setting(
        1e-2,
        "the learning rate of --learn_direction_only, in steps of a unit direction (scaled like "
        "--learning_rate by --scale_lr)",
        group="token", label="Direction learning rate",
    )
    initial_embedding: Path | None = setting(
        None,
        "continue from an existing embedding file (diffusers .bin/.safetensors, A1111 .pt or "
        "emb_params)",
        group="token",
        metavar="FILE",
    )
    # Checkpoints
    checkpointing_steps: int = setting(
        500, "save a resumable checkpoint every N optimizer steps", group="checkpoints"
    )
    checkpoints_total_limit: int | None = setting(
        3, "keep only the newest N checkpoints (0 keeps all)", group="checkpoints"
    )
    resume_from_checkpoint: str | None = setting(
        None, "a checkpoint folder, or 'latest' for the newest one in the output folder",
        group="checkpoints", label="Resume from last saved checkpoint",
    )
    save_steps: int = setting(
        500, "write learned_embeds-steps-N every N optimizer steps", group="checkpoints"
    )
    only_save_embeds: bool = setting(
        True, "save only the embedding; --no-only_save_embeds also writes <output>/pipeline, a full diffusers pipeline that knows the trigger",
        group="checkpoints",
    )
    # Previews
    validation_prompt: tuple[str, ...] | None = setting(
        None,
        "prompt of the preview images made during training, a row of pictures each; give it several "
        "times for several rows; {} stands for the trigger (default: the trigger alone, such as 'a "
        "photo of a <trigger>', and in a context, such as 'a photo of a <trigger> on a table'); "
        "'none' turns previews off",
        group="previews",
        label="Previews (p1 | p2; none=off)",
        metavar="PROMPT",
    )
    num_validation_images: int = setting(4, "images of each preview prompt", group="previews")
    validation_steps: int | None = setting(
        None,
        "make a preview every N optimizer steps, and one before the first (default: --save_steps, "
        "so each preview has its learned_embeds-steps-N file, or half of a shorter run)",
        group="previews",
        label="Preview every N steps",
        slider=(10, 2000),
    )
    validation_seed: int | None = setting(
        None,
        "seed of the previews' starting noise, the same for every preview so they differ only "
        "by what was learned (default: the run's seed)",
        group="previews",
    )
    stop_when_settled: bool = setting(
        False,
        "end the run at the step where the fixed evaluation batch's score settled (scored every "
        "--validation_steps) and install the step that scored best up to there; the last step's "
        "files keep their step name (--install-step N installs any step)",
        group="previews", label="Stop when the evaluation score settles",
    )
    # Training
    repeats: int = setting(100, "how many times the images repeat in one epoch", group="training")
    seed: int | None = setting(
        None, "random seed (default: a random one, recorded in the output folder)", group="training"
    )
    train_batch_size: int | None = setting(
        None,
        "images per step on each device (default: 8 on a GPU of 12 GB or more where "
        "memory-efficient attention runs, else 3; an SDXL model's follows the GPU's memory, 1 to 8)",
        group="training", label="Batch Size (reduce if you run out of memory)", slider=(1, 50),
    )
    num_train_epochs: int | None = setting(
        None, "train for this many epochs instead of --max_train_steps", group="training"
    )
    max_train_steps: int = setting(
        3000, "number of optimizer steps (most image sets converge in 2000-3000)",
        group="training", label="Max Training Steps", slider=(10, 10000),
    )
    gradient_accumulation_steps: int = setting(
        4, "batches accumulated before each optimizer step", group="training",
        label="Gradient Accumulation Steps", slider=(1, 10),
    )
    gradient_checkpointing: bool = setting(
        False, "trade compute for memory in the UNet and text encoder", group="training"
    )
    learning_rate: float = setting(
        5e-4, "learning rate before scaling (may be raised to 5e-3)", group="training",
        label="Learning Rate",
    )
    scale_lr: bool = setting(
        True, "multiply the learning rate by GPUs x batch size x accumulation steps",
        group="training", label="Scale learning rate by number of GPUs, steps and batch size",
    )
    lr_scheduler: str = setting(
        "constant", "learning-rate schedule", group="training", choices=LR_SCHEDULERS,
        label="Learning rate scheduler",
    )
    lr_warmup_steps: int = setting(
        0, "optimizer steps of learning-rate warm-up", group="training", label="Warmup Steps",
        slider=(0, 100),
    )
    lr_num_cycles: int = setting(1, "restarts of cosine_with_restarts", group="training")
    lr_power: float = setting(1.0, "power of the polynomial schedule", group="training")
    adam_beta1: float = setting(0.9, "AdamW beta1", group="training")
    adam_beta2: float = setting(0.999, "AdamW beta2", group="training")
    adam_weight_decay: float = setting(1e-2, "AdamW weight decay", group="training")
    adam_epsilon: float = setting(1e-8, "AdamW epsilon", group="training")
    snr_gamma: float = setting(
        0.0,
        "min-SNR loss weighting with this gamma (5 is usual): easy, low-noise timesteps weigh "
        "less; for epsilon and v-prediction models; 0 is off",
        group="training", label="Min-SNR gamma (0 = off)",
    )
    noise_offset: float = setting(
        0.0,
        "add this much noise shared by each channel (0.05-0.1 is usual), so the model can learn "
        "very dark and very bright pictures; 0 is off",
        group="training", label="Noise offset",
    )
    min_timestep: int | None = setting(
        None,
        "train only on noise levels from this timestep up (0-999; kohya's name). The nearly "
        "noise-free ones below it ask the vector for the photos' fine detail (outlines, grain, "
        f"shading) rather than the object (default: {OBJECT_MIN_TIMESTEP} for an object, measured on "
        "the world model; 0 for a style, whose texture is that detail)",
        group="training", label="Lowest timestep trained", slider=(0, 999),
    )
    max_timestep: int = setting(
        MAX_TIMESTEP,
        "train only on noise levels below this timestep (1-1000; kohya's name); 1000 is the "
        "noisiest a Stable Diffusion model knows",
        group="training", label="Timesteps trained below", slider=(1, 1000),
    )
    mixed_precision: str | None = setting(
        None, "mixed precision (default: fp16 on a GPU, no on a CPU)", group="training",
        choices=PRECISIONS, label="Mixed Precision",
    )
    allow_tf32: bool = setting(False, "allow TF32 matrix maths on Ampere GPUs", group="training")
    enable_xformers_memory_efficient_attention: bool | None = setting(
        None, "use xFormers attention (default: on when it works on this GPU)", group="training",
        label="Use xformers acceleration",
    )
    compile: bool | None = setting(
        None,
        "compile the UNet (CUDA graphs on a GPU): slower start, faster steps (default: on for "
        f"CUDA runs of at least {COMPILE_MIN_STEPS} steps, where it pays back)",
        group="training",
    )
    deterministic: bool = setting(
        False,
        "make runs bit-identical for the same seed and after a resume, at some speed (on a CUDA "
        "GPU: deterministic kernels; on a CPU: one thread, whatever the load; OMP_NUM_THREADS also "
        "fixes the CPU's thread count)",
        group="training", label="Bit-identical results (slower)",
    )
    dataloader_num_workers: int = setting(
        0, "threads that decode and resize images while the VAE encodes them", group="training"
    )
    report_to: str = setting(
        "none", "also log to tensorboard or wandb when installed", group="training",
        choices=("none", "tensorboard", "wandb", "all"),
    )

    def __post_init__(self) -> None:
        # One prompt given as text (the way InvokeAI and older preferences hold it) is a row too.
        if isinstance(self.validation_prompt, str):
            self.validation_prompt = (self.validation_prompt,)
        elif self.validation_prompt is not None:
            self.validation_prompt = tuple(self.validation_prompt)

    @property
    def trigger(self) -> str:
        return bare_trigger(self.placeholder_token)

    @property
    def token(self) -> str:
        return f"<{self.trigger}>"

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

    @property
    def lowest_timestep(self) -> int:
        """``--min_timestep``, else the learnable property's own."""
        if self.min_timestep is not None:
            return self.min_timestep
        return default_min_timestep(self.learnable_property)

    def problems(self) -> list[Problem]:
        """Every value problem, each with the field that fixes it; empty when the settings can run."""
        checks = (self._word_problems, self._count_problems, self._training_problems, self._data_problems)
        return [problem for check in checks for problem in check()]

    def _word_problems(self) -> list[Problem]:
        found = [trigger_problem(self.placeholder_token)]
        if not self.initializer_token.strip():
            found.append(Problem("the initializer is empty; use a word such as '*' or 'painting', or a short "
                                 "phrase", "initializer_token"))
        found.append(self.preview_prompt_problem())
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

    def _training_problems(self) -> list[Problem]:
        found = []
        rate = self.learning_rate
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            found.append(Problem(f"the learning rate must be a positive number such as 5e-4, not {rate}",
                                 "learning_rate"))
        for name, what, allowed in (
            ("lr_scheduler", "learning rate scheduler", LR_SCHEDULERS),
            ("mixed_precision", "mixed precision", PRECISIONS),
            ("learnable_property", "learnable property", LEARNABLE_PROPERTIES),
        ):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                found.append(Problem(f"the {what} '{value}' is unknown; use one of {', '.join(allowed)}", name))
        if self.preserve_embedding_norm and self.learn_direction_only:
            found.append(Problem(
                "--preserve_embedding_norm and --learn_direction_only both hold the vectors' size; choose one "
                "of them", "learn_direction_only"))
        rate = self.direction_learning_rate
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            found.append(Problem(f"the direction learning rate must be a positive number such as 1e-2, not {rate}",
                                 "direction_learning_rate"))
        if not (math.isfinite(self.snr_gamma) and self.snr_gamma >= 0):
            found.append(Problem(
                f"the min-SNR gamma must be 0 (off) or a positive number such as 5, not {self.snr_gamma}",
                "snr_gamma"))
        if not (math.isfinite(self.noise_offset) and 0.0 <= self.noise_offset <= 1.0):
            found.append(Problem(f"the noise offset {self.noise_offset} is not between 0 and 1; use 0.05 or 0",
                                 "noise_offset"))
        if not 1 <= self.max_timestep <= MAX_TIMESTEP:
            found.append(Problem(f"--max_timestep {self.max_timestep} is not between 1 and {MAX_TIMESTEP}; "
                                 f"use {MAX_TIMESTEP}, the noisiest", "max_timestep"))
        elif not 0 <= self.lowest_timestep < self.max_timestep:
            found.append(Problem(
                f"--min_timestep {self.lowest_timestep} is not between 0 and --max_timestep {self.max_timestep}; "
                f"give a lower one, such as {OBJECT_MIN_TIMESTEP}", "min_timestep"))
        return found

    def _data_problems(self) -> list[Problem]:
        found = []
        if self.resolution is not None and (self.resolution < 8 or self.resolution % 8):
            found.append(Problem(
                f"the resolution {self.resolution} is not a positive multiple of 8; use 512, 768 or 1024",
                "resolution"))
        if self.bucket_reso_steps < 8 or self.bucket_reso_steps % 8:
            found.append(Problem(
                f"the bucket step {self.bucket_reso_steps} is not a positive multiple of 8; use 64",
                "bucket_reso_steps"))
        if not 0.0 <= self.caption_tag_dropout_rate < 1.0:
            found.append(Problem(
                f"the tag dropout rate {self.caption_tag_dropout_rate} is not between 0 and 1; use 0.1 or 0",
                "caption_tag_dropout_rate"))
        return found

    @property
    def preview_prompts(self) -> tuple[str, ...]:
        """The prompts as given, blank ones left out (empty: the default ones)."""
        return tuple(prompt.strip() for prompt in self.validation_prompt or () if prompt.strip())

    @property
    def previews_off(self) -> bool:
        return any(prompt.lower() == "none" for prompt in self.preview_prompts)

    def preview_prompt_problem(self) -> Problem | None:
        """A preview prompt without the trigger shows nothing of what is being learned.

        The bare word would not do either: the tokenizer splits ``psychedelic`` into pieces and
        only ``<psychedelic>`` is the trained token.
        """
        if self.previews_off or not self.trigger:
            return None
        for prompt in self.preview_prompts:
            if "{}" not in prompt and self.token not in prompt:
                return Problem(
                    f"the preview prompt '{prompt}' does not contain the trigger {self.token}; write it "
                    f"in, or {{}} in its place, or use 'none' to turn previews off",
                    "validation_prompt",
                )
        return None

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
        """Plain values (paths as strings, several values as lists) for JSON and YAML files."""
        return {
            f.name: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
            for f in dataclasses.fields(self)
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
            if key not in known:
                continue
            converted = coerce(known[key], value)
            if converted is not _INVALID:
                changes[key] = converted
        return dataclasses.replace(result, **changes)


_INVALID = object()


def field_types(f: dataclasses.Field) -> tuple[type, bool]:
    """The base type of a field and whether it may be None (annotations are strings here)."""
    annotation = str(f.type)
    optional = "None" in annotation
    kinds = (("bool", bool), ("int", int), ("float", float), ("Path", Path), ("str", str), ("tuple", tuple))
    for name, kind in kinds:
        if annotation.startswith(name):
            return kind, optional
    raise TypeError(f"unsupported setting type {annotation}")


def coerce(f: dataclasses.Field, value: Any) -> Any:
    """Convert a loaded value to the field's type, or ``_INVALID`` when it cannot be."""
    kind, optional = field_types(f)
    if value is None or value == "":
        return None if optional else (_INVALID if kind is not str else "")
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                return _INVALID
            return int(value)
        if kind is float:
            return float(value)
        if kind is Path:
            return Path(str(value)).expanduser()
        if kind is tuple:
            return (str(value),) if isinstance(value, str) else tuple(str(item) for item in value)
        return str(value)
    except (TypeError, ValueError):
        return _INVALID


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
    result gives back the same settings.
    """
    argv = []
    for f in dataclasses.fields(TrainingSettings):
        value = getattr(settings, f.name)
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(f"--{f.name}" if value else f"--no-{f.name}")
        elif isinstance(value, tuple):
            argv += [f"--{f.name}={item}" for item in value]
        else:
            argv.append(f"--{f.name}={value}")
    return argv
