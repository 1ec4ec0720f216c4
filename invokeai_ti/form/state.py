"""Everything the settings form decides, kept apart from npyscreen so it can be tested plainly.

The form is a view of ``TrainingSettings``: its fields, labels, choices and slider ranges come
from the dataclass metadata, its defaults from the dataclass and ``resolve_device_defaults``, and
its validation is ``workflow.check_run``, the same call the command line makes. This module adds
only what exists because there is a form: values held as a person types them (a learning rate
may be half-typed text), folders that follow the trigger, the resume box that follows the output
folder, and the order in which CLI flags, saved preferences and defaults win.

Resuming is decided with the trainer's own functions (``checkpoint_to_resume``, ``RunShape``,
``resume.nothing_left``): the box shows the checkpoint ``latest`` will continue, ticking it fills
in that checkpoint's run, and OK refuses what the trainer would refuse, while the form is open.
"""

from __future__ import annotations

import dataclasses
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.templates import default_prompts
from ..device import DeviceCaps
from ..errors import Problem, UserError, as_sentence
from ..models import (
    FORMAT_CHECKPOINT, FORMAT_DIFFUSERS, SOURCE_GIVEN, ModelInfo, default_model, find_model, no_model_message,
)
from ..outputs.checkpoints import (
    SHAPE_LABELS,
    Checkpoint,
    RunShape,
    checkpoint_to_resume,
    list_checkpoints,
    shown,
)
from ..outputs.layout import SET_ASIDE, OutputLayout
from ..outputs.previous_run import earlier_run_summary
from ..outputs.resume import nothing_left
from ..paths import RootLayout
from ..settings import (
    FORM_RESOLUTIONS,
    TrainingSettings,
    bare_trigger,
    default_min_timestep,
    field_named,
    field_types,
    trigger_problem,
)
from ..workflow import RunPlan, check_run

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


def trusted_preferences(saved: dict[str, Any], caps: DeviceCaps) -> dict[str, Any]:
    """Drop saved choices the form cannot show or this device cannot honour; defaults apply.

    Preferences may come from another machine, or from InvokeAI, which believed xFormers always
    worked; pre-ticking a box that fails at the first step is worse than the default.
    """
    known = {f.name: f for f in dataclasses.fields(TrainingSettings)}
    kept = {
        name: value
        for name, value in saved.items()
        if name in known and value in known[name].metadata.get("choices", (value,))
    }
    if not caps.xformers:
        kept.pop("enable_xformers_memory_efficient_attention", None)
    if kept.get("mixed_precision") not in caps.precisions:
        kept.pop("mixed_precision", None)
    return kept


