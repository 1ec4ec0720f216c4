"""Which files each step of a run left for each tool, which of them is installed for InvokeAI
(read from disk, so an install after training shows too), and the command that installs a step:
what the report and the workflow say about a run's files."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from ..paths import RootLayout
from ..settings.trigger import bare_trigger
from .layout import INSTALLED_NAME, OutputLayout
from .run_result import result_step


def install_command(settings: dict, output_dir: Path, step: int | str) -> str:
    """The command that installs this step's snapshot for InvokeAI, runnable as it stands (with a
    step number for ``step``; the report also names it with a placeholder, N)."""
    trigger = bare_trigger(str(settings.get("placeholder_token", ""))) or "<trigger>"
    words = ["invokeai-ti", "--install-step", str(step)]
    root = settings.get("root")
    if root:
        words += ["--root", str(root)]
    words += ["--placeholder_token", trigger]
    if root is None or output_dir != RootLayout(Path(root)).output_dir(trigger):
        words += ["--output_dir", str(output_dir)]
    return " ".join(shlex.quote(word) for word in words)


def tool_files(layout: OutputLayout, step: int, final: bool) -> list[tuple[str, list[str]]]:
    """Which files of this step each tool takes (REFERENCE: who loads what), those on disk only;
    ``final`` when the final files hold this step (``outputs.run_result``).

    ``learned_embeds-steps-N.safetensors`` looks like the file to take but InvokeAI misreads its
    width, so InvokeAI gets the ``.bin`` (installed by a command) and the others their own file.
    Two encoders are asked for: SDXL's second diffusers file is named only when it exists.
    """
    names = dataclasses.replace(layout, encoders=2).embeddings(None if final else step)
    found = [
        ("InvokeAI", [names.invokeai]),
        ("diffusers", [path for path in names.diffusers if path.is_file()]),
        ("AUTOMATIC1111, ComfyUI, kohya", [names.single_file]),
    ]
    return [(tool, [path.name for path in paths]) for tool, paths in found if paths and paths[0].is_file()]


def installed_embedding(settings: dict) -> Path | None:
    """The file installed for InvokeAI in the run's root, when there is one."""
    trigger = bare_trigger(str(settings.get("placeholder_token", "")))
    root = settings.get("root")
    if not (root and trigger):
        return None
    path = RootLayout(Path(root)).embedding_dir(trigger) / INSTALLED_NAME
    return path if path.is_file() else None


def finished_result(layout: OutputLayout) -> int | None:
    """The step the final files hold once the run has written them; None while it trains."""
    return result_step(layout) if layout.embeddings().invokeai.is_file() else None


def is_installed(step: int, layout: OutputLayout, installed: bytes | None, result: int | None) -> bool:
    """Whether the installed file is a copy of this step's (the run's result: of either file)."""
    if installed is None:
        return False
    candidates = [layout.embeddings(step).invokeai]
    if step == result:
        candidates.append(layout.embeddings().invokeai)
    return any(path.is_file() and path.read_bytes() == installed for path in candidates)


def installed_step(layout: OutputLayout, settings: dict, result: int | None) -> int | None:
    """The step whose file is installed for InvokeAI, read from disk; None when none of this
    run's is."""
    if (path := installed_embedding(settings)) is None:
        return None
    installed = path.read_bytes()
    steps = ([] if result is None else [result]) + layout.snapshot_steps()
    return next((step for step in steps if is_installed(step, layout, installed, result)), None)
