"""Hostile folders and damaged files (docs/security.md): nothing is written outside the run's
folders, no other program is started to read a picture, memory follows the training resolution,
and whatever a neighbour plants or a crash leaves ends in one sentence naming the file."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch
import yaml
from PIL import EpsImagePlugin, Image
from safetensors.torch import load_file, save_file

from invokeai_ti.cli import main
from invokeai_ti.data.images import scan_images
from invokeai_ti.data.masks import check_mask
from invokeai_ti.errors import UserError
from invokeai_ti.form.preferences import load_preferences
from invokeai_ti.image_files import MAX_DECODED_PIXELS
from invokeai_ti.models import scan_models
from invokeai_ti.outputs.embeddings import install_embedding
from invokeai_ti.outputs.layout import OutputLayout
from invokeai_ti.paths import RootLayout
from invokeai_ti.settings import TrainingSettings
from invokeai_ti.workflow import check_run

REPO = Path(__file__).resolve().parents[1]
TRIGGER = "psychedelic"


def command(root: Path, *extra: str) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", f"--placeholder_token={TRIGGER}",
        "--resolution=64", "--train_batch_size=1", "--gradient_accumulation_steps=1",
        "--mixed_precision=no", "--seed=3", "--validation_prompt=none", *extra,
    ]


def output_of(root: Path) -> Path:
    return root / "text-inversion-output" / TRIGGER


def one_sentence(text: str) -> str:
    """The error the user saw: one line, no traceback."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert "Traceback" not in text
    return lines[-1]


def dead_pid() -> int:
    """The id of a process that has ended: what a killed run's temporary files are named after."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# 1. Links ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("planted", ["loss_log.csv", "vector_norms.csv", "evaluation.csv", ".training.owner",
                                     ".training.lock", "samples"])
def test_a_link_planted_where_the_trainer_writes_is_refused_and_its_target_untouched(
    planted, make_root, tmp_path, capsys
):
    root = make_root()
    assert main(command(root, "--max_train_steps=2", "--checkpointing_steps=1")) == 0
    victim = tmp_path / "victim"
    (victim / "inside").mkdir(parents=True)
    (victim / "file.txt").write_text("the neighbour's file", encoding="utf-8")
    link = output_of(root) / planted
    if link.is_dir():
        shutil.rmtree(link)
    link.unlink(missing_ok=True)
    link.symlink_to(victim / ("inside" if planted == "samples" else "file.txt"))
    capsys.readouterr()
    resumed = command(root, "--max_train_steps=3", "--checkpointing_steps=1", "--resume_from_checkpoint=latest",
                      "--validation_prompt=a photo of <psychedelic>", "--validation_steps=1")
    assert main(resumed) == 2
    said = one_sentence(capsys.readouterr().err)
    assert str(link) in said and "symbolic link" in said
    assert (victim / "file.txt").read_text(encoding="utf-8") == "the neighbour's file"
    assert list((victim / "inside").iterdir()) == []


# 2. Image formats -------------------------------------------------------------------------------

EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 64 64
%%EndComments
newpath 0 0 moveto 64 64 lineto stroke
showpage
%%EOF
"""


def test_a_postscript_file_named_like_a_photo_or_a_mask_never_reaches_ghostscript(tmp_path, monkeypatch):
    marker = tmp_path / "ghostscript-ran"
    fake = tmp_path / "bin" / "gs"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo 10.0 && exit 0\ntouch {marker}\nexit 1\n',
                    encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    assert EpsImagePlugin.has_ghostscript()
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(EPS)
    Image.new("RGB", (64, 64), "red").save(photos / "cat.png")
    (photos / "cat.mask.png").write_bytes(EPS)

    scan = scan_images(photos)
    assert scan.images == [photos / "cat.png"]
    assert scan.skipped == [(photos / "holiday.jpg", "not a readable image")]
    with pytest.raises(UserError, match="cat.mask.png cannot be read as an image"):
        check_mask(photos / "cat.png", photos / "cat.mask.png")
    assert not marker.exists()


