"""``invokeai-ti --gui``: the keyboard-driven form InvokeAI's launcher opens (option 3).

This module is only the npyscreen view: which widget shows which ``FormState`` value, and the
terminal around it. What the fields are, their defaults and what is wrong with them are decided in
``form.state`` (from ``TrainingSettings``); training is ``workflow.run_plan``, exactly as for the
command line, after curses has given the terminal back so progress prints normally.
"""

from __future__ import annotations

import curses
import curses.ascii
import dataclasses
import os
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

import npyscreen

from ..device import detect
from ..errors import UserError
from ..models import scan_models
from ..outputs.family_files import files_for
from ..outputs.layout import OutputLayout
from ..outputs.run_result import last_step
from ..paths import RootLayout, resolve_root
from ..settings import TrainingSettings
from ..workflow import (
    RunPlan,
    end_lines,
    final_step,
    header_line,
    install_step,
    run_plan,
    steps_to_install,
)
from .cleanup import ask_to_delete_leftovers
from .multi_gpu import train_on_gpus
from .preferences import load_preferences, save_preferences
from .state import (
    FORM_FIELDS,
    MIN_COLUMNS,
    MIN_LINES,
    MODEL_LIST_ROWS,
    TITLE,
    FormState,
    complete_folder,
    field_to_fix,
    label,
    problems_message,
    slider_range,
    slider_step,
    too_small_message,
    widget_kind,
)

# Where every field's entry area starts, so the values line up in one column.
ENTRY_COLUMN = 32
# Notes sit under the field they explain, indented like a checkbox's label.
NOTE_INDENT = 5
# Lines under the resume box for what ticking it filled in; which step it starts from is beside it.
RESUME_NOTE_LINES = 2
# Lines under the model list for the chosen model's description, which a narrow list cuts off.
MODEL_NOTE_LINES = 2
# "[X]  " before a checkbox's label, and a column npyscreen keeps free after it.
CHECKBOX_MARK = 6
EXIT_CANCELLED = 1
EXIT_INTERRUPTED = 130


class IntSlider(npyscreen.Slider):
    """A slider of whole numbers that also takes a typed one.

    npyscreen shows slider values as floats ("3000.0 / 10000") and only steps them with the
    arrows; a 30-step trial run must not need a dozen presses. Digits typed on arrival replace
    the value, further digits extend it and Backspace takes the last one back; a number beyond
    the end of the scale widens it.
    """

    typing = False

    def translate_value(self) -> str:
        text = f"{int(self.value)} / {self.out_of}"
        return text.rjust(len(str(self.out_of)) * 2 + 3)

    def set_up_handlers(self) -> None:
        super().set_up_handlers()
        self.handlers.update({ord(digit): self.h_digit for digit in "0123456789"})
        self.handlers.update({key: self.h_backspace for key in (curses.KEY_BACKSPACE, 127, 8)})

    def edit(self) -> None:
        self.typing = False
        super().edit()

    def h_digit(self, key: int) -> None:
        text = (str(int(self.value)) if self.typing else "") + chr(key)
        self.typing = True
        self.set_typed(int(text))

    def h_backspace(self, _key: int) -> None:
        self.typing = True
        self.set_typed(int(str(int(self.value))[:-1] or 0))

    def set_typed(self, number: int) -> None:
        self.out_of = max(self.out_of, number)
        self.value = number


class TitleIntSlider(npyscreen.TitleSlider):
    _entry_type = IntSlider


class FolderText(npyscreen.Textfield):
    """A folder field: Tab completes the folder name when there is something to complete, and
    otherwise moves on like Tab anywhere else.

    npyscreen's own filename field appended "/" to a complete folder and opened a list of its
    contents, cut off at the field's width, that only Escape left.
    """

    def set_up_handlers(self) -> None:
        super().set_up_handlers()
        self.handlers[curses.ascii.TAB] = self.h_complete

    def h_complete(self, key: int) -> None:
        completed = complete_folder(self.value)
        if completed is None:
            self.h_exit_down(key)
            return
        self.value = completed
        self.cursor_position = len(completed)


