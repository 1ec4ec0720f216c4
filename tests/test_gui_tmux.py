"""``invokeai-ti --gui`` in a real terminal: tmux types the keys and reads the screen.

Each test gets its own tmux server (``-L``), so it never touches a tmux the developer is using.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from invokeai_ti.demo import DEMO_MODEL_DESCRIPTION, DEMO_TRIGGER, demo_settings, make_demo_root
from invokeai_ti.workflow import plan_run, run_plan
from tests.screens import press_and_wait, terminal_environment

pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
              pytest.mark.slow]

# Loading torch and the form takes about ten seconds here; training the tiny model a few more.
START_TIMEOUT = 90
TRAIN_TIMEOUT = 180
FOCUSED_OK = re.compile(r"\x1b\[7m(\x1b\[[0-9;]*m)* OK ")


class Terminal:
    """One command running in a detached tmux window of a fixed size; by default tall enough
    for the whole form on one page, so a test sees every field it edits at once."""

    def __init__(self, command: str, *, columns: int = 200, lines: int = 64) -> None:
        self.tmux = ["tmux", "-L", f"invokeai-ti-test-{uuid.uuid4().hex[:8]}"]
        env = terminal_environment()
        # The shell reports the exit status and whether the terminal got echo back, on one line
        # so both are on screen together, then waits so the screen can still be read.
        script = (f"{command}; code=$?; echo EXIT=$code TTY=$(stty -a | tr ' ;' '\\n\\n' | "
                  "grep -x -- '-*echo'); sleep 300")
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-s", "gui", "-x", str(columns), "-y", str(lines), script],
            check=True, env=env,
        )

    def keys(self, *keys: str) -> None:
        """Queue keys; the form reads them in order, so what they did is read with ``wait_for``."""
        for key in keys:
            subprocess.run([*self.tmux, "send-keys", "-t", "gui", key], check=True)

    def type(self, text: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", "gui", "-l", text], check=True)

    def screen(self, colours: bool = False) -> str:
        command = [*self.tmux, "capture-pane", "-p", "-J", "-t", "gui"] + (["-e"] if colours else [])
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout

    def poll(self, done: Callable[[str], bool], failure: str, timeout: float) -> str:
        """The first screen ``done`` accepts, read every 0.3 s; past ``timeout`` the test fails
        with ``failure`` and the screen as it is."""
        deadline = time.monotonic() + timeout
        while not done(screen := self.screen()):
            if time.monotonic() > deadline:
                pytest.fail(f"{failure}; the screen shows:\n{screen}")
            time.sleep(0.3)
        return screen

    def wait_for(self, *texts: str, timeout: float = START_TIMEOUT) -> str:
        return self.poll(lambda screen: all(text in screen for text in texts),
                         f"{texts} did not appear within {timeout} s", timeout)

    def wait_for_gone(self, text: str, timeout: float = START_TIMEOUT) -> str:
        """The screen once ``text`` has left it (a popup closed: the form behind it was on the
        screen all along, so waiting for the form's own words alone can read the popup's last frame).
        Gone from two reads in a row: a popup redrawing itself (as npyscreen does when it starts
        reading keys) shows one frame without its text, and the key may not have reached it yet."""
        gone_before = False

        def gone_twice(screen: str) -> bool:
            nonlocal gone_before
            gone, gone_before = text not in screen and gone_before, text not in screen
            return gone

        return self.poll(gone_twice, f"{text!r} was still on the screen after {timeout} s", timeout)

    def focus_ok(self) -> None:
        """^N through the fields and pages, one redraw at a time, until OK is highlighted."""
        screen = self.screen(colours=True)
        for _ in range(40):
            if FOCUSED_OK.search(screen):
                return
            screen = press_and_wait(lambda: self.screen(colours=True), lambda: self.keys("C-n"))
        pytest.fail(f"^N never reached OK; the screen shows:\n{self.screen()}")

    def type_trigger(self, trigger: str, *shown: str) -> str:
        """From the form's first field, type ``trigger`` and wait for what it fills in."""
        self.keys("Tab")
        self.type(trigger)
        return self.wait_for(*shown)

    def train_keeping_leftovers(self) -> str:
        """OK, wait for the training to end, keep the final embedding installed (Enter, when the run
        has earlier snapshots to offer) and answer no to deleting its leftovers; the last screen."""
        self.focus_ok()
        self.keys("Enter")
        cleanup = "is kept to continue from)? [y]"

        def install_question(screen: str) -> bool:
            return "or press Enter to keep step" in (screen.rstrip().splitlines() or [""])[-1]

        screen = self.poll(lambda screen: cleanup in screen or install_question(screen),
                           f"the clean-up question did not appear within {TRAIN_TIMEOUT} s", TRAIN_TIMEOUT)
        if cleanup not in screen:
            self.keys("Enter")
            self.wait_for(cleanup, timeout=30)
        self.type("n")
        self.keys("Enter")
        return self.wait_for("EXIT=", timeout=30)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False, capture_output=True)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    return make_demo_root(tmp_path_factory.mktemp("demo") / "root").root