# 3. Decompression bombs and memory ---------------------------------------------------------------

def png_claiming(path: Path, width: int, height: int) -> None:
    """A small grey PNG whose header claims ``width`` x ``height``: one compressed row of data,
    so the file is tiny and only decoding it would cost the size it claims."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    rows = zlib.compress(b"\0" * (width + 1) * 64, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def test_a_mask_claiming_more_pixels_than_the_limit_is_refused_before_it_is_decoded(tmp_path):
    photo = tmp_path / "cat.png"
    Image.new("RGB", (50000 // 1000, 50000 // 1000), "red").save(photo)
    mask = tmp_path / "cat.mask.png"
    png_claiming(mask, 50000, 50000)
    assert 50000 * 50000 > MAX_DECODED_PIXELS and mask.stat().st_size < 400_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UserError, match=r"cat.mask.png is too large to read \(50000x50000 pixels\)"):
        check_mask(photo, mask)
    # Not one row of the 2.5 GB it claims was allocated (ru_maxrss is in KiB on Linux).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 50000 * 64 // 1024


MEMORY_SCRIPT = """
import sys
from pathlib import Path
from invokeai_ti.data.images import load_image, scan_images

def peak_bytes():
    # VmHWM, the peak resident size of this process image (ru_maxrss would carry the parent's
    # peak across fork and exec); writing 5 to clear_refs starts it again from the present size.
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) * 1024 for line in lines if line.startswith("VmHWM:"))

