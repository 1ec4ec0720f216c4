"""The form's values as a person types them, built from the flags typed with --gui, the saved
preferences and the device, and what the widgets show of them. Kept apart from npyscreen so it can
be tested plainly.

The form is a view of ``TrainingSettings``: its fields, labels, choices and slider ranges come
from the dataclass metadata (``form.fields``), its defaults from the dataclass and
``resolve_device_defaults``, and its validation is ``workflow.check_run``, the same call the
command line makes (``form.submit``). What exists only because there is a form is held here:
values held as a person types them (a learning rate may be half-typed text), and the order in
which CLI flags, saved preferences and defaults win; how fields follow one another (folders that
follow the trigger, the resume box that follows the output folder) is ``form.following``.

Resuming is decided with the trainer's own functions (``checkpoint_to_resume``, ``RunShape``,
``resume.nothing_left``): the box shows the checkpoint ``latest`` will continue, ticking it fills
in that checkpoint's run, and OK refuses what the trainer would refuse, while the form is open.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..device import DeviceCaps
from ..errors import UserError, as_sentence
from ..models import FORMAT_CHECKPOINT, ModelInfo, default_model, find_model, no_model_message
from ..outputs.checkpoints import Checkpoint
from ..outputs.layout import SET_ASIDE, OutputLayout
from ..outputs.previous_run import earlier_run_summary
from ..outputs.resume import nothing_left
from ..outputs.run_shape import SHAPE_LABELS, shown
from ..paths import RootLayout
from ..settings import FORM_RESOLUTIONS, TrainingSettings, bare_trigger, field_named, trigger_problem
from .fields import (
    FOLDER_FIELDS,
    FORM_FIELDS,
    HELP_LINE,
    NOTE_LABELS,
    NUMBER_FIELDS,
    OPTIONAL_FOLDERS,
    PROMPT_SEPARATOR,
    form_default_prompt,
    format_rate,
    model_label,
    model_spec,
)
from .following import FollowingFields
from .submit import Submission


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


def chosen_model(typed: Mapping[str, Any], layout: RootLayout, models: list[ModelInfo],
                 saved: Mapping[str, Any]) -> ModelInfo:
    """The model given as a flag (added to ``models`` when it is not listed there), else the one
    used last, else the default."""
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
    return chosen


class FormState(FollowingFields, Submission):
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
        chosen = chosen_model(typed, layout, models, saved)
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
            min_timestep=settings.min_timestep,
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
