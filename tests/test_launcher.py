"""The InvokeAI-style launcher: invoke.sh / invoke.bat written into a root, and the menu they run."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from invokeai_ti.demo import make_demo_root
from invokeai_ti.errors import UserError
from invokeai_ti.launcher import MARKER, PROMPT, Launcher, launcher_scripts, main, run_write_launcher, write_launcher
from tests.screens import press_and_wait, terminal_environment

MENU_PROMPT = PROMPT.strip()
INVOKEAI_PROGRAMS = (
    "invokeai", "invokeai-merge", "invokeai-model-install", "invokeai-configure", "invokeai-update"
)


def answers(*lines: str) -> Callable[[str], str]:
    """An ``ask`` that types ``lines`` one by one, then reports the end of input like input() does."""
    pending: Iterator[str] = iter(lines)

    def ask(prompt: str) -> str:
        print(prompt, end="")
        try:
            return next(pending)
        except StopIteration:
            raise EOFError from None

    return ask


def run_sh(script: Path, stdin: str = "q\n", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script)], input=stdin, capture_output=True, text=True, timeout=60,
        env={**os.environ, **env}, cwd=Path("/"),
    )


# --- the scripts -----------------------------------------------------------------------------


def test_scripts_are_thin_wrappers_around_the_one_menu():
    scripts = launcher_scripts("/opt/env/bin/python")
    sh, bat = scripts["invoke.sh"], scripts["invoke.bat"]
    for text in (sh, bat):
        assert MARKER in text
        assert "invokeai_ti.launcher" in text
        assert "Please enter" not in text  # the menu lives in Python only
    assert sh.startswith("#!/bin/sh\n")
    assert "recorded=/opt/env/bin/python\n" in sh
    assert '"$INVOKEAI_ROOT/.venv/bin/python"' in sh
    assert 'exec "$python" -m invokeai_ti.launcher "$@"' in sh
    assert "\r" not in sh


def test_invoke_bat_sets_its_folder_as_root_and_finds_python():
    bat = launcher_scripts(r"C:\Users\Ann\100% sure\venv\Scripts\python.exe")["invoke.bat"]
    assert "\n" not in bat.replace("\r\n", ""), "a .bat needs CRLF line ends"
    lines = bat.split("\r\n")
    assert lines[0] == "@echo off"
    assert 'set "INVOKEAI_ROOT=%~dp0"' in lines
    assert 'set "INVOKEAI_ROOT=%INVOKEAI_ROOT:~0,-1%"' in lines  # no trailing backslash
    assert r'set "PYTHON=C:\Users\Ann\100%% sure\venv\Scripts\python.exe"' in lines
    assert r'if not exist "%PYTHON%" set "PYTHON=%INVOKEAI_ROOT%\.venv\Scripts\python.exe"' in lines
    assert '"%PYTHON%" -m invokeai_ti.launcher %*' in lines
    labels = {line[1:] for line in lines if line.startswith(":")}
    jumps = set(re.findall(r"goto (\w+)", bat))
    assert jumps <= labels
    # A ")" from a path like "Program Files (x86)" must never land inside a parenthesised block.
    assert "(" not in "".join(line for line in lines if not line.startswith("rem"))


def test_write_launcher_writes_executable_scripts(tmp_path):
    written = write_launcher(tmp_path)
    assert written == [tmp_path / "invoke.sh", tmp_path / "invoke.bat"]
    for path in written:
        assert os.access(path, os.X_OK)
    assert f"recorded={sys.executable}\n" in written[0].read_text()
    assert write_launcher(tmp_path) == written  # rewriting our own scripts is fine


def test_write_launcher_command_says_how_to_start_the_menu(tmp_path, monkeypatch, capsys):
    root = tmp_path / "my root"
    root.mkdir()
    monkeypatch.setenv("INVOKEAI_ROOT", str(root))
    assert run_write_launcher(None) == 0
    assert capsys.readouterr().out == (
        f"Wrote {root / 'invoke.sh'} and {root / 'invoke.bat'}, which use the Python environment "
        f"{sys.prefix}.\nStart the menu (option 3 trains an embedding) with:  '{root / 'invoke.sh'}'\n"
    )


def test_invokeai_ti_write_launcher_flag(tmp_path, capsys):
    from invokeai_ti.cli import build_parser
    from invokeai_ti.cli import main as cli_main

    if "--write-launcher" not in build_parser().format_help():
        pytest.skip("cli.py does not offer --write-launcher yet")
    assert cli_main(["--write-launcher", "--root", str(tmp_path)]) == 0
    assert f"Wrote {tmp_path / 'invoke.sh'} and {tmp_path / 'invoke.bat'}" in capsys.readouterr().out
    assert cli_main(["--write-launcher", "--root", str(tmp_path / "typo")]) == 2
    assert "is not an existing folder; pass one with --root" in capsys.readouterr().err


def test_write_launcher_never_replaces_invokeais_own_launcher(tmp_path):
    (tmp_path / "invoke.sh").write_text("#!/bin/bash\n. .venv/bin/activate\n")
    with pytest.raises(UserError, match=r"invoke\.sh was not written by invokeai-ti .*move it aside"):
        write_launcher(tmp_path)
    assert (tmp_path / "invoke.sh").read_text() == "#!/bin/bash\n. .venv/bin/activate\n"
    assert not (tmp_path / "invoke.bat").exists()


def test_write_launcher_needs_an_existing_root(tmp_path):
    with pytest.raises(UserError, match=r"is not an existing folder; pass one with --root"):
        write_launcher(tmp_path / "typo")


def test_invoke_sh_uses_its_own_folder_even_through_a_symlink(tmp_path):
    root = tmp_path / "my root's folder"
    root.mkdir()
    script, _ = write_launcher(root)
    elsewhere = tmp_path / "bin"
    elsewhere.mkdir()
    (elsewhere / "invoke").symlink_to(script)
    result = run_sh(elsewhere / "invoke", INVOKEAI_ROOT=str(tmp_path / "another-root"))
    assert result.returncode == 0, result.stderr
    assert f"InvokeAI root: {root} (Python environment: {sys.prefix})" in result.stdout
    assert MENU_PROMPT in result.stdout


def test_invoke_sh_falls_back_to_the_roots_venv(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    gone = tmp_path / "deleted env" / "bin" / "python"
    (root / "invoke.sh").write_text(launcher_scripts(str(gone))["invoke.sh"])
    (root / ".venv").symlink_to(sys.prefix)  # stands for the venv InvokeAI's installer makes
    result = run_sh(root / "invoke.sh")
    assert result.returncode == 0, result.stderr
    assert f"(Python environment: {root / '.venv'})" in result.stdout


def test_invoke_sh_without_any_python_says_what_to_do(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "invoke.sh").write_text(launcher_scripts(str(tmp_path / "gone" / "python"))["invoke.sh"])
    result = run_sh(root / "invoke.sh")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Neither {tmp_path / 'gone' / 'python'} nor {root}/.venv/bin/python exists; run "
        f'invokeai-ti --write-launcher --root "{root}" again from the environment where '
        "invokeai-ti is installed."
    )


# --- the menu --------------------------------------------------------------------------------


def test_bad_choices_are_answered_and_the_menu_comes_back(tmp_path, capsys):
    assert Launcher(tmp_path, answers("x", "42", "", " q ")).run() == 0
    out = capsys.readouterr().out
    assert "'x' is not on the menu; enter a number from 1 to 10, or Q to quit." in out
    assert "'42' is not on the menu" in out
    # Enter picks the default, 1, which is InvokeAI's web UI.
    assert (
        "InvokeAI is not installed in this environment (there is no invokeai command), so option 1 "
        '("Generate images using the browser-based interface") is not available; install InvokeAI '
        f"2.3 into {sys.prefix} to use it, or choose 3 to train an embedding."
    ) in out
    assert out.count(MENU_PROMPT) == 4
    assert "1: Generate images using the browser-based interface (needs InvokeAI)" in out
    assert "3: Run textual inversion training\n" in out


def test_end_of_input_quits_cleanly(tmp_path, capsys):
    assert Launcher(tmp_path, answers()).run() == 0
    assert capsys.readouterr().out.endswith(f"{PROMPT}\n")


def test_launcher_module_needs_an_existing_root(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "typo")]) == 2
    assert capsys.readouterr().err == (
        f"The InvokeAI root {tmp_path / 'typo'} is not an existing folder; pass one with --root or "
        "set INVOKEAI_ROOT.\n"
    )


def test_installed_invokeai_runs_its_own_commands(tmp_path, monkeypatch, capfd):
    bin_dir = tmp_path / "fake-invokeai"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name in INVOKEAI_PROGRAMS:
        program = bin_dir / name
        # Every one fails: the menu must come back whatever the exit status.
        record = f'echo "$(basename "$0")${{*:+ $*}} | $INVOKEAI_ROOT | $(pwd -P)" >> "{log}"'
        program.write_text(f"#!/bin/sh\n{record}\nexit 3\n")
        program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    root = (tmp_path / "root").resolve()
    root.mkdir()
    assert Launcher(root, answers("1", "2", "4", "5", "6", "7", "9", "10", "", "q")).run() == 0
    expected = [
        "invokeai --web",
        "invokeai",
        "invokeai-merge --gui",
        f"invokeai-model-install --root {root}",
        f"invokeai-configure --root {root} --skip-sd-weights --skip-support-models",
        f"invokeai-configure --root {root} --yes --default_only",
        "invokeai-update",
        "invokeai --help",
    ]
    assert log.read_text().splitlines() == [f"{call} | {root} | {root}" for call in expected]
    out = capfd.readouterr().out
    assert "(needs InvokeAI)" not in out
    assert "usage: invokeai-ti" in out  # option 10 shows this package's help before InvokeAI's
    assert out.count(MENU_PROMPT) == 9


def test_a_program_that_cannot_start_is_reported(tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "broken-invokeai"
    bin_dir.mkdir()
    program = bin_dir / "invokeai-update"
    program.write_text("#!/nonexistent/interpreter\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert Launcher(tmp_path, answers("9", "q")).run() == 0
    out = capsys.readouterr().out
    assert f"{program} could not be started (No such file or directory); check its installation in" in out
    assert out.count(MENU_PROMPT) == 2


# --- in a real terminal ----------------------------------------------------------------------

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    """``bash script`` in a private tmux server (its own socket), away from the developer's sessions."""

    def __init__(self, tmp_path: Path, script: Path) -> None:
        self.socket = f"invokeai-ti-test-{os.getpid()}-{time.monotonic_ns()}"
        config = tmp_path / "tmux.conf"
        config.write_text("set -g remain-on-exit on\nset -g history-limit 10000\n")
        env = {**terminal_environment(), "SHELL": "/bin/bash"}
        command = f"bash {shlex.quote(str(script))}; echo \"[launcher exited with status $?]\""
        self.tmux(
            "-f", str(config), "new-session", "-d", "-s", "t", "-x", "120", "-y", "50", command, env=env
        )

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True, env=env
        ).stdout

    def history(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "t")

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.send("Enter")

    def wait(self, done: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the terminal shows:\n" + self.history())
            time.sleep(0.2)

    def wait_for_menu(self, count: int) -> None:
        self.wait(lambda: self.history().count(MENU_PROMPT) >= count, f"menu number {count}")

    def wait_for_text(self, text: str, timeout: float = 60) -> None:
        self.wait(lambda: text in self.history(), repr(text), timeout)

    def exit_status(self) -> int | None:
        """None while the launcher runs (read from the shell, since tmux can report it late)."""
        found = re.search(r"\[launcher exited with status (\d+)\]", self.history())
        return int(found.group(1)) if found else None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path):
    opened: list[Terminal] = []

    def start(script: Path) -> Terminal:
        opened.append(Terminal(tmp_path, script))
        return opened[-1]

    yield start
    for term in opened:
        term.close()


