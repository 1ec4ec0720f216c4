"""A new run in a folder holding an earlier one moves every file of the earlier run aside, for
every model family, and never deletes one: not the earlier run's, not one set aside before it."""

from __future__ import annotations

from pathlib import Path

import pytest

from invokeai_ti.outputs.layout import INSTALLED_BACKUP, LOCK_NAME, SET_ASIDE
from invokeai_ti.outputs.previous_run import earlier_run_summary, set_aside_previous_run
from tests.test_cleanup import FAMILIES, finished_run


def names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


@pytest.mark.parametrize("case", list(FAMILIES))
def test_every_file_a_run_wrote_moves_aside_and_only_those(tmp_path, case):
    family, widths, vectors = FAMILIES[case]
    layout = finished_run(tmp_path, family, widths, vectors)
    for name in ("samples", "pipeline"):
        (layout.folder / name).mkdir()
    for name in ("report.html", "loss.svg", LOCK_NAME, "my-notes.txt"):
        (layout.folder / name).write_text("x", encoding="utf-8")
    before = names(layout.folder)
    stays = {INSTALLED_BACKUP, LOCK_NAME, "my-notes.txt"}

    note = set_aside_previous_run(layout, Path("logs"))
    assert note.startswith("Starting a new run: the earlier run's files (checkpoint-1000 and older, the "
                           "snapshots of steps 250, 500, ")
    assert names(layout.folder) == stays | {SET_ASIDE}
    assert names(layout.folder / SET_ASIDE) == before - stays
    assert earlier_run_summary(layout, Path("logs")) == f"{SET_ASIDE}/"


def test_a_run_set_aside_earlier_moves_inside_the_next_one_whole(tmp_path):
    family, widths, vectors = FAMILIES["SD-1, one vector"]
    layout = finished_run(tmp_path, family, widths, vectors)
    set_aside_previous_run(layout, Path("logs"))
    (layout.folder / "loss_log.csv").write_text("step,loss\n", encoding="utf-8")
    set_aside_previous_run(layout, Path("logs"))
    assert names(layout.folder / SET_ASIDE) == {"loss_log.csv", SET_ASIDE}
    assert "checkpoint-1000" in names(layout.folder / SET_ASIDE / SET_ASIDE)


def test_an_empty_folder_has_nothing_to_move(tmp_path):
    family, *_ = FAMILIES["SD-1, one vector"]
    layout = family.output_layout(tmp_path, "<cat>")
    assert set_aside_previous_run(layout, Path("logs")) is None
    assert list(tmp_path.iterdir()) == []
