"""After a run, "delete training logs and intermediate checkpoints" removes exactly the leftovers
of every model family and keeps the final embedding, its backup and the recorded settings.

The files are written by the trainer's own writers, so a writer that adds or renames a file
cannot leave the clean-up behind unnoticed (as SDXL's ``learned_embeds_2-steps-N`` once was).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from invokeai_ti.form import cleanup
from invokeai_ti.form.cleanup import ask_to_delete_leftovers, delete_question
from invokeai_ti.outputs.family_files import FamilyFiles, StableDiffusionFiles, StableDiffusionXLFiles
from invokeai_ti.outputs.layout import CHECKPOINT_STATE, INSTALLED_BACKUP, SET_ASIDE, OutputLayout

SD, SDXL = StableDiffusionFiles(), StableDiffusionXLFiles()
FAMILIES = {
    "SD-1, one vector": (SD, (32,), 1),
    "SD-1, three vectors": (SD, (32,), 3),
    "SDXL": (SDXL, (32, 48), 1),
}


def finished_run(tmp_path: Path, family: FamilyFiles, widths: tuple[int, ...], vectors: int) -> OutputLayout:
    """An output folder as a run of ``family`` leaves it: two snapshots, two checkpoints, logs, the end."""
    out = tmp_path / "text-inversion-output" / "cat"
    learned = [torch.randn(vectors, width) for width in widths]
    for step in (250, 500):
        family.save_files(out, "<cat>", learned, step, "tiny", snapshot=True)
    family.save_files(out / "checkpoint-500", "<cat>", learned, 500, "tiny")
    family.save_files(out / "checkpoint-1000", "<cat>", learned, 1000, "tiny")
    for step in (500, 1000):
        (out / f"checkpoint-{step}" / CHECKPOINT_STATE).write_text("{}", encoding="utf-8")
    family.save_files(out, "<cat>", learned, 1000, "tiny")
    (out / "logs").mkdir()
    for name in (INSTALLED_BACKUP, "loss_log.csv", "training_settings.json"):
        (out / name).write_text("x", encoding="utf-8")
    installed = tmp_path / "embeddings" / "cat" / "learned_embeds.bin"
    installed.parent.mkdir(parents=True)
    installed.write_text("x", encoding="utf-8")
    return family.output_layout(out, "<cat>")


def final_files(layout: OutputLayout) -> set[str]:
    return {path.name for path in layout.embeddings().all()}


@pytest.mark.parametrize("case", list(FAMILIES))
def test_leftovers_are_the_snapshots_checkpoints_and_logs_of_each_family(tmp_path, case):
    family, widths, vectors = FAMILIES[case]
    layout = finished_run(tmp_path, family, widths, vectors)
    snapshots = {path.name for step in (250, 500) for path in layout.embeddings(step).all()}
    assert len(snapshots) == 2 * len(final_files(layout)), "every snapshot file is on disk"
    found = {path.name for path in layout.leftovers(Path("logs"))}
    assert found == snapshots | {"checkpoint-500", "logs", "loss_log.csv"}
    kept = {path.name for path in layout.folder.iterdir()} - found
    assert kept == final_files(layout) | {INSTALLED_BACKUP, "training_settings.json", "checkpoint-1000"}, (
        "the last checkpoint stays: without it the run could not be continued")


def test_sdxl_leftovers_include_the_second_encoders_snapshots(tmp_path):
    layout = finished_run(tmp_path, SDXL, (32, 48), 1)
    assert {"learned_embeds_2-steps-250.safetensors", "learned_embeds_2-steps-500.safetensors"} <= {
        path.name for path in layout.leftovers(Path("logs"))
    }


def test_logs_outside_the_output_folder_are_never_leftovers(tmp_path):
    layout = finished_run(tmp_path, SD, (32,), 1)
    found = layout.leftovers(tmp_path / "elsewhere")
    assert "logs" not in {path.name for path in found}
    assert all(path.parent == layout.folder for path in found)


class FakeStdin:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty, answer, deleted", [
    (True, "", True), (True, "y", True), (True, "n", False), (True, EOFError, False), (False, "y", False),
])
def test_delete_question_needs_a_yes_from_a_person(tmp_path, monkeypatch, capsys, tty, answer, deleted):
    layout = finished_run(tmp_path, SDXL, (32, 48), 1)

    def fake_input(prompt: str) -> str:
        assert prompt == ("Delete training logs and intermediate checkpoints (deletes checkpoint-500, the "
                          "learned_embeds-steps-N snapshots of steps 250, 500, logs/, loss_log.csv; "
                          "checkpoint-1000, the last, is kept to continue from)? [y] ")
        if answer is EOFError:
            raise EOFError
        return answer

    monkeypatch.setattr(cleanup.sys, "stdin", FakeStdin(tty))
    monkeypatch.setattr("builtins.input", fake_input)
    ask_to_delete_leftovers(layout, Path("logs"))
    left = {path.name for path in layout.folder.iterdir()}
    if deleted:
        assert left == final_files(layout) | {INSTALLED_BACKUP, "training_settings.json", "checkpoint-1000"}
    else:
        assert "checkpoint-500" in left and "learned_embeds_2-steps-500.safetensors" in left
    assert (tmp_path / "embeddings" / "cat" / "learned_embeds.bin").exists()
    assert ("Deleted" if deleted else "Kept") in capsys.readouterr().out



def test_an_earlier_run_set_aside_is_kept_and_the_question_says_so(tmp_path, monkeypatch):
    """The reported case: the question kept "checkpoint-20, the last" and silently deleted
    previous-run-checkpoints/checkpoint-100, the run the form had just offered to resume."""
    layout = finished_run(tmp_path, SD, (32,), 1)
    aside = layout.folder / SET_ASIDE / "checkpoint-100"
    SD.save_files(aside, "<cat>", [torch.randn(1, 32)], 100, "tiny")
    (aside / CHECKPOINT_STATE).write_text("{}", encoding="utf-8")
    assert layout.folder / SET_ASIDE not in layout.leftovers(Path("logs"))
    asked = []
    monkeypatch.setattr(cleanup.sys, "stdin", FakeStdin(True))
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "y")
    ask_to_delete_leftovers(layout, Path("logs"))
    assert asked[0].endswith("checkpoint-1000, the last, is kept to continue from; the earlier run in "
                             "previous-run/ is kept)? [y] ")
    assert (aside / CHECKPOINT_STATE).is_file()


def test_the_question_names_every_checkpoint_folder_it_deletes(tmp_path):
    layout = finished_run(tmp_path, SD, (32,), 1)
    leftovers = layout.leftovers(Path("logs"))
    assert "deletes checkpoint-500, " in delete_question(layout, leftovers, layout.last_checkpoint())
    for step in (100, 200, 300, 400):
        (layout.folder / f"checkpoint-{step}").mkdir()
        (layout.folder / f"checkpoint-{step}" / CHECKPOINT_STATE).write_text("{}", encoding="utf-8")
    question = delete_question(layout, layout.leftovers(Path("logs")), layout.last_checkpoint())
    assert "deletes checkpoint-100 to checkpoint-500 (5 checkpoint folders), " in question
