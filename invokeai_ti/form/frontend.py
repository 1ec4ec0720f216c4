"""``invokeai-ti --gui``: the keyboard-driven form InvokeAI's launcher opens (option 3).

This module is the terminal around the form and the dialogue after it: it checks the terminal is
big enough, pre-fills the form (``FormState.build``) and shows it (``form.widgets``), then trains
with ``workflow.run_plan``, exactly as for the command line, after curses has given the terminal
back so progress prints normally; last it asks which step to install and what to clean up.
"""

from __future__ import annotations

import curses
import dataclasses
import os
import sys
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
from ..root_kind import found_line
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
from .fields import MIN_COLUMNS, MIN_LINES, too_small_message
from .multi_gpu import train_on_gpus
from .preferences import load_preferences, save_preferences
from .state import FormState
from .widgets import SettingsApp

EXIT_CANCELLED = 1
EXIT_INTERRUPTED = 130


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
    notes = [found_line(layout.root, scan.kind)] + ([note] if note else []) + scan.notes
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