class TitleFolder(npyscreen.TitleText):
    _entry_type = FolderText


class SettingsForm(npyscreen.FormMultiPageAction):
    """The form; on OK it either holds a ``plan`` or shows the problems and stays open."""

    def __init__(self, state: FormState, **keywords: Any) -> None:
        self.state = state
        self.plan: RunPlan | None = None
        self.fields: dict[str, Any] = {}
        super().__init__(name=TITLE, **keywords)

    def create(self) -> None:
        width = self.widget_useable_space()[1] - self.nextrelx - 1
        self.note_width = width - NOTE_INDENT
        for line in self.state.help_lines(width):
            self.add_widget_intelligent(npyscreen.FixedText, value=line, editable=False)
        self.nextrely += 1
        for name in FORM_FIELDS:
            self.fields[name] = self.add_field(name)
            if name == "model":
                self.model_notes = [self.add_note("") for _ in range(MODEL_NOTE_LINES)]
            elif name == "placeholder_token":
                self.hint = self.add_note(self.state.prompt_hint())
            elif name == "resume_from_checkpoint":
                box = self.fields[name]
                self.resume_status = self.add_widget_intelligent(
                    npyscreen.FixedText, value="", editable=False, rely=box.rely,
                    relx=box.relx + box.width + 1,
                )
                self.resume_notes = [self.add_note("") for _ in range(RESUME_NOTE_LINES)]
            elif name == "enable_xformers_memory_efficient_attention":
                # Room for the longest note any model can bring (SDXL's batch rule differs).
                rows = max(len(textwrap.wrap(self.state.xformers_note(spec), width - NOTE_INDENT))
                           for spec in self.state.choices("model"))
                self.device_notes = [self.add_note("") for _ in range(rows)]
        self.gpu_widget = None
        if gpus := self.state.gpu_choices():
            self.gpu_widget = self.add_widget_intelligent(
                npyscreen.TitleMultiSelect, name="GPUs to use:", values=gpus, value=list(self.state.gpus),
                max_height=max(len(gpus), 2), begin_entry_at=ENTRY_COLUMN, scroll_exit=True,
            )
        self.show_state()

    def add_note(self, text: str) -> Any:
        return self.add_widget_intelligent(
            npyscreen.FixedText, value=text, editable=False, relx=self.nextrelx + NOTE_INDENT
        )

    def add_field(self, name: str) -> Any:
        kind = widget_kind(name)
        value = self.state.values[name]
        title = {"name": label(name) + ":", "begin_entry_at": ENTRY_COLUMN, "scroll_exit": True}
        if kind == "select":
            rows = len(self.state.choices(name))
            if name == "model":
                rows = min(rows, MODEL_LIST_ROWS)
            elif name == "resolution":
                rows += 1  # room for the model's native size when another model adds it
            # npyscreen lists need two rows (a one-row list was InvokeAI's "Height of 1" crash).
            return self.add_widget_intelligent(
                npyscreen.TitleSelectOne, values=self.state.choice_labels(name),
                max_height=max(rows, 2), **title,
            )
        if kind == "checkbox":
            # As wide as its label, so a note can sit beside it.
            return self.add_widget_intelligent(
                npyscreen.Checkbox, name=label(name), max_width=len(label(name)) + CHECKBOX_MARK
            )
        if kind == "slider":
            low, high = slider_range(name, value)
            return self.add_widget_intelligent(
                TitleIntSlider, out_of=high, lowest=low, step=slider_step(low, high), **title
            )
        widget = TitleFolder if kind == "folder" else npyscreen.TitleText
        return self.add_widget_intelligent(widget, **title)

    def read_widgets(self) -> dict[str, Any]:
        values = {}
        for name, widget in self.fields.items():
            kind = widget_kind(name)
            if kind == "select":
                chosen = widget.value
                values[name] = self.state.choices(name)[chosen[0]] if chosen else None
            elif kind == "slider":
                values[name] = int(widget.value)
            elif kind == "checkbox":
                values[name] = bool(widget.value)
            else:
                values[name] = widget.value
        return values

    def show_state(self) -> None:
        for name, widget in self.fields.items():
            value = self.state.values[name]
            kind = widget_kind(name)
            if kind == "select":
                choices = self.state.choices(name)
                widget.values = self.state.choice_labels(name)
                widget.value = [choices.index(value)] if value in choices else []
            else:
                if kind == "slider":  # a checkpoint's value may lie beyond the usual range
                    widget.entry_widget.out_of = max(widget.entry_widget.out_of, value)
                widget.value = value
        self.hint.value = self.state.prompt_hint()
        model_lines = textwrap.wrap(self.state.model_description(), self.note_width)
        if len(model_lines) > MODEL_NOTE_LINES:
            model_lines[MODEL_NOTE_LINES - 1:] = [textwrap.shorten(
                " ".join(model_lines[MODEL_NOTE_LINES - 1:]), self.note_width, placeholder=" ...")]
        for index, note in enumerate(self.model_notes):
            note.value = model_lines[index] if index < len(model_lines) else ""
        device_lines = textwrap.wrap(self.state.xformers_note(), self.note_width)
        for index, note in enumerate(self.device_notes):
            note.value = device_lines[index] if index < len(device_lines) else ""
        self.resume_status.value = self.state.resume_status()
        lines = self.state.resume_details(self.note_width, RESUME_NOTE_LINES)
        for index, note in enumerate(self.resume_notes):
            note.value = lines[index] if index < len(lines) else ""
        if self.gpu_widget is not None:
            self.gpu_widget.value = list(self.state.gpus)

    def adjust_widgets(self) -> None:
        """After each key press: let the state react to the trigger, output folder, resume and model.

        Everything is shown again after any change, since a reaction can change other fields and
        a selection can change its own list (the resolution keeps the model's native size).
        """
        gpus = list(self.state.gpus)
        if self.gpu_widget is not None:
            self.state.gpus = sorted(self.gpu_widget.value)
        current = self.read_widgets()
        changed = [name for name in FORM_FIELDS if current[name] != self.state.values[name]]
        if not changed and self.state.gpus == gpus:
            return
        reactions = {
            "placeholder_token": self.state.trigger_edited,
            "output_dir": self.state.output_dir_edited,
            "resume_from_checkpoint": self.state.resume_toggled,
            "model": self.state.model_chosen,
            "learnable_property": self.state.learnable_property_chosen,
            "max_train_steps": self.state.max_steps_edited,
        }
        for name in changed:
            if name not in reactions:
                self.state.values[name] = current[name]
        for name in changed:
            if name in reactions:
                reactions[name](current[name])
        self.show_state()
        self.display()

    def on_ok(self) -> None:
        self.adjust_widgets()
        # The first check loads the model's tokenizer, a few seconds on a slow disk.
        npyscreen.notify("Checking the settings...", title="Please wait")
        plan, problems = self.state.validate()
        if problems:
            # editw=1 focuses the popup's OK button, so one Enter returns to the form.
            npyscreen.notify_confirm(
                problems_message(problems), title="Please correct", wide=True, editw=1
            )
            self.editing = True
            self.focus_field(field_to_fix(problems))
            self.DISPLAY()
            return
        self.plan = plan

    def focus_field(self, name: str | None) -> None:
        """Put the cursor on the field to fix, on whichever page it is, not back on OK."""
        if name is None or name not in self.fields:
            return
        widget = self.fields[name]
        for page, widgets in enumerate(self._pages__):
            if widget in widgets:
                self.switch_page(page, display=False)
                self.editw = widgets.index(widget)
                return


