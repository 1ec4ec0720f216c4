"""InvokeAI 2.3's launcher menu (``invoke.sh`` / ``invoke.bat``) for a root that has invokeai-ti.

The menu lives only here, as ``python -m invokeai_ti.launcher``. The ``invoke.sh`` and
``invoke.bat`` that ``write_launcher`` puts in a root are thin wrappers: they set INVOKEAI_ROOT to
their own folder, pick the Python of the environment they were written from (else the root's
``.venv``, where InvokeAI's installer puts it) and run this module. One copy of the menu means the
two scripts cannot drift apart, and the menu behaves the same on every platform.

Choices this package does not provide run InvokeAI's own programs when they are installed, so the
menu is a drop-in for InvokeAI's; when they are not, the menu says so and comes back.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .paths import resolve_root

# Both scripts carry this line, so a rewrite replaces ours but never InvokeAI's own launcher.
MARKER = "Written by invokeai-ti --write-launcher"
PROMPT = "Please enter 1-10, Q: [1] "
DEFAULT_CHOICE = "1"
# Stands for the root's path in InvokeAI's commands.
ROOT = "{root}"

SH_TEMPLATE = """\
#!/bin/sh
# @MARKER@: InvokeAI 2.3's launcher menu for this root.
# The menu itself is `python -m invokeai_ti.launcher`; this script only sets INVOKEAI_ROOT to its
# own folder and picks the Python of the environment it was written for (else this root's .venv).
set -eu
script="$0"
while [ -L "$script" ]; do
    target="$(readlink "$script")"
    case "$target" in
        /*) script="$target" ;;
        *) script="$(dirname "$script")/$target" ;;
    esac
done
INVOKEAI_ROOT="$(CDPATH= cd -- "$(dirname -- "$script")" && pwd -P)"
export INVOKEAI_ROOT
cd "$INVOKEAI_ROOT"
recorded=@PYTHON@
python="$recorded"
if [ ! -x "$python" ]; then
    python="$INVOKEAI_ROOT/.venv/bin/python"
fi
if [ ! -x "$python" ]; then
    echo "Neither $recorded nor $INVOKEAI_ROOT/.venv/bin/python exists; run invokeai-ti --write-launcher --root \\"$INVOKEAI_ROOT\\" again from the environment where invokeai-ti is installed." >&2
    exit 1
fi
exec "$python" -m invokeai_ti.launcher "$@"
"""

BAT_TEMPLATE = """\
@echo off
rem @MARKER@: InvokeAI 2.3's launcher menu for this root.
rem The menu itself is "python -m invokeai_ti.launcher"; this script only sets INVOKEAI_ROOT to its
rem own folder and picks the Python of the environment it was written for (else this root's .venv).
setlocal
set "INVOKEAI_ROOT=%~dp0"
set "INVOKEAI_ROOT=%INVOKEAI_ROOT:~0,-1%"
cd /d "%INVOKEAI_ROOT%"
set "PYTHON=@PYTHON@"
if not exist "%PYTHON%" set "PYTHON=%INVOKEAI_ROOT%\\.venv\\Scripts\\python.exe"
if exist "%PYTHON%" goto run
echo Neither the environment this launcher was written for nor the .venv folder beside it has Python; run invokeai-ti --write-launcher again from the environment where invokeai-ti is installed. 1>&2
exit /b 1
:run
"%PYTHON%" -m invokeai_ti.launcher %*
exit /b %ERRORLEVEL%
"""


@dataclass(frozen=True)
class Option:
    """One menu line; ``invokeai`` is InvokeAI 2.3's command for it, None where this package acts."""

    number: str
    title: str
    invokeai: tuple[str, ...] | None = None


TRAINING, CONSOLE = "3", "8"
OPTIONS = (
    Option("1", "Generate images using the browser-based interface", ("invokeai", "--web")),
    Option("2", "Generate images using the command-line interface", ("invokeai",)),
    Option(TRAINING, "Run textual inversion training"),
    Option("4", "Merge models (diffusers type only)", ("invokeai-merge", "--gui")),
    Option("5", "Download and install models", ("invokeai-model-install", "--root", ROOT)),
    Option(
        "6",
        "Change InvokeAI startup options",
        ("invokeai-configure", "--root", ROOT, "--skip-sd-weights", "--skip-support-models"),
    ),
    Option(
        "7",
        "Re-run the configure script to fix a broken install",
        ("invokeai-configure", "--root", ROOT, "--yes", "--default_only"),
    ),
    Option(CONSOLE, "Open the developer console"),
    Option("9", "Update InvokeAI", ("invokeai-update",)),
    Option("10", "Command-line help"),
)
OPTIONS_BY_NUMBER = {option.number: option for option in OPTIONS}


def launcher_scripts(python: str) -> dict[str, str]:
    """The text of invoke.sh and invoke.bat, recording ``python`` as the interpreter to use."""
    sh = SH_TEMPLATE.replace("@MARKER@", MARKER).replace("@PYTHON@", shlex.quote(python))
    # In a .bat, "%" starts a variable even inside quotes; "%%" is a literal one.
    bat = BAT_TEMPLATE.replace("@MARKER@", MARKER).replace("@PYTHON@", python.replace("%", "%%"))
    return {"invoke.sh": sh, "invoke.bat": bat.replace("\n", "\r\n")}


def write_launcher(root: Path) -> list[Path]:
    """Write invoke.sh and invoke.bat into ``root``, bound to the Python running this code.

    The Python is recorded rather than an activate script, so conda and system installs work too;
    the menu then activates that environment for everything it starts.
    """
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise UserError(
            f"The InvokeAI root {root} is not an existing folder; pass one with --root, or make a "
            "demo root with invokeai-ti --demo."
        )
    scripts = {root / name: text for name, text in launcher_scripts(sys.executable).items()}
    for path in scripts:
        if path.exists() and MARKER not in path.read_bytes().decode("utf-8", errors="replace"):
            raise UserError(
                f"{path} was not written by invokeai-ti (it is probably InvokeAI's own launcher, "
                "whose option 3 already runs invokeai-ti --gui); move it aside and try again."
            )
    for path, text in scripts.items():
        try:
            path.write_bytes(text.encode("utf-8"))
            mode = path.stat().st_mode
            # Executable for whoever may read it, as `chmod +x` would do.
            path.chmod(mode | (mode & (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)) >> 2)
        except OSError as error:
            raise UserError(
                f"Could not write {path} ({error.strerror}); choose a root you can write to with "
                "--root."
            ) from None
    return list(scripts)


def run_write_launcher(root: Path | None) -> int:
    """``invokeai-ti --write-launcher``; the scripts are no use until the user knows how to start them."""
    sh, bat = write_launcher(resolve_root(root))
    print(f"Wrote {sh} and {bat}, which use the Python environment {sys.prefix}.")
    start = f'"{bat}"' if os.name == "nt" else shlex.quote(str(sh))
    print(f"Start the menu (option 3 trains an embedding) with:  {start}")
    return 0


def activated_environment(root: Path) -> dict[str, str]:
    """What an activate script would set, so every choice and the console run in this environment.

    The scripts start this environment's Python directly instead of sourcing ``activate``, so the
    menu does the activating: its programs come first on PATH, and VIRTUAL_ENV is set for a venv.
    """
    env = dict(os.environ, INVOKEAI_ROOT=str(root))
    entries = [sysconfig.get_path("scripts"), *env.get("PATH", "").split(os.pathsep)]
    env["PATH"] = os.pathsep.join(entry for entry in entries if entry)
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    env.pop("PYTHONHOME", None)
    if sys.platform == "darwin":
        # InvokeAI's launcher sets this so operations Apple's GPU lacks fall back to the CPU.
        env.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    return env


def ignore_interrupt(_signum: int, _frame: object) -> None:
    """Ctrl-C belongs to the program the menu started; the menu waits and then comes back.

    A Python handler, unlike SIG_IGN, is reset to the default in the child when it starts, so the
    child can still be interrupted.
    """


class Launcher:
    """The menu loop for one root; ``ask`` reads a line and raises EOFError at the end of input."""

    def __init__(self, root: Path, ask: Callable[[str], str] = input) -> None:
        self.root = root
        self.ask = ask
        self.env = activated_environment(root)

    def run(self) -> int:
        """Show the menu until Q or the end of input; a bad answer is explained, never fatal."""
        while True:
            self.show_menu()
            try:
                answer = self.ask(PROMPT)
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print()
                return 130
            choice = answer.strip() or DEFAULT_CHOICE
            if choice.lower() == "q":
                return 0
            option = OPTIONS_BY_NUMBER.get(choice)
            if option is None:
                print(f"'{choice}' is not on the menu; enter a number from 1 to 10, or Q to quit.")
                continue
            self.choose(option)

    def show_menu(self) -> None:
        print()
        print(f"InvokeAI root: {self.root} (Python environment: {sys.prefix})")
        print("What would you like to do?")
        for option in OPTIONS:
            missing = option.invokeai is not None and self.find(option.invokeai[0]) is None
            print(f"{option.number}: {option.title}{' (needs InvokeAI)' if missing else ''}")
        print("Q: Quit")
        print()

    def find(self, program: str) -> str | None:
        return shutil.which(program, path=self.env["PATH"])

    def choose(self, option: Option) -> None:
        if option.invokeai is not None:
            self.run_invokeai(option, *option.invokeai)
            return
        print(option.title)
        if option.number == TRAINING:
            self.run_command([sys.executable, "-m", "invokeai_ti", "--gui"])
        elif option.number == CONSOLE:
            self.open_console()
        else:
            self.show_help()

    def run_invokeai(self, option: Option, program: str, *arguments: str) -> None:
        found = self.find(program)
        if found is None:
            print(
                f"InvokeAI is not installed in this environment (there is no {program} command), so "
                f'option {option.number} ("{option.title}") is not available; install InvokeAI 2.3 '
                f"into {sys.prefix} to use it, or choose {TRAINING} to train an embedding."
            )
            return
        print(option.title)
        self.run_command([found, *(str(self.root) if a == ROOT else a for a in arguments)])

    def show_help(self) -> None:
        self.run_command([sys.executable, "-m", "invokeai_ti", "--help"])
        invokeai = self.find("invokeai")
        if invokeai is not None:
            self.run_command([invokeai, "--help"])
        try:
            # The help is longer than a screen; the menu would push its start out of sight.
            self.ask("Press Enter to return to the menu. ")
        except (EOFError, KeyboardInterrupt):
            print()

    def open_console(self) -> None:
        print(
            f"The Python environment {sys.prefix} is active and INVOKEAI_ROOT is {self.root}; "
            "type exit to return to the menu."
        )
        if os.name == "nt":
            self.run_command([os.environ.get("COMSPEC", "cmd.exe")])
            return
        shell = os.environ.get("SHELL") or "/bin/sh"
        if Path(shell).name != "bash":
            self.run_command([shell])
            return
        # A user's ~/.bashrc may put another Python first (conda does); put this one back and mark
        # the prompt, as InvokeAI's console does.
        scripts = shlex.quote(sysconfig.get_path("scripts"))
        rc = f'[ -f ~/.bashrc ] && . ~/.bashrc\nPATH={scripts}:"$PATH"\nPS1="(InvokeAI) $PS1"\n'
        with tempfile.NamedTemporaryFile("w", suffix=".bashrc", delete=False) as file:
            file.write(rc)
        try:
            self.run_command([shell, "--rcfile", file.name, "-i"])
        finally:
            os.unlink(file.name)

    def run_command(self, command: Sequence[str]) -> None:
        """Run a program in the root with the environment active; whatever its exit, the menu follows."""
        sys.stdout.flush()
        previous = signal.signal(signal.SIGINT, ignore_interrupt)
        try:
            subprocess.run(list(command), env=self.env, cwd=self.root)
        except OSError as error:
            print(
                f"{command[0]} could not be started ({error.strerror}); check its installation in "
                f"{sys.prefix}."
            )
        finally:
            signal.signal(signal.SIGINT, previous)

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m invokeai_ti.launcher",
        description="InvokeAI 2.3's launcher menu for a root (what invoke.sh and invoke.bat run).",
    )
    parser.add_argument(
        "--root",
        type=Path,
        help="InvokeAI root folder (default: $INVOKEAI_ROOT, else the parent of an InvokeAI virtual "
        "environment, else ~/invokeai)",
    )
    root = resolve_root(parser.parse_args(argv).root)
    if not root.is_dir():
        print(
            f"The InvokeAI root {root} is not an existing folder; pass one with --root or set "
            "INVOKEAI_ROOT.",
            file=sys.stderr,
        )
        return 2
    return Launcher(root).run()


if __name__ == "__main__":
    raise SystemExit(main())