@pytest.fixture
def demo_root(demo_template, tmp_path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(demo_template, root)
    return root


@pytest.fixture(scope="session")
def trained_demo_template(tmp_path_factory) -> Path:
    """A demo root after a short `invokeai-ti --demo` run: checkpoints at batch 2, accumulation 1."""
    root = make_demo_root(tmp_path_factory.mktemp("trained-demo") / "root").root
    settings = dataclasses.replace(demo_settings(root), max_train_steps=4, checkpointing_steps=2, train_batch_size=2)
    run_plan(plan_run(settings), show_progress=False)
    return root


@pytest.fixture
def trained_demo_root(trained_demo_template, tmp_path) -> Path:
    """The trained demo root with a user's own preferences: batch 3, accumulation 4, 6 steps."""
    root = tmp_path / "root"
    shutil.copytree(trained_demo_template, root)
    preferences = {"train_batch_size": 3, "gradient_accumulation_steps": 4, "max_train_steps": 6}
    (root / "text-inversion-output" / "preferences.conf").write_text(yaml.safe_dump(preferences))
    return root


@pytest.fixture
def terminals():
    opened: list[Terminal] = []

    def open_terminal(root: Path, *flags: str, **size: int) -> Terminal:
        command = " ".join([sys.executable, "-m", "invokeai_ti", "--gui", "--root", str(root), *flags])
        terminal = Terminal(command, **size)
        opened.append(terminal)
        return terminal

    yield open_terminal
    for terminal in opened:
        terminal.close()


def test_type_a_trigger_press_ok_and_the_embedding_is_installed(demo_root, terminals):
    t = terminals(demo_root, "--max_train_steps", "4", "--train_batch_size", "1",
                  "--gradient_accumulation_steps", "1", "--checkpointing_steps", "2", "--save_steps", "2", "--validation_steps", "4")
    t.wait_for("Textual Inversion Settings", "Trigger Term:", "Use xformers acceleration")
    data = demo_root / "text-inversion-training-data" / DEMO_TRIGGER
    output = demo_root / "text-inversion-output" / DEMO_TRIGGER
    screen = t.type_trigger(DEMO_TRIGGER, str(data), str(output),
                            f"(Trigger by using <{DEMO_TRIGGER}> in your prompts)",
                            f"Previews (p1 | p2; none=off):   a photo of a <{DEMO_TRIGGER}> |")
    assert "[ ]  Resume from last saved checkpoint" in screen
    assert "4 / 10000" in screen and "1 / 50" in screen
    t.focus_ok()
    t.keys("Enter")
    installed = demo_root / "embeddings" / DEMO_TRIGGER / "learned_embeds.bin"
    t.wait_for("Type 2, or press Enter to keep step 4:", timeout=TRAIN_TIMEOUT)
    assert f"The embedding is installed at {installed}; type <{DEMO_TRIGGER}> in your prompts" in t.screen()
    final = installed.read_bytes()
    t.type("2")
    t.keys("Enter")
    t.wait_for("Delete training logs and intermediate checkpoints (deletes checkpoint-2, the learned_embeds-steps-N "
               "snapshots of steps 2, 4, evaluation.csv, loss_log.csv, vector_norms.csv; checkpoint-4, the last, is kept "
               "to continue from)? [y]",
               timeout=30)
    assert f"The embedding of step 2 is installed at {installed}" in t.screen()
    assert installed.read_bytes() == (output / "learned_embeds-steps-2.bin").read_bytes()
    assert (output / "learned_embeds.bin.previous").read_bytes() == final
    t.keys("Enter")
    screen = t.wait_for("EXIT=", timeout=30)
    assert "EXIT=0" in screen
    assert "Deleted the training logs and intermediate checkpoints" in screen
    assert list(installed.parent.iterdir()) == [installed]
    data = torch.load(installed, weights_only=True)
    assert list(data) == [f"<{DEMO_TRIGGER}>"] and data[f"<{DEMO_TRIGGER}>"].dim() == 1, "InvokeAI reads one 1-D vector"
    assert not (output / "checkpoint-2").exists() and not (output / "learned_embeds-steps-2.bin").exists()
    assert (output / "checkpoint-4").is_dir(), "the last checkpoint stays, to continue from"
    assert (output / "samples" / "step-000004.png").is_file() and (output / "report.html").is_file()
    saved = yaml.safe_load((demo_root / "text-inversion-output" / "preferences.conf").read_text())
    assert saved["max_train_steps"] == 4 and "placeholder_token" not in saved

    # The next form remembers the choices, ticks resume for a trigger with a checkpoint, and
    # Cancel leaves without training.
    t = terminals(demo_root)
    screen = t.wait_for("Trigger Term:", "Use xformers acceleration")
    assert "4 / 10000" in screen and "1 / 50" in screen and "1 / 10" in screen
    t.type_trigger(DEMO_TRIGGER, "[X]  Resume from last saved checkpoint")
    t.focus_ok()
    t.keys("C-p", "Enter")
    screen = t.wait_for("EXIT=", timeout=30)
    assert "Cancelled; nothing was trained." in screen and "EXIT=1" in screen
    assert "TTY=echo" in screen


def test_a_new_run_over_an_older_one_offers_and_installs_only_its_own_steps(demo_root, terminals):
    """The reported case: the install question offered the older run's steps beside the new
    run's, installed one, and the clean-up deleted the older run's resumable checkpoint."""
    older = dataclasses.replace(demo_settings(demo_root), max_train_steps=6, save_steps=2, checkpointing_steps=6,
                                train_batch_size=1, validation_prompt="none")
    run_plan(plan_run(older), show_progress=False)
    output = demo_root / "text-inversion-output" / DEMO_TRIGGER
    older_final = (output / "learned_embeds.bin").read_bytes()
    t = terminals(demo_root, "--max_train_steps", "4", "--train_batch_size", "1", "--gradient_accumulation_steps",
                  "1", "--checkpointing_steps", "4", "--save_steps", "2", "--validation_prompt", "none")
    t.wait_for("Trigger Term:", "Use xformers acceleration")
    t.type_trigger(DEMO_TRIGGER, "[X]  Resume from last saved checkpoint")
    t.keys("C-n", "C-n", "Space")  # the initializer, then the resume box: untick it
    t.wait_for("[ ]  Resume from last saved checkpoint  (a new run from step 0)",
               "A new run moves the earlier run's files to previous-run/: checkpoint-6")
    t.focus_ok()
    t.keys("Enter")
    screen = t.wait_for("Type 2, or press Enter to keep step 4:", timeout=TRAIN_TIMEOUT)
    assert "the earlier run's files (checkpoint-6 and older, the snapshots of steps 2, 4, 6," in " ".join(
        screen.split()), "the new run said where the older one went"
    t.type("6")
    t.keys("Enter")
    screen = t.wait_for("the earlier run in previous-run/ is kept)? [y]", timeout=30)
    assert "No embedding of step 6 was saved; the embedding of step 4 stays installed." in screen
    installed = demo_root / "embeddings" / DEMO_TRIGGER / "learned_embeds.bin"
    assert installed.read_bytes() == (output / "learned_embeds.bin").read_bytes() != older_final
    t.keys("Enter")
    assert "EXIT=0" in t.wait_for("EXIT=", timeout=30)
    aside = output / "previous-run"
    assert (aside / "checkpoint-6" / "trainer_state.json").is_file(), "the older run can still be resumed"
    assert (aside / "learned_embeds-steps-6.bin").is_file() and (aside / "learned_embeds.bin").read_bytes() == older_final
    assert not (output / "learned_embeds-steps-6.bin").exists()


def test_resuming_the_demo_with_other_saved_preferences_trains_on_from_the_form(trained_demo_root, terminals):
    """The reported case: the form used to close and the trainer refused the checkpoint."""
    t = terminals(trained_demo_root)
    screen = t.wait_for("Trigger Term:", "Use xformers acceleration")
    assert "3 / 50" in screen and "4 / 10" in screen
    screen = t.type_trigger(DEMO_TRIGGER, "[X]  Resume from last saved checkpoint  (from step 4 of 6)",
                            "checkpoint-4's run set (untick to undo): batch 2, accumulation 1,")
    assert "2 / 50" in screen and "1 / 10" in screen
    screen = t.train_keeping_leftovers()
    assert "EXIT=0" in screen and "Resuming from checkpoint-4 (step 4 of 6)." in screen
    assert "different run" not in screen
    output = trained_demo_root / "text-inversion-output" / DEMO_TRIGGER
    assert (output / "checkpoint-6").is_dir()
    assert (trained_demo_root / "embeddings" / DEMO_TRIGGER / "learned_embeds.bin").is_file()
    saved = yaml.safe_load((trained_demo_root / "text-inversion-output" / "preferences.conf").read_text())
    assert (saved["train_batch_size"], saved["gradient_accumulation_steps"]) == (3, 4), (
        "the checkpoint's values are for resuming it; the user's preferences stay theirs")


def test_changing_the_batch_size_while_resuming_names_the_difference_and_keeps_the_form(
    trained_demo_root, terminals
):
    t = terminals(trained_demo_root)
    t.wait_for("Trigger Term:", "Use xformers acceleration")
    t.type_trigger(DEMO_TRIGGER, "(from step 4 of 6)")
    # Initializer, resume, learnable property, both folders, resolution, center crop, mixed
    # precision and max steps lie between the trigger and the batch size.
    t.keys(*["C-n"] * 10)
    t.keys("Right")
    t.wait_for("3 / 50")
    t.focus_ok()
    t.keys("Enter")
    screen = t.wait_for("The following problems were detected and must be corrected:")
    # The popup wraps its text; read it as one line.
    text = " ".join(line.strip("│ ") for line in screen.splitlines())
    assert "batch size 2 (checkpoint) vs 3 (now)" in text
    assert "untick it to start a new run with these values" in text
    t.keys("Enter")
    t.wait_for_gone("The following problems were detected")
    screen = t.wait_for("Trigger Term:", "(from step 4 of 6)")
    assert "The following problems" not in screen and "3 / 50" in screen
    t.keys("C-c")
    screen = t.wait_for("EXIT=", timeout=30)
    assert "EXIT=130" in screen and "Traceback" not in screen


def test_a_bad_trigger_is_named_while_typing_and_the_popup_returns_to_it(demo_root, terminals):
    t = terminals(demo_root, columns=80, lines=24)
    screen = t.wait_for("Trigger Term:", "Page 1 of ")
    pages = re.search(r"Page 1 of (\d+)", screen).group(1)
    text = " ".join(line.strip("│ ") for line in screen.splitlines())
    assert DEMO_MODEL_DESCRIPTION in text, (
        "at 80x24 the chosen model's description is shown in full under the list")
    t.keys("Tab")
    t.type("bad trigger!")
    screen = t.wait_for("(contains space, '!'; use only letters, digits, '.', '-' and '_')")  # whole, at 80 columns
    assert "<bad trigger!>" not in screen and "bad trigger!/" not in screen, "no folder follows it"
    t.focus_ok()
    t.wait_for(f"Page {pages} of {pages}")
    t.keys("Enter")
    screen = t.wait_for("The following problems were detected and must be corrected:")
    assert "* The trigger term 'bad trigger!' contains space, '!'" in screen
    t.keys("Enter")
    t.wait_for_gone("The following problems were detected")
    # The cursor is back in the trigger, on the first page: typing goes on where it stopped.
    t.keys("BSpace")
    t.type("X")
    screen = t.wait_for(f"Page 1 of {pages}", "bad triggerX", "(contains space;")
    assert "The following problems" not in screen
    t.keys("C-c")
    screen = t.wait_for("EXIT=", timeout=30)
    assert "Cancelled with Ctrl-C; nothing was trained." in screen and "EXIT=130" in screen
    assert "TTY=echo" in screen and "Traceback" not in screen


def test_a_caption_without_the_trigger_puts_the_cursor_on_the_data_folder_field(demo_root, terminals):
    """The fix is in the folder's caption files, so the cursor goes there, not to the trigger."""
    data = demo_root / "text-inversion-training-data" / DEMO_TRIGGER
    caption = sorted(data.iterdir())[0].with_suffix(".txt")
    caption.write_text("a photo of a toy", encoding="utf-8")
    t = terminals(demo_root)
    t.wait_for("Trigger Term:", "Use xformers acceleration")
    t.type_trigger(DEMO_TRIGGER, str(data))
    t.focus_ok()
    t.keys("Enter")
    screen = t.wait_for("The following problems were detected and must be corrected:")
    text = " ".join(line.strip("│ ") for line in screen.splitlines())
    assert caption.name in text and f"<{DEMO_TRIGGER}>" in text
    t.keys("Enter")
    t.wait_for_gone("The following problems were detected")
    t.type("_captioned")
    screen = t.wait_for(f"{data}_captioned")
    assert "The following problems" not in screen
    output = demo_root / "text-inversion-output" / DEMO_TRIGGER
    assert f"<{DEMO_TRIGGER}_captioned>" not in screen and f"{output}_captioned" not in screen, (
        "typed into the data folder, not the trigger (whose folders would have followed it)")
    t.keys("C-c")
    screen = t.wait_for("EXIT=", timeout=30)
    assert "EXIT=130" in screen and "Traceback" not in screen


def test_tab_completes_a_partly_typed_folder_and_moves_on_from_a_complete_one(demo_root, terminals):
    """npyscreen's filename field appended "/" to a complete folder and opened a list of its
    contents that only Escape left; Tab now does what the header says."""
    t = terminals(demo_root)
    t.wait_for("Trigger Term:", "Use xformers acceleration", "Tab or Ctrl-N: next field")
    data = demo_root / "text-inversion-training-data" / DEMO_TRIGGER
    output = demo_root / "text-inversion-output" / DEMO_TRIGGER
    t.type_trigger(DEMO_TRIGGER, str(data), str(output))
    # Initializer, resume and learnable property lie between the trigger and the data folder.
    t.keys(*["C-n"] * 4)
    t.keys(*["BSpace"] * (len(DEMO_TRIGGER) - 1))
    t.wait_for(f"{data.parent / DEMO_TRIGGER[0]} ")
    t.keys("Tab")
    screen = t.wait_for(str(data))
    assert f"{data}/" not in screen
    t.keys("Tab")
    t.type("_elsewhere")
    screen = t.wait_for(f"{output}_elsewhere")
    assert f"{data}/" not in screen and f"{data}_elsewhere" not in screen
    t.keys("C-c")
    screen = t.wait_for("EXIT=", timeout=30)
    assert "EXIT=130" in screen and "Traceback" not in screen


def test_max_training_steps_takes_a_typed_number_and_the_previews_follow_a_short_run(demo_root, terminals):
    t = terminals(demo_root)
    t.wait_for("Trigger Term:", "3000 / 10000", "500 / 2000")
    t.keys("Tab")
    t.type(DEMO_TRIGGER)
    # Initializer, resume, learnable property, both folders, resolution, center crop and mixed
    # precision lie between the trigger and the max steps.
    t.keys(*["C-n"] * 9)
    t.type("30")
    screen = t.wait_for("30 / 10000", "15 / 2000")
    t.keys("BSpace")
    t.type("0000")
    screen = t.wait_for("30000 / 30000")
    assert "500 / 2000" in screen, "back to the default interval for a long run"
    t.keys("C-c")
    screen = t.wait_for("EXIT=", timeout=30)
    assert "EXIT=130" in screen and "Traceback" not in screen


def test_a_small_terminal_is_told_the_size_it_needs(demo_root, terminals):
    t = terminals(demo_root, columns=70, lines=20)
    screen = t.wait_for("EXIT=")
    assert "it needs at least 80x24 (this terminal is 70x20)" in screen and "EXIT=1" in screen
