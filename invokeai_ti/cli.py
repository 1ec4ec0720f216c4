"""``invokeai-ti``: InvokeAI's flags, generated from the settings dataclass.

Every flag, its aliases, its default and its help come from ``TrainingSettings``; this module
adds only the commands that are not settings (``--gui``, ``--list-models``, ``--demo``). Errors a
user can cause end as one sentence on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import UserError
from .settings import TrainingSettings, field_types, fields_by_group

GROUP_TITLES = {
    "general": "General",
    "invokeai": "InvokeAI 4.x-7.x (registering the embedding)",
    "model": "Model",
    "images": "Images",
    "token": "Token",
    "checkpoints": "Checkpoints",
    "previews": "Previews",
    "training": "Training",
}


# A choice list longer than this is named NAME in the usage and listed in the help text instead,
# so no line of --help runs past 80 columns.
LONGEST_CHOICES = 30
USAGE = "%(prog)s [--gui | --demo | --list-models | ...] [SETTING ...]"


def closest_flag(flag: str, known: list[str]) -> str | None:
    """The known flag most like ``flag``, preferring one that has all its words: ``--max_steps``
    means ``--max_train_steps`` more likely than the closer-spelled ``--max_timestep``."""
    close = difflib.get_close_matches(flag, known, n=5)
    words = set(flag.strip("-").split("_"))
    return next((option for option in close if words <= set(option.strip("-").split("_"))),
                close[0] if close else None)


class HelpFormatter(argparse.HelpFormatter):
    """``--[no-]flag`` for an on/off setting, instead of both spellings side by side."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, argparse.BooleanOptionalAction):
            return ", ".join(f"--[no-]{option[2:]}" for option in action.option_strings
                             if not option.startswith("--no-"))
        return super()._format_action_invocation(action)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line with the fix, not a usage dump."""

    argv: list[str] = []

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_args(self.argv, namespace)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"invokeai-ti: {message}{self.suggestion(message)}; see invokeai-ti --help.\n")

    def suggestion(self, message: str) -> str:
        """"did you mean --max_train_steps" for a mistyped flag (argparse only says it is unknown),
        and how to write a value that the shell split at a space."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        known = [option for action in self._actions for option in action.option_strings]
        hints = []
        for word in message.removeprefix("unrecognized arguments:").split():
            flag = word.split("=")[0]
            if flag.startswith("--") and (close := closest_flag(flag, known)):
                hints.append(f"{flag}: did you mean {close}?")
            elif not word.startswith("-") and (hint := self.split_value_hint(word)):
                hints.append(hint)
        hints = list(dict.fromkeys(hints))
        return f" ({'; '.join(hints)})" if hints else ""

    def split_value_hint(self, word: str) -> str | None:
        """``--placeholder_token blue triangle`` leaves ``triangle`` over: say how to write the value."""
        if word not in self.argv:
            return None
        argv = self.argv
        start = end = argv.index(word)
        while start > 0 and not argv[start - 1].startswith("-"):
            start -= 1
        while end + 1 < len(argv) and not argv[end + 1].startswith("-"):
            end += 1
        if start == 0 or start == argv.index(word):
            return None
        flag, value, over = argv[start - 1], " ".join(argv[start:end + 1]), " ".join(argv[start + 1:end + 1])
        if flag in ("--placeholder_token", "--trigger_term"):
            return (f"{over}: a trigger is one word; write {flag} {value.replace(' ', '_')}, or quote "
                    "a value that has spaces")
        return f"{over}: quote a value that has spaces, as {flag} {shlex.quote(value)}"


def value_parser(kind: type, flag: str):
    names = {int: "a whole number", float: "a number", Path: "a path", str: "text"}

    def parse(text: str) -> Any:
        try:
            return kind(text) if kind is not Path else Path(text).expanduser()
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} needs {names[kind]}, not '{text}'") from None

    parse.__name__ = names[kind]
    return parse


def default_text(f: dataclasses.Field) -> str:
    if f.default in (None, "") or isinstance(f.default, bool):
        return ""
    return f" (default: {f.default})"


def build_parser() -> Parser:
    parser = Parser(
        prog="invokeai-ti",
        usage=USAGE,
        description="Train a Textual Inversion embedding for a Stable Diffusion model.",
        epilog="Distributed: accelerate launch $(which invokeai-ti) <the same flags>.",
        formatter_class=HelpFormatter,
    )
    add_commands(parser.add_argument_group("Commands"))
    for group_name, fields in fields_by_group().items():
        group = parser.add_argument_group(GROUP_TITLES[group_name])
        for f in fields:
            if f.metadata.get("flag", True):
                add_setting(group, f)
    return parser


