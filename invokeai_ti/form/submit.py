"""What OK does with the form: turn its values into ``TrainingSettings`` and a ``RunPlan`` (through
``workflow.check_run``, the same call the command line makes), list every problem at once, refuse
what the trainer would refuse about a resume (``RunShape``, ``resume.nothing_left``), and choose
which settings are saved as preferences.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import Problem
from ..outputs.checkpoints import RunShape
from ..outputs.resume import nothing_left
from ..settings import TrainingSettings
from ..workflow import RunPlan, check_run
from .fields import (
    FOLDER_FIELDS,
    FORM_FIELDS,
    NUMBER_FIELDS,
    OPTIONAL_FOLDERS,
    PROMPT_SEPARATOR,
    RESUME_LABEL,
    form_default_prompt,
    parse_number,
    parse_rate,
    widget_kind,
)


class Submission:
    """The checks and conversions behind OK, mixed into ``FormState``, whose values, base settings
    and checkpoint they read."""

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
        preview_every = int(v["validation_steps"])
        changes.update(
            validation_steps=None if preview_every == self.default_preview_every() else preview_every,
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
