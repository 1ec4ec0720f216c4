"""The output folder's file formats, each one module with its writer, its reader and its keys:
what one writes the other reads back, and older or damaged files still read."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from invokeai_ti.outputs.layout import OutputLayout
from invokeai_ti.outputs.loss_log import COLUMNS, LossLog, LossRow, read_loss_log
from invokeai_ti.outputs.preview_png import KEYS, Judgement, Preview, read_previews, write_preview


def test_the_loss_log_reads_back_what_it_wrote_and_a_resume_keeps_only_the_rows_before_it(tmp_path):
    path = tmp_path / "loss_log.csv"
    log = LossLog(path, start_step=0)
    for step in (1, 2, 3):
        log.write(LossRow(step, 1 / 2**step, 1e-3, seconds=step * 1.5))
    log.close()
    assert read_loss_log(path) == [LossRow(1, 0.5, 1e-3, 1.5), LossRow(2, 0.25, 1e-3, 3.0),
                                   LossRow(3, 0.125, 1e-3, 4.5)]
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)

    resumed = LossLog(path, start_step=2)
    resumed.write(LossRow(3, 0.0625, 1e-3))
    resumed.close()
    assert [(row.step, row.loss, row.seconds) for row in read_loss_log(path)] == [
        (1, 0.5, 1.5), (2, 0.25, 3.0), (3, 0.0625, None)]


def test_an_older_log_without_a_column_and_a_row_cut_short_still_read(tmp_path):
    path = tmp_path / "loss_log.csv"
    path.write_text("step,loss,learning_rate\n1,0.5,0.001\n2,0.4,0.001\n3,0.3", encoding="utf-8")
    assert read_loss_log(path) == [LossRow(1, 0.5, 0.001), LossRow(2, 0.4, 0.001)]
    assert read_loss_log(tmp_path / "missing.csv") == []


def test_a_preview_png_carries_its_record_and_the_judges_words_only_when_judged(tmp_path):
    layout = OutputLayout(tmp_path, "psychedelic")
    picture = Image.new("RGB", (8, 8), "blue")
    judged = Judgement("the judge sees a blue triangle in 3 of 4 pictures", 0.75, "blue triangle")
    write_preview(layout.sample(0), picture, Preview(0, "a photo of a <psychedelic>", 7, "<psychedelic>", "",
                                                     final=False))
    write_preview(layout.sample(10), picture, Preview(10, "a photo of a <psychedelic>", 7, "<psychedelic>",
                                                      "learned_embeds.safetensors", final=True, judgement=judged))
    first, last = read_previews(layout)
    assert (first.step, first.seed, first.final, first.judgement) == (0, 7, False, None)
    assert (last.step, last.embedding, last.final, last.judgement) == (10, "learned_embeds.safetensors", True, judged)
    assert last.path == layout.sample(10) == tmp_path / "samples" / "step-000010.png"
    with Image.open(last.path) as image:
        assert image.text[KEYS["verdict"]] == judged.verdict
    with Image.open(first.path) as image:
        assert KEYS["verdict"] not in image.text


def test_a_damaged_preview_is_left_out_of_the_list(tmp_path: Path):
    layout = OutputLayout(tmp_path, "psychedelic")
    layout.samples_dir.mkdir()
    layout.sample(4).write_bytes(b"not a png")
    assert read_previews(layout) == []
