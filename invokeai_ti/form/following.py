"""How one field follows another while the form is open: the folders and the preview prompt follow
the trigger, the resume box (and the run it fills in) follows the output folder, the resolution
and batch size follow the model, the lowest timestep the learnable property, and the preview
interval the run's length.

Resuming is decided with the trainer's own functions (``checkpoint_to_resume``): the box is
ticked when the output folder holds the checkpoint ``latest`` will continue, and ticking it fills
in that checkpoint's run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..outputs.checkpoints import checkpoint_to_resume, list_checkpoints
from ..settings import bare_trigger, trigger_problem
from .fields import (
    FOLDER_FIELDS,
    FORM_FIELDS,
    NUMBER_FIELDS,
    RESUME_LABEL,
    form_default_prompt,
    format_rate,
    model_spec,
)


class FollowingFields:
    """The reactions to edits, mixed into ``FormState``, whose values, base settings, models,
    checkpoint and GPUs they read and change."""

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
        """The preview prompt, where still at the old property's default, follows to the new property's."""
        self.follow_default_prompt(self.folder_trigger, choice, self.folder_trigger)
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