def add_commands(commands: argparse._ArgumentGroup) -> None:
    """What is not a setting: the form, the model list, the demo, the launcher, an install."""
    commands.add_argument(
        "--gui", "--front_end", action="store_true", help="open the keyboard-driven settings form"
    )
    commands.add_argument(
        "--list-models", "--list_models", action="store_true", help="list the models that can be trained"
    )
    commands.add_argument(
        "--demo",
        action="store_true",
        help="make a demo root (~/invokeai-ti-demo, or --root) holding the world-of-shapes models and "
        "photos of a blue triangle, and train on it (--model world-of-shapes-sdxl: on the SDXL one); "
        "a later --demo reuses that root",
    )
    commands.add_argument(
        "--write-launcher",
        "--write_launcher",
        action="store_true",
        help="write invoke.sh and invoke.bat (InvokeAI's launcher menu, for this Python "
        "environment) into the root",
    )
    commands.add_argument(
        "--install-step",
        "--install_step",
        type=value_parser(int, "--install-step"),
        metavar="N",
        help="install the embedding saved at step N of a run (see its report.html) into "
        "<root>/embeddings/<trigger>/, as the final one is installed; give the run's "
        "--placeholder_token (and --output_dir if it was not the default)",
    )
    commands.add_argument("--version", action="version", version=f"invokeai-ti {__version__}")


def add_setting(group: argparse._ArgumentGroup, f: dataclasses.Field) -> None:
    """A settings field as its flag (and aliases); a flag left out stays absent, so the typed
    flags can be told from the defaults."""
    flag = f"--{f.name}"
    kind, _optional = field_types(f)
    common: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
    if kind is bool:
        group.add_argument(
            flag, *f.metadata["aliases"], action=argparse.BooleanOptionalAction,
            help=f.metadata["help"] + _bool_default(f), **common,
        )
        return
    several = kind is tuple
    group.add_argument(
        flag,
        *f.metadata["aliases"],
        type=value_parser(str if several else kind, flag),
        action="append" if several else "store",
        choices=f.metadata.get("choices"),
        metavar=_metavar(f, kind),
        help=f.metadata["help"] + _choices_text(f) + default_text(f),
        **common,
    )


def _bool_default(f: dataclasses.Field) -> str:
    if f.default is None:
        return ""
    return " (default: on)" if f.default else " (default: off)"


def _braced_choices(f: dataclasses.Field) -> str:
    return "{" + ",".join(map(str, f.metadata.get("choices") or ())) + "}"


def _metavar(f: dataclasses.Field, kind: type) -> str | None:
    if "metavar" in f.metadata:
        return f.metadata["metavar"]
    if f.metadata.get("choices"):
        braced = _braced_choices(f)
        return braced if len(braced) <= LONGEST_CHOICES else "NAME"
    return {int: "N", float: "X", Path: "DIR"}.get(kind, "TEXT")


def _choices_text(f: dataclasses.Field) -> str:
    """The choices, where the usage names them NAME."""
    if not f.metadata.get("choices") or len(_braced_choices(f)) <= LONGEST_CHOICES:
        return ""
    return f": {', '.join(map(str, f.metadata['choices']))}"


def typed_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the user typed; flags left out are absent (their defaults are SUPPRESSed)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingSettings) if hasattr(args, f.name)}


def settings_from_args(args: argparse.Namespace) -> TrainingSettings:
    return dataclasses.replace(TrainingSettings(), **typed_flags(args))


def train_headless(settings: TrainingSettings) -> int:
    from .root_kind import found_line
    from .workflow import end_lines, header_line, plan_run, run_plan

    if not settings.placeholder_token.strip():
        raise UserError(
            "No trigger term was given; pass --placeholder_token psychedelic (or open the form "
            "with --gui)."
        )
    plan = plan_run(settings)
    print(found_line(plan.layout.root))
    print(header_line(plan))
    for line in end_lines(plan, run_plan(plan)):
        print(line)
    return 0


def list_models(settings: TrainingSettings) -> int:
    from .models import format_model_table, no_model_message, scan_models
    from .root_kind import found_line
    from .paths import RootLayout, resolve_root

    layout = RootLayout(resolve_root(settings.root))
    scan = scan_models(layout)
    print(found_line(layout.root, scan.kind))
    for note in scan.notes:
        print(f"Note: {note}", file=sys.stderr)
    if not scan.models:
        print(no_model_message(layout))
        return 1
    print(format_model_table(scan.models))
    return 0


def run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    if args.demo:
        from .demo import run_demo

        return run_demo(settings.root, settings.model)
    if args.write_launcher:
        from .launcher import run_write_launcher

        return run_write_launcher(settings.root)
    if args.list_models:
        return list_models(settings)
    if args.install_step is not None:
        from .workflow import install_step

        done = install_step(settings, args.install_step)
        print(done.message(settings.token, args.install_step))
        return 0
    if args.gui:
        from .form.frontend import run_form

        return run_form(typed_flags(args))
    return train_headless(settings)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except UserError as error:
        print(str(error), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("Interrupted; nothing that was finished has been lost.", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            "The computer ran out of memory; lower --train_batch_size or --resolution, or add "
            "--gradient_checkpointing.",
            file=sys.stderr,
        )
        return 1
    except Exception as error:
        import torch

        if isinstance(error, torch.OutOfMemoryError):
            print(
                "The GPU ran out of memory; lower --train_batch_size, add --gradient_checkpointing "
                "or use --mixed_precision fp16, then resume with --resume_from_checkpoint latest.",
                file=sys.stderr,
            )
            return 1
        raise