path = Path(sys.argv[1])
Path("/proc/self/clear_refs").write_text("5")
before = peak_bytes()
assert scan_images(path.parent).images == [path]
image = load_image(path, 64, center_crop=True)
print(image.size, peak_bytes() - before)
"""


def test_a_large_photo_is_decoded_with_one_full_size_buffer_and_shrunk_before_any_copy(tmp_path):
    """An 8192x8192 RGBA PNG: the decoder's buffer is the one full-size allocation Pillow cannot
    avoid for a PNG (4 bytes a pixel, 256 MiB). It is shrunk strip by strip, each strip at most
    1/32 of the picture and copied at most three times (cut out, converted, premultiplied by
    reduce), to the picture twice the training side needs (a 64th a side here), and every later
    step works on that. So the peak grows by at most one frame, three strips, the reduced picture
    and the compressed file; one more full-size copy (what converting or turning it at full size
    costs) would add a whole frame."""
    side = 8192
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = folder / "huge.png"
    Image.new("RGBA", (side, side), (200, 30, 30, 255)).save(photo, compress_level=1)
    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(photo)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert done.returncode == 0, done.stderr
    size, grown = done.stdout.split(")")
    assert size.strip("( ") == "64, 64"
    frame = side * side * 4
    bound = frame + 3 * frame // 32 + frame // 64**2 + photo.stat().st_size
    assert int(grown) <= bound, f"decoding grew the peak by {int(grown) / frame:.2f} frames"


# 4. YAML ----------------------------------------------------------------------------------------

def alias_bomb(levels: int = 9) -> str:
    """Nine lines of aliases of aliases: a few hundred bytes that expand to 9**9 values, and with
    merge keys (``<<``) PyYAML copies them while loading."""
    lines = ["l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}"]
    for level in range(1, levels):
        merged = ", ".join(f"*l{level - 1}" for _ in range(9))
        lines.append(f"l{level}: &l{level} {{<<: [{merged}], k{level}: [{merged}]}}")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_in_a_sentence_naming_the_file(tmp_path):
    layout = RootLayout(tmp_path)
    layout.models_yaml.parent.mkdir(parents=True)
    layout.models_yaml.write_text(alias_bomb(), encoding="utf-8")
    layout.preferences.parent.mkdir(parents=True)
    layout.preferences.write_text(alias_bomb(), encoding="utf-8")
    assert len(alias_bomb()) < 1000
    started = time.monotonic()
    notes = scan_models(layout).notes
    values, note = load_preferences(layout)
    assert time.monotonic() - started < 10
    assert len(notes) == 1 and str(layout.models_yaml) in notes[0] and "aliases expand" in notes[0]
    assert values == {} and str(layout.preferences) in note and "aliases expand" in note


# 5. and 6. Triggers -----------------------------------------------------------------------------

@pytest.mark.parametrize("trigger", [".", "..", "<..>", "<.>", ".hidden", "<cat\n>", "cat\tdog", "a" * 240])
def test_a_trigger_must_be_one_safe_folder_name(trigger, make_root):
    root = make_root()
    _plan, problems = check_run(TrainingSettings(root=root, placeholder_token=trigger, max_train_steps=1))
    assert any(problem.field == "placeholder_token" for problem in problems), problems
    assert main(command(root, f"--placeholder_token={trigger}", "--max_train_steps=1")) == 2
    assert not (root / "embeddings").exists()
    assert sorted(p.name for p in (root / "text-inversion-output").glob("*")) == []


def every_file_name(trigger: str) -> list[str]:
    """Every embedding file a run of either family writes for ``trigger``: final and snapshots."""
    layout = OutputLayout(Path(), trigger, encoders=2)
    return [path.name.lower() for step in (None, 1, 2, 500) for path in layout.embeddings(step).all()]


def test_no_trigger_makes_two_output_files_share_a_name(make_root):
    root = make_root()
    fixed_names = {name.removesuffix(".safetensors").removesuffix(".bin")
                   for name in every_file_name("placeholder") if "placeholder" not in name}
    spelt_like_our_files = sorted(fixed_names | {name.upper() for name in fixed_names})
    assert "learned_embeds_2-steps-1" in spelt_like_our_files
    for trigger in spelt_like_our_files:
        _plan, problems = check_run(TrainingSettings(root=root, placeholder_token=trigger, max_train_steps=1))
        assert any(problem.field == "placeholder_token" for problem in problems), trigger
    for trigger in ["psychedelic", "learned", "embeds_2", "steps-1", "learned_embeds-x"]:
        names = every_file_name(trigger)
        assert len(names) == len(set(names)), trigger


# 7. A killed install ----------------------------------------------------------------------------

INSTALL_SCRIPT = """
import sys
from pathlib import Path
from invokeai_ti.outputs.embeddings import install_embedding
install_embedding(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def consumer_files(embeddings: Path) -> list[Path]:
    """What InvokeAI 2.3 loads: every file under <root>/embeddings/, hidden ones too."""
    return sorted(path for path in embeddings.rglob("*") if path.is_file())


def test_an_install_killed_half_way_leaves_nothing_a_consumer_loads_and_the_next_clears_it(tmp_path):
    root = tmp_path / "root"
    output, embeddings = root / "text-inversion-output" / TRIGGER, root / "embeddings"
    output.mkdir(parents=True)
    installed = embeddings / TRIGGER / "learned_embeds.bin"
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b"the embedding installed before")
    with open(output / "learned_embeds.bin", "wb") as big:
        big.truncate(4 << 30)  # sparse: a copy slow enough to be killed half-way
    child = subprocess.Popen([sys.executable, "-c", INSTALL_SCRIPT, str(output), str(installed.parent)],
                             env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    deadline = time.monotonic() + 120
    while not [p for p in root.rglob(".learned_embeds.bin.tmp-*") if p.stat().st_size > 0]:
        assert child.poll() is None and time.monotonic() < deadline, "the copy ended before it could be killed"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert consumer_files(embeddings) == [installed]
    assert installed.read_bytes() == b"the embedding installed before"
    assert [p.name for p in root.glob(f".learned_embeds.bin.tmp-{child.pid}")]

    (output / "learned_embeds.bin").write_bytes(b"the new embedding")
    install_embedding(output, installed.parent)
    assert consumer_files(embeddings) == [installed]
    assert installed.read_bytes() == b"the new embedding"
    assert not list(root.rglob("*.tmp-*"))


def test_a_new_run_clears_what_a_killed_run_left_in_its_output_folder(make_root):
    root = make_root()
    output = output_of(root)
    output.mkdir(parents=True)
    pid = dead_pid()
    left = [output / f".learned_embeds.bin.tmp-{pid}", output / f".report.html.tmp-{pid}"]
    for path in left:
        path.write_bytes(b"half a file")
    (output / ".checkpoint-3.partial").mkdir()
    assert main(command(root, "--max_train_steps=1")) == 0
    assert not [path for path in left if path.exists()]
    assert not (output / ".checkpoint-3.partial").exists()


# 8. A full disk and an unwritable install target ------------------------------------------------

FULL_DISK_SCRIPT = """
import resource, signal, sys
from pathlib import Path
import torch
from invokeai_ti.errors import UserError
from invokeai_ti.outputs.checkpoints import RunShape, list_checkpoints, write_checkpoint
from invokeai_ti.outputs.family_files import StableDiffusionFiles
from invokeai_ti.settings import TrainingSettings

class State:
    def __init__(self, moments):
        self.moments = moments
    def state_dict(self):
        return {"vectors": (torch.ones(1, 8),), "optimizer": {"state": {0: {"exp_avg": self.moments}}},
                "lr_scheduler": {}, "grad_scaler": None}

folder = Path(sys.argv[1])
shape = RunShape.of_run(TrainingSettings(placeholder_token="cat"), model="m", resolution=64, num_vectors=1,
                        token_dims=(8,), num_processes=1)
def write(step, moments):
    return write_checkpoint(folder, step=step, seed=1, shape=shape, total_steps=9, files=StableDiffusionFiles(),
                            state=State(moments), keep=None)
write(1, torch.zeros(10))
# The file size limit makes every write past 64 KiB fail as a full disk does (EFBIG), in C++ too.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
try:
    write(2, torch.zeros(1 << 20))
except UserError as error:
    print(error)
print([step for step, _ in list_checkpoints(folder)], sorted(p.name for p in folder.iterdir()))
"""


def test_a_save_that_fails_like_a_full_disk_is_one_sentence_and_keeps_the_last_checkpoint(tmp_path):
    done = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    said, kept = done.stdout.strip().splitlines()
    assert "checkpoint-2" in said and "could not be written" in said and said.endswith(".")
    assert kept == "[1] ['checkpoint-1']"


def test_an_install_target_that_cannot_be_written_is_refused_before_the_first_step(make_root, capsys):
    root = make_root()
    (root / "embeddings").write_text("a file where the embeddings folder should be", encoding="utf-8")
    _plan, problems = check_run(TrainingSettings(root=root, placeholder_token=TRIGGER, max_train_steps=1))
    assert [problem.field for problem in problems] == ["root"]
    assert main(command(root, "--max_train_steps=1")) == 2
    said = one_sentence(capsys.readouterr().err)
    assert str(root / "embeddings" / TRIGGER) in said and "cannot be written" in said
    assert not output_of(root).exists()


# 9. Damaged files read back ---------------------------------------------------------------------

def damage_state_list(root: Path) -> Path:
    path = output_of(root) / "checkpoint-2" / "trainer_state.json"
    path.write_text("[1, 2, 3]", encoding="utf-8")
    return path


def damage_embedding_key(root: Path) -> Path:
    path = output_of(root) / "checkpoint-2" / "learned_embeds.safetensors"
    save_file({"<someone-else>": load_file(str(path))["<psychedelic>"]}, str(path))
    return path.parent


def damage_embedding_shape(root: Path) -> Path:
    path = output_of(root) / "checkpoint-2" / "learned_embeds.safetensors"
    save_file({"<psychedelic>": torch.zeros(3, 5)}, str(path))
    return path.parent


def damage_text_encoder(root: Path) -> Path:
    path = root / "models" / "diffusers" / "stable-diffusion-1.5" / "text_encoder" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:200])
    return path.parent.parent