def cancel_button_focused(term: Terminal) -> bool:
    return re.search(r"\x1b\[7m(\x1b\[[0-9;]*m)* Cancel ", term.screen(escapes=True)) is not None


@needs_tmux
def test_menu_in_a_terminal_opens_the_form_console_and_help(tmp_path, terminal):
    root = tmp_path / "demo root"
    make_demo_root(root)
    script, _ = write_launcher(root)
    term = terminal(script)
    term.wait_for_menu(1)

    term.type("x")
    term.wait_for_text("'x' is not on the menu")
    term.wait_for_menu(2)
    term.type("42")
    term.wait_for_text("'42' is not on the menu")
    term.wait_for_menu(3)
    term.type("")
    term.wait_for_text('so option 1 ("Generate images using the browser-based interface") is not available;')
    term.wait_for_menu(4)

    term.type("10")
    term.wait_for_text("Press Enter to return to the menu.")
    assert "usage: invokeai-ti" in term.history()
    term.type("")
    term.wait_for_menu(5)

    term.type("8")
    term.wait_for_text("type exit to return to the menu.")
    term.type('echo "root=$INVOKEAI_ROOT python=$(command -v python)"; exit')
    term.wait_for_text(f"root={root} python={Path(sys.prefix) / 'bin' / 'python'}")
    term.wait_for_menu(6)

    # Option 3 is the form; its Cancel button is reached with Ctrl-N, as its help line says.
    term.type("3")
    term.wait(lambda: "Textual Inversion Settings" in term.screen(), "the form")
    for _ in range(60):
        if cancel_button_focused(term):
            break
        # One key at a time, each after the redraw, so a slow one cannot skip past Cancel.
        press_and_wait(lambda: term.screen(escapes=True), lambda: term.send("C-n"))
    assert cancel_button_focused(term), term.screen()
    term.send("Enter")
    term.wait_for_text("Cancelled")
    term.wait_for_menu(7)

    # Ctrl-C in the form interrupts the form only; the menu survives it.
    term.type("3")
    term.wait(lambda: "Textual Inversion Settings" in term.screen(), "the form again")
    term.send("C-c")
    term.wait_for_menu(8)
    assert term.history().count("Cancelled") == 2

    term.type("Q")
    term.wait(lambda: term.exit_status() is not None, "the launcher to exit", timeout=10)
    assert term.exit_status() == 0
    assert "Traceback" not in term.history()


@needs_tmux
def test_end_of_input_in_a_terminal_exits_cleanly(tmp_path, terminal):
    script, _ = write_launcher(tmp_path)
    term = terminal(script)
    term.wait_for_menu(1)
    term.send("C-d")
    term.wait(lambda: term.exit_status() is not None, "the launcher to exit", timeout=10)
    assert term.exit_status() == 0
    assert "Traceback" not in term.history()
