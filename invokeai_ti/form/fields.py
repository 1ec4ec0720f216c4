"""The form's field model, derived from ``TrainingSettings``: which fields, in what order, with what
labels, widget kinds, slider ranges and choices; how values typed as text are read and shown; and
the form's fixed texts (title, help line, the problems popup, the too-small-terminal message).

Nothing here holds a value: the values live in ``form.state``'s ``FormState``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ..data.templates import default_prompts
from ..errors import Problem
from ..models import FORMAT_DIFFUSERS, SOURCE_GIVEN, ModelInfo
from ..paths import RootLayout
from ..settings import bare_trigger, field_named, field_types

TITLE = "Textual Inversion Settings"
HELP_LINE = (
    "Tab or Ctrl-N: next field, Shift-Tab or Ctrl-P: previous (Tab in a folder completes its "
    "name); arrows choose, Space ticks; OK is on the last page, Ctrl-C cancels."
)
PROBLEMS_HEADING = "The following problems were detected and must be corrected:"

# InvokeAI 2.3.5's fields, in its order, then the previews'; each is a TrainingSettings field.
FORM_FIELDS = (
    "model",
    "placeholder_token",
    "initializer_token",
    "resume_from_checkpoint",
    "learnable_property",
    "train_data_dir",
    "output_dir",
    "resolution",
    "center_crop",
    "mixed_precision",
    "max_train_steps",
    "train_batch_size",
    "gradient_accumulation_steps",
    "lr_warmup_steps",
    "learning_rate",
    "scale_lr",
    "enable_xformers_memory_efficient_attention",
    "lr_scheduler",
    "validation_prompt",
    "validation_steps",
    "deterministic",
    # Later pages: a checkpoint file's configs, the data folder's conventions and the loss
    # weightings users know from kohya.
    "model_config",
    "bucket",
    "masked_loss",
    "shuffle_caption",
    "keep_tokens",
    "caption_tag_dropout_rate",
    "snr_gamma",
    "noise_offset",
    "min_timestep",
    "max_timestep",
    # The vectors: how many, and how their size is held; and where to stop.
    "num_vectors",
    "preserve_embedding_norm",
    "learn_direction_only",
    "direction_learning_rate",
    "stop_when_settled",
    # Where a 4.x-7.x InvokeAI registers the embedding, and the sign-in it may ask for.
    "invokeai_url",
    "invokeai_email",
    "invokeai_password",
)
# Numbers typed as text (the learning rate has its own format); checked on OK like any value.
NUMBER_FIELDS = {"caption_tag_dropout_rate": "0.1", "snr_gamma": "5", "noise_offset": "0.05",
                 "direction_learning_rate": "1e-2"}
# Several preview prompts share the form's one line, a bar between them (the command line repeats
# --validation_prompt instead).
PROMPT_SEPARATOR = " | "
FOLDER_FIELDS = {"train_data_dir": RootLayout.data_dir, "output_dir": RootLayout.output_dir}
# Folders typed as text with no default to follow; empty is None.
OPTIONAL_FOLDERS = ("model_config",)

# npyscreen's own minimum form size. Every field fits in that width, and the form pages through
# the fields at that height, so this is all the terminal needs.
MIN_COLUMNS = 80
MIN_LINES = 24
# The model list scrolls beyond this, so one list can never outgrow a 24-line page.
MODEL_LIST_ROWS = 6
RESUME_LABEL = "Resume from last saved checkpoint"
# Short names for the note under the resume box, which has a few lines for everything it set.
NOTE_LABELS = {
    "gpus": "GPUs",
    "num_vectors": "vectors",
    "train_batch_size": "batch",
    "gradient_accumulation_steps": "accumulation",
    "scale_lr": "scaling",
    "lr_scheduler": "scheduler",
    "lr_warmup_steps": "warm-up",
    "lr_num_cycles": "cycles",
    "lr_power": "power",
}


def label(name: str) -> str:
    return field_named(name).metadata["label"]


def widget_kind(name: str) -> str:
    """How a field is edited, derived from its type and metadata rather than listed again."""
    f = field_named(name)
    if name == "model" or f.metadata.get("choices") or f.metadata.get("choices_form"):
        return "select"
    if name == "resume_from_checkpoint" or field_types(f)[0] is bool:
        return "checkbox"
    if f.metadata.get("secret"):
        return "password"
    if f.metadata.get("slider"):
        return "slider"
    if field_types(f)[0] is Path:
        return "folder"
    return "text"


def slider_step(low: int, high: int) -> int:
    """One key press per unit on short ranges; about forty presses end to end on long ones."""
    span = high - low
    if span <= 100:
        return 1
    rough = span / 40
    magnitude = 10 ** int(math.log10(rough))
    return next(int(m * magnitude) for m in (1, 2, 2.5, 5, 10) if m * magnitude >= rough)


def slider_range(name: str, value: int) -> tuple[int, int]:
    """The metadata range, widened to hold a value given on the command line or saved."""
    low, high = field_named(name).metadata["slider"]
    return min(low, value), max(high, value)


def format_rate(rate: float) -> str:
    """InvokeAI shows 5.0e-04; fall back to the exact float when that would round it."""
    short = f"{rate:.1e}"
    return short if float(short) == rate else repr(rate)


def parse_rate(text: str) -> tuple[float | None, Problem | None]:
    try:
        return float(text.strip()), None
    except ValueError:
        return None, Problem(f"the learning rate '{text.strip()}' is not a number; type one such as 5e-4",
                             "learning_rate")


def parse_number(name: str, text: Any) -> tuple[float | None, Problem | None]:
    try:
        return float(str(text).strip()), None
    except ValueError:
        return None, Problem(
            f"the {label(name)} '{str(text).strip()}' is not a number; type one such as {NUMBER_FIELDS[name]}", name
        )


def model_spec(model: ModelInfo) -> str:
    """What ``find_model`` resolves back to this model: its name, or the folder it was given as."""
    return model.location if model.source == SOURCE_GIVEN else model.name


def model_label(model: ModelInfo) -> str:
    """A line of the model list: the name, base and (for one file) format only; the chosen
    model's description is shown whole under the list, where a list line at 80 columns would cut
    it off."""
    kind = model.base if model.format == FORMAT_DIFFUSERS else f"{model.base} {model.format}"
    text = f"{model.name} ({kind})"
    if not model.trainable:
        return text + " (cannot be trained)"
    return text + " (not downloaded)" if model.path is None else text


def complete_folder(text: str) -> str | None:
    """What Tab makes of a folder being typed: the one subfolder its last part starts, or as much
    as all of them share. None when there is nothing to add (a folder that exists already, or no
    match); then Tab moves to the next field, as in every other field."""
    head, start = os.path.split(text)
    parent = Path(head or ".").expanduser()
    if not text.strip() or Path(text).expanduser().is_dir():
        return None
    try:
        names = [child.name for child in parent.iterdir()
                 if child.is_dir() and child.name.startswith(start) and not child.name.startswith(".")]
    except OSError:
        return None
    common = os.path.commonprefix(names) if names else ""
    return os.path.join(head, common) if len(common) > len(start) else None


def too_small_message(columns: int, lines: int) -> str:
    return (
        f"Not enough window space for the interface: it needs at least {MIN_COLUMNS}x{MIN_LINES} "
        f"(this terminal is {columns}x{lines}). Please make your window larger and try again."
    )

def form_default_prompt(trigger: str, learnable_property: str | None) -> str:
    """The default preview prompts as the form shows them, with ``<trigger>`` until one is typed."""
    token = f"<{bare_trigger(trigger) or 'trigger'}>"
    return PROMPT_SEPARATOR.join(default_prompts(learnable_property or "object", token))


def problems_message(problems: list[Problem]) -> str:
    return "\n".join([PROBLEMS_HEADING] + [f"* {problem.sentence}" for problem in problems])


def field_to_fix(problems: list[Problem]) -> str | None:
    """Where the cursor goes after the popup: the field of the first problem that has one."""
    return next((problem.field for problem in problems if problem.field is not None), None)