def damage_tokenizer(root: Path) -> Path:
    folder = root / "models" / "diffusers" / "stable-diffusion-1.5" / "tokenizer"
    for name in ("tokenizer.json", "vocab.json"):
        (folder / name).write_text("[not, a, vocabulary", encoding="utf-8")
    return folder.parent


DAMAGED = {
    "a trainer state that is a JSON list": damage_state_list,
    "a checkpoint embedding with the wrong key": damage_embedding_key,
    "a checkpoint embedding with the wrong shape": damage_embedding_shape,
    "a damaged text encoder": damage_text_encoder,
    "a damaged tokenizer": damage_tokenizer,
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_file_read_back_is_one_sentence_naming_it_and_nothing_finished_is_lost(
    damage, make_root, capsys
):
    root = make_root()
    assert main(command(root, "--max_train_steps=2", "--checkpointing_steps=1")) == 0
    finished = {path: path.read_bytes() for path in output_of(root).rglob("*") if path.is_file()}
    named = DAMAGED[damage](root)
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=3", "--resume_from_checkpoint=latest")) == 2
    said = one_sentence(capsys.readouterr().err)
    assert str(named) in said and said.endswith(".")
    for path, data in finished.items():
        if path.parent.name != "checkpoint-2":
            assert path.read_bytes() == data, path


def test_logs_and_records_damaged_between_runs_still_resume_and_report(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=2", "--checkpointing_steps=1")) == 0
    output = output_of(root)
    log = output / "loss_log.csv"
    log.write_bytes(log.read_bytes() + b"\xff\xfe not utf-8 \xff\n")
    (output / "vector_norms.csv").write_bytes(b"step,encoder\n\xff\xfe\n")
    (output / "training_settings.json").write_text("[1, 2]", encoding="utf-8")
    assert main(command(root, "--install-step=2")) == 0
    assert "training_settings.json holds a JSON list" in (output / "report.html").read_text(encoding="utf-8")
    assert main(command(root, "--max_train_steps=3", "--resume_from_checkpoint=latest")) == 0
    assert [line.split(",")[0] for line in log.read_text(encoding="utf-8").splitlines()] == ["step", "1", "2", "3"]


def test_a_model_path_that_is_not_a_folder_does_not_hide_the_other_models(make_root, capsys):
    root = make_root()
    config = root / "configs" / "models.yaml"
    entries = yaml.safe_load(config.read_text(encoding="utf-8"))
    entries["not-a-folder"] = {"format": "diffusers", "path": os.devnull}
    config.write_text(yaml.safe_dump(entries), encoding="utf-8")
    assert main([f"--root={root}", "--list-models"]) == 0
    out = capsys.readouterr()
    assert "stable-diffusion-1.5" in out.out and "Traceback" not in out.err
    assert f"{os.devnull} is not a folder" in out.out + out.err


# 10. The hub ------------------------------------------------------------------------------------

def test_a_hub_tokenizer_not_on_disk_is_named_within_seconds_where_the_hub_cannot_be_reached(make_root, tmp_path):
    """Nothing listens on port 9, so every connection is refused at once; huggingface_hub still
    retries each of a tokenizer's four files five times with back-off (1+2+4+8+8 s), over 90 s
    in all. The probe gives up after its one refused request, so the run ends as soon as the
    libraries are imported and the settings checked."""
    root = make_root()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_ENDPOINT": "http://127.0.0.1:9",
           "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    env.pop("HF_HUB_OFFLINE", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "invokeai_ti", *command(root, "--max_train_steps=1"),
         "--tokenizer_name=openai/clip-vit-large-patch14"],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )
    took = time.monotonic() - started
    said = one_sentence(done.stderr)
    assert done.returncode == 2
    assert "openai/clip-vit-large-patch14" in said and "cannot be reached" in said
    assert took < 60, f"{took:.0f} s"


def test_hf_hub_offline_names_the_missing_tokenizer_at_once(make_root, capsys):
    root = make_root()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert main(command(root, "--max_train_steps=1", "--tokenizer_name=openai/clip-vit-large-patch14")) == 2
    said = one_sentence(capsys.readouterr().err)
    assert "openai/clip-vit-large-patch14" in said and "HF_HUB_OFFLINE is set" in said