class FormState:
    """The form's values as the widgets hold them, and the rules that connect them.

    ``values`` maps each name in ``FORM_FIELDS`` to a widget-ready value: text for the trigger,
    initializer, folders and learning rate; a bool for checkboxes (resume included); an int for
    sliders and the resolution; the chosen string for other selections (a model spec for the
    model, or None when none is chosen). Settings without a field ride along in ``base``.
    """

    def __init__(
        self,
        *,
        base: TrainingSettings,
        layout: RootLayout,
        caps: DeviceCaps,
        models: list[ModelInfo],
        values: dict[str, Any],
        notes: list[str],
    ) -> None:
        self.base = base
        self.layout = layout
        self.caps = caps
        self.models = models
        self.values = values
        self.notes = notes
        self.gpus = list(range(len(self.gpu_choices())))
        # The checkpoint ``latest`` would continue, or why the newest one cannot be read.
        self.checkpoint: Checkpoint | None = None
        self.checkpoint_problem: str | None = None
        # What ticking resume replaced (to put back on unticking) and what it put there.
        self.replaced: dict[str, Any] = {}
        self.filled: dict[str, Any] = {}
        # The last usable trigger: the folders follow it, not a half-typed or mistyped one.
        self.folder_trigger = bare_trigger(values["placeholder_token"])

    @classmethod
    def build(
        cls,
        typed: Mapping[str, Any],
        *,
        layout: RootLayout,
        caps: DeviceCaps,
        models: list[ModelInfo],
        saved: dict[str, Any],
        notes: Sequence[str] = (),
    ) -> FormState:
        """Flags typed with --gui win over saved preferences, which win over the defaults.

        ``typed`` holds exactly the flags on the command line, so a flag that repeats its
        default still beats a saved preference.
        """
        typed = dict(typed)
        saved = trusted_preferences(saved, caps)
        models = list(models)
        spec = typed.get("model")
        if spec:
            chosen = next((m for m in models if spec in (m.name, m.location)), None)
            if chosen is None:
                chosen = find_model(spec, layout, model_config=typed.get("model_config"))
                models.append(chosen)
        else:
            chosen = default_model(models, last_used=saved.get("model"))
        if chosen is None:
            raise UserError(no_model_message(layout), exit_code=1)
        if "resolution" not in typed and saved.get("model") not in (chosen.name, chosen.location):
            saved.pop("resolution", None)
        if chosen.format != FORMAT_CHECKPOINT:
            saved.pop("model_config", None)  # a checkpoint's configs; a folder has its own

        settings = TrainingSettings.from_dict(saved)
        settings = dataclasses.replace(settings, **(typed | {"root": layout.root}))
        settings = settings.resolve_device_defaults(caps, chosen.base)
        values = {name: getattr(settings, name) for name in FORM_FIELDS}
        values.update(
            model=model_spec(chosen),
            resolution=settings.resolution or chosen.native_resolution,
            learning_rate=format_rate(settings.learning_rate),
            enable_xformers_memory_efficient_attention=bool(
                settings.enable_xformers_memory_efficient_attention
            ),
            validation_prompt=PROMPT_SEPARATOR.join(settings.preview_prompts)
            or form_default_prompt(settings.placeholder_token, settings.learnable_property),
            validation_steps=settings.preview_every,
            min_timestep=settings.lowest_timestep,
            invokeai_email=settings.invokeai_email or "",
            invokeai_password=settings.invokeai_password or "",
            **{name: f"{getattr(settings, name):g}" for name in NUMBER_FIELDS},
            **{
                name: str(getattr(settings, name) or derive(layout, settings.trigger))
                for name, derive in FOLDER_FIELDS.items()
            },
            **{name: str(getattr(settings, name) or "") for name in OPTIONAL_FOLDERS},
        )
        state = cls(base=settings, layout=layout, caps=caps, models=models, values=values,
                    notes=list(notes))
        state.refresh_resume()
        return state

    # Reactions to edits -------------------------------------------------------------------

    def trigger_edited(self, text: str) -> None:
        """Folders still at the old trigger's defaults move to the new trigger's.

        A folder the user typed (or passed as a flag) stays put: only defaults follow. A trigger
        that cannot be used (a space, a '!') moves nothing: the hint beside it says what is wrong.
        """
        old = self.folder_trigger
        new = bare_trigger(text)
        self.values["placeholder_token"] = text
        if new and trigger_problem(new) is not None:
            return
        self.follow_default_prompt(text, self.values["learnable_property"], old)
        self.folder_trigger = new
        for name, derive in FOLDER_FIELDS.items():
            current = self.values[name].strip()
            if not current or Path(current).expanduser() == derive(self.layout, old):
                self.values[name] = str(derive(self.layout, new))
        self.refresh_resume()

    def max_steps_edited(self, steps: int) -> None:
        """A preview interval still at its default follows the run's length (half a short run)."""
        before = self.default_preview_every()
        self.values["max_train_steps"] = steps
        if int(self.values["validation_steps"]) == before:
            self.values["validation_steps"] = self.default_preview_every()

    def default_preview_every(self) -> int:
        steps = max(1, int(self.values["max_train_steps"]))
        return dataclasses.replace(self.base, validation_steps=None, max_train_steps=steps).preview_every

    def learnable_property_chosen(self, choice: str | None) -> None:
        """The preview prompt and the lowest timestep, where still at the old property's defaults,
        follow to the new property's."""
        self.follow_default_prompt(self.folder_trigger, choice, self.folder_trigger)
        if choice and int(self.values["min_timestep"]) == default_min_timestep(self.values["learnable_property"]):
            self.values["min_timestep"] = default_min_timestep(choice)
        self.values["learnable_property"] = choice

    def follow_default_prompt(self, trigger: str, learnable_property: str | None, old_trigger: str) -> None:
        """A preview prompt still at the default follows the trigger and the property; a typed one stays."""
        current = self.values["validation_prompt"].strip()
        old = form_default_prompt(old_trigger, self.values["learnable_property"])
        if not current or current == old:
            self.values["validation_prompt"] = form_default_prompt(trigger, learnable_property)

    def output_dir_edited(self, text: str) -> None:
        self.values["output_dir"] = text
        self.refresh_resume()

    def refresh_resume(self) -> None:
        """Ticked exactly when the output folder holds a complete checkpoint to resume from."""
        text = self.values["output_dir"].strip()
        folder = Path(text).expanduser() if text else None
        self.checkpoint, self.checkpoint_problem = None, None
        newest = list_checkpoints(folder) if folder is not None else []
        if newest:
            try:
                self.checkpoint = checkpoint_to_resume(folder, "latest")
            except UserError:
                self.checkpoint_problem = (
                    f"the checkpoint {newest[-1][1]} cannot be read; delete it to resume from the "
                    f"one before, or untick {RESUME_LABEL} to start a new run"
                )
        self.resume_toggled(bool(newest))

    def resume_toggled(self, ticked: bool) -> None:
        """Ticking takes the checkpoint's run; unticking puts back what that replaced.

        A value edited after it was filled in is the user's and stays.
        """
        self.values["resume_from_checkpoint"] = ticked
        if ticked and self.checkpoint is not None:
            for name, value in self.checkpoint_values().items():
                current = self.current(name)
                if current == value:
                    continue
                before = self.replaced.setdefault(name, current)
                self.put(name, value)
                if value == before:
                    del self.replaced[name]
                    self.filled.pop(name, None)
                else:
                    self.filled[name] = value
        elif not ticked:
            for name, before in self.replaced.items():
                if self.current(name) == self.filled[name]:
                    self.put(name, before)
            self.replaced.clear()
            self.filled.clear()

    def checkpoint_values(self) -> dict[str, Any]:
        """The checkpoint's run as the form holds values; "gpus" for its number of processes."""
        shape = self.checkpoint.shape
        values: dict[str, Any] = {}
        model = next((m for m in self.models if m.name == shape.model), None)
        if model is not None:
            values["model"] = model_spec(model)
        for name, value in shape.setting_values().items():
            if name == "learning_rate":
                value = format_rate(value)
            elif name in NUMBER_FIELDS:
                value = f"{value:g}"
            values[name] = value
        processes = shape.num_processes
        if processes and len(self.gpus) != processes and processes <= len(self.gpu_choices()):
            values["gpus"] = list(range(processes))
        return values

    def current(self, name: str) -> Any:
        """A value wherever it lives: a field, the GPUs chosen, or a setting without a field."""
        if name == "gpus":
            return list(self.gpus)
        return self.values[name] if name in FORM_FIELDS else getattr(self.base, name)

    def put(self, name: str, value: Any) -> None:
        if name == "gpus":
            self.gpus = list(value)
        elif name in FORM_FIELDS:
            self.values[name] = value
        else:
            self.base = dataclasses.replace(self.base, **{name: value})

    def model_chosen(self, spec: str | None) -> None:
        """A model trains best at its native size, so choosing one sets the resolution to it.

        The batch size follows too while it is still the previous model's default: SDXL's is set
        by the GPU's memory. A batch size the user chose stays.
        """
        before = self.model()
        self.values["model"] = spec
        model = self.model()
        if model is not None:
            self.values["resolution"] = model.native_resolution
            if before is not None and self.values["train_batch_size"] == self.caps.batch_size_for(before.base):
                self.values["train_batch_size"] = self.caps.batch_size_for(model.base)

    # What the widgets show ----------------------------------------------------------------

    def model(self) -> ModelInfo | None:
        return next((m for m in self.models if model_spec(m) == self.values["model"]), None)

    def choices(self, name: str) -> list[Any]:
        if name == "model":
            return [model_spec(m) for m in self.models]
        if name == "resolution":
            # The list holds every value the field can have (the form's sizes, one given as a
            # flag or saved, the model's native one), so choosing never changes the list.
            model = self.model()
            recorded = self.checkpoint.shape.resolution if self.checkpoint else None
            extra = {self.base.resolution, model.native_resolution if model else None, recorded} - {None}
            return sorted(set(FORM_RESOLUTIONS) | extra)
        return list(field_named(name).metadata["choices"])

    def choice_labels(self, name: str) -> list[str]:
        if name == "model":
            return [model_label(m) for m in self.models]
        if name == "resolution":
            model = self.model()
            native = model.native_resolution if model else None
            return [f"{r} (native size of this model)" if r == native else str(r)
                    for r in self.choices(name)]
        return [str(choice) for choice in self.choices(name)]

    def model_description(self) -> str:
        """The chosen model in full, under the list, where an 80-column list line cuts it off."""
        model = self.model()
        return model.description if model is not None else ""

    def prompt_hint(self) -> str:
        """Beside the trigger, checked at every key press: how to use it, or what is wrong with it."""
        trigger = bare_trigger(self.values["placeholder_token"])
        if not trigger:
            return "(type a word such as psychedelic: prompts then use <psychedelic>)"
        if (problem := trigger_problem(trigger)) is not None:
            return f"({problem.text.removeprefix(f'the trigger term {trigger!r} ')})"
        return f"(Trigger by using <{trigger}> in your prompts)"

    def xformers_note(self, spec: str | None = None) -> str:
        """Why the box and the batch size default the way they do on this device (and model)."""
        model = self.model() if spec is None else next((m for m in self.models if model_spec(m) == spec), None)
        reason = self.caps.batch_reason(model.base if model else None)
        if self.caps.xformers:
            return f"({self.caps.xformers_reason}; {reason})"
        return f"(not available: {self.caps.xformers_reason}; {reason})"

    def help_lines(self, width: int) -> list[str]:
        return textwrap.wrap(HELP_LINE, width) + [
            line for note in self.notes for line in textwrap.wrap(f"Note: {note}", width)
        ]

    def resume_status(self) -> str:
        """Beside the resume box: the step training will start from, of the Max Training Steps."""
        ticked = self.values["resume_from_checkpoint"]
        checkpoint = self.checkpoint
        steps = int(self.values["max_train_steps"])
        if ticked and self.checkpoint_problem:
            return "(the newest checkpoint cannot be read)"
        if ticked and checkpoint is not None:
            if nothing_left(checkpoint, steps):
                return f"(step {checkpoint.step} of {steps}: nothing left)"
            return f"(from step {checkpoint.step} of {steps})"
        if ticked:
            return "(no checkpoint yet: from step 0)"
        return "(a new run from step 0)" if checkpoint is not None else ""

    def resume_details(self, width: int, most: int = 2) -> list[str]:
        """Under the resume box, in at most ``most`` lines: what ticking it set, what now differs
        from the checkpoint's run (OK would refuse it), or what a new run moves aside."""
        ticked = self.values["resume_from_checkpoint"]
        checkpoint = self.checkpoint
        texts = []
        if ticked and self.checkpoint_problem:
            texts.append(as_sentence(self.checkpoint_problem))
        elif ticked and checkpoint is not None:
            if nothing_left(checkpoint, int(self.values["max_train_steps"])):
                texts.append("Raise Max Training Steps to train more.")
            name = checkpoint.path.name
            differences = checkpoint.shape.differences(self.run_shape(self.to_settings()[0]))
            set_here = self.set_from_checkpoint()
            if differences:
                texts.append(f"Differs from {name}'s run: {'; '.join(differences)}.")
            elif set_here:
                texts.append(f"{name}'s run set (untick to undo): {', '.join(set_here)}.")
            else:
                texts.append(f"Continues {name} with its run's settings.")
        elif (summary := self.earlier_run()) is not None:
            texts.append(f"A new run moves the earlier run's files to {SET_ASIDE}/: {summary}.")
        lines = [line for text in texts for line in textwrap.wrap(text, width)]
        if len(lines) > most:
            lines[most - 1:] = [textwrap.shorten(" ".join(lines[most - 1:]), width, placeholder=" ...")]
        return lines

    def earlier_run(self) -> str | None:
        """The files of an earlier run that a new run in the output folder moves aside, in a few
        words; None when there are none. SDXL's second encoder's names are looked for too."""
        text = self.values["output_dir"].strip()
        if not text:
            return None
        layout = OutputLayout(Path(text).expanduser(), self.folder_trigger or "untitled", encoders=2)
        return earlier_run_summary(layout, self.base.logging_dir)

    def set_from_checkpoint(self) -> list[str]:
        """The values ticking resume changed and that still hold, as "batch 2"."""
        found = []
        for name, value in self.filled.items():
            if self.current(name) != value:
                continue
            label = NOTE_LABELS.get(name) or SHAPE_LABELS[name]
            found.append(f"{label} {len(value) if name == 'gpus' else shown(value)}")
        return found

    def gpu_choices(self) -> list[str]:
        """"GPUs to use" is offered only when there is more than one CUDA device to choose."""
        if self.caps.kind != "cuda" or self.caps.count < 2:
            return []
        names = self.caps.device_names or (self.caps.name,) * self.caps.count
        return [f"GPU {index}: {name}" for index, name in enumerate(names)]

    def trains_in_child_process(self) -> bool:
        """Several GPUs, or one other than the first, need processes started with that view."""
        return bool(self.gpu_choices()) and self.gpus != [0]

    # On OK ---------------------------------------------------------------------------------

    def to_settings(self) -> tuple[TrainingSettings, list[Problem]]:
        """The settings the form describes, and the problems only the form can have."""
        v = self.values
        problems = []
        if not v["model"]:
            problems.append(Problem("no model is chosen; select one under Model Name", "model"))
        if self.gpu_choices() and not self.gpus:
            problems.append(Problem("no GPU is chosen; select at least one under GPUs to use"))
        rate, problem = parse_rate(v["learning_rate"])
        if problem:
            problems.append(problem)
        changes: dict[str, Any] = {
            name: v[name]
            for name in FORM_FIELDS
            if name not in FOLDER_FIELDS and name not in ("resume_from_checkpoint", "learning_rate")
            and name not in NUMBER_FIELDS and name not in OPTIONAL_FOLDERS
        }
        for name in NUMBER_FIELDS:
            number, problem = parse_number(name, v[name])
            if problem:
                problems.append(problem)
            changes[name] = getattr(self.base, name) if number is None else number
        preview_every, lowest = int(v["validation_steps"]), int(v["min_timestep"])
        changes.update(
            validation_steps=None if preview_every == self.default_preview_every() else preview_every,
            min_timestep=None if lowest == default_min_timestep(v["learnable_property"]) else lowest,
            placeholder_token=v["placeholder_token"].strip(),
            validation_prompt=self.typed_prompt(),
            initializer_token=v["initializer_token"].strip(),
            invokeai_url=v["invokeai_url"].strip(),
            invokeai_email=v["invokeai_email"].strip() or None,
            invokeai_password=v["invokeai_password"] or None,
            resume_from_checkpoint="latest" if v["resume_from_checkpoint"] else None,
            learning_rate=self.base.learning_rate if rate is None else rate,
            **{
                name: Path(v[name].strip()).expanduser() if v[name].strip() else None
                for name in (*FOLDER_FIELDS, *OPTIONAL_FOLDERS)
            },
        )
        for name in FORM_FIELDS:
            if widget_kind(name) == "slider" and changes[name] is not None:
                changes[name] = int(changes[name])
        return dataclasses.replace(self.base, **changes), problems

    def settings_to_remember(self, settings: TrainingSettings) -> TrainingSettings:
        """The settings to save as preferences: the user's own, not those a checkpoint filled in.

        Resuming the demo's run must not make its tiny batch the next new run's default.
        """
        own = {}
        for name, before in self.replaced.items():
            if name == "gpus" or self.current(name) != self.filled[name]:
                continue
            if name == "learning_rate":
                before = parse_rate(before)[0]
            elif name in NUMBER_FIELDS:
                before = parse_number(name, before)[0]
            if before is not None:
                own[name] = before
        return dataclasses.replace(settings, **own)

    def run_shape(self, settings: TrainingSettings) -> RunShape:
        """This form's run as a checkpoint records one; what the form cannot know is left out."""
        model = self.model()
        shape = RunShape.of_run(
            settings,
            model=model.name if model else None,
            resolution=self.values["resolution"],
            num_vectors=None if settings.initial_embedding else settings.num_vectors,
            token_dims=None,
            num_processes=len(self.gpus) if self.gpu_choices() else 1,
        )
        if parse_rate(self.values["learning_rate"])[1]:
            shape = dataclasses.replace(shape, learning_rate=None)
        unreadable = {name: None for name in NUMBER_FIELDS if parse_number(name, self.values[name])[1]}
        return dataclasses.replace(shape, **unreadable)

    def resume_problems(self, settings: TrainingSettings) -> list[Problem]:
        """What the trainer would refuse about this resume, worded for the form's fields."""
        if not self.values["resume_from_checkpoint"]:
            return []
        if self.checkpoint_problem:
            return [Problem(self.checkpoint_problem, "resume_from_checkpoint")]
        checkpoint = self.checkpoint
        if checkpoint is None:
            return []
        problems = []
        if differences := checkpoint.shape.differences(self.run_shape(settings)):
            problems.append(Problem(
                f"{RESUME_LABEL} is ticked, but {checkpoint.path.name} in the output folder was made "
                f"by a different run: {'; '.join(differences)}; untick it to start a new run with "
                "these values, or set them back to the checkpoint's (unticking and ticking it again "
                "does that)",
                "resume_from_checkpoint",
            ))
        if not settings.num_train_epochs and nothing_left(checkpoint, settings.max_train_steps):
            problems.append(Problem(
                f"{checkpoint.path.name} is already at step {checkpoint.step} of the "
                f"{settings.max_train_steps} Max Training Steps, so there is nothing to train; raise "
                f"Max Training Steps to train more, or untick {RESUME_LABEL} to start over",
                "max_train_steps",
            ))
        return problems

    def typed_prompt(self) -> tuple[str, ...] | None:
        """None while the field shows the default, so the settings and preferences say "default"."""
        text = self.values["validation_prompt"].strip()
        default = form_default_prompt(self.folder_trigger, self.values["learnable_property"])
        if text in ("", default):
            return None
        return tuple(prompt.strip() for prompt in text.split(PROMPT_SEPARATOR.strip()) if prompt.strip())

    def validate(self) -> tuple[RunPlan | None, list[Problem]]:
        """Every problem at once (the run's own checks and the form's); a plan only when none."""
        settings, problems = self.to_settings()
        plan, found = check_run(settings, self.caps)
        problems += found + self.resume_problems(settings)
        return (None if problems else plan), problems


def form_default_prompt(trigger: str, learnable_property: str | None) -> str:
    """The default preview prompts as the form shows them, with ``<trigger>`` until one is typed."""
    token = f"<{bare_trigger(trigger) or 'trigger'}>"
    return PROMPT_SEPARATOR.join(default_prompts(learnable_property or "object", token))


def problems_message(problems: list[Problem]) -> str:
    return "\n".join([PROBLEMS_HEADING] + [f"* {problem.sentence}" for problem in problems])


def field_to_fix(problems: list[Problem]) -> str | None:
    """Where the cursor goes after the popup: the field of the first problem that has one."""
    return next((problem.field for problem in problems if problem.field is not None), None)