class SettingsApp(npyscreen.NPSApp):
    def __init__(self, state: FormState) -> None:
        self.state = state
        self.plan: RunPlan | None = None

    def main(self) -> None:
        form = SettingsForm(self.state)
        form.edit()
        self.plan = form.plan


def terminal_size() -> tuple[int, int] | None:
    """The size of the terminal the form would draw on, or None when there is no terminal."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    size = os.get_terminal_size(sys.stdout.fileno())
    return size.columns, size.lines


def require_terminal() -> None:
    size = terminal_size()
    if size is None:
        raise UserError(
            "The form needs an interactive terminal; run invokeai-ti without --gui and pass the "
            "settings as flags (see invokeai-ti --help).",
            exit_code=EXIT_CANCELLED,
        )
    if size[0] < MIN_COLUMNS or size[1] < MIN_LINES:
        raise UserError(too_small_message(*size), exit_code=EXIT_CANCELLED)


def edit_settings(state: FormState) -> RunPlan | None:
    """Show the form until OK (a plan) or Cancel (None); curses always gives the terminal back."""
    require_terminal()
    app = SettingsApp(state)
    try:
        app.run(fork=False)
    except (npyscreen.NotEnoughSpaceForWidget, curses.error):
        # The terminal shrank while the form was open; anything else is a real bug.
        size = terminal_size()
        if size is not None and (size[0] < MIN_COLUMNS or size[1] < MIN_LINES):
            raise UserError(too_small_message(*size), exit_code=EXIT_CANCELLED) from None
        raise
    return app.plan


def run_form(typed: Mapping[str, Any]) -> int:
    """Open the form pre-filled from ``typed`` (the flags given with --gui), then train."""
    layout = RootLayout(resolve_root(typed.get("root")))
    scan = scan_models(layout)
    saved, note = load_preferences(layout)
    notes = ([note] if note else []) + scan.notes
    state = FormState.build(typed, layout=layout, caps=detect(), models=scan.models,
                            saved=saved, notes=notes)
    try:
        plan = edit_settings(state)
    except KeyboardInterrupt:
        print("Cancelled with Ctrl-C; nothing was trained.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if plan is None:
        print("Cancelled; nothing was trained.", file=sys.stderr)
        return EXIT_CANCELLED
    remember(layout, state.settings_to_remember(plan.settings))
    print(header_line(plan))
    if state.trains_in_child_process():
        code = train_on_gpus(plan, state.gpus)
        if code != 0:
            return code
    else:
        for line in end_lines(plan, run_plan(plan)):
            print(line)
    outputs = files_for(plan.model).output_layout(plan.output_dir, plan.settings.token)
    ask_which_step(plan, outputs)
    ask_to_delete_leftovers(outputs, plan.settings.logging_dir)
    return 0


def ask_which_step(plan: RunPlan, outputs: OutputLayout) -> None:
    """The form's way to install another snapshot, asked before the clean-up deletes them.

    Enter keeps the embedding installed (the final one, or with --stop_when_settled the step that
    scored best); without a terminal nothing is asked.
    """
    final = final_step(outputs)
    others = [step for step in steps_to_install(outputs) if step != final]
    if not others or final is None or not sys.stdin.isatty():
        return
    why = "" if final == last_step(outputs) else (
        f"Step {final} is installed: it scored best where the evaluation score settled (--stop_when_settled). ")
    try:
        answer = input(
            f"{why}Install the embedding of another step instead (the report shows each step's previews)? "
            f"Type {', '.join(map(str, others))}, or press Enter to keep step {final}: "
        ).strip()
    except EOFError:
        return
    if not answer:
        return
    if not answer.isdigit() or int(answer) not in others:
        print(f"No embedding of step {answer} was saved; the embedding of step {final} stays installed.")
        return
    settings = dataclasses.replace(plan.settings, output_dir=plan.output_dir)
    print(install_step(settings, int(answer)).message(plan.settings.token, int(answer)))


def remember(layout: RootLayout, settings: TrainingSettings) -> None:
    """Saving is a convenience: failing to must not stop the training the user asked for."""
    try:
        save_preferences(layout, settings)
    except (OSError, UserError) as error:
        print(f"Note: the settings could not be saved in {layout.preferences} ({error}); "
              "the next form will not remember them.", file=sys.stderr)
