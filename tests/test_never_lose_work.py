"""Training can be killed, interrupted, starved of disk or fed a NaN and still never loses work."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from invokeai_ti.cli import main
from invokeai_ti.errors import UserError
from invokeai_ti.outputs import checkpoints
from invokeai_ti.outputs.layout import CHECKPOINT_STATE, OWNER_NAME
from invokeai_ti.outputs.lock import OutputLock

REPO = Path(__file__).resolve().parents[1]
# Bit-identical resumes are promised on a CPU always and on CUDA with --deterministic.
EXACT = ("--deterministic",) if torch.cuda.is_available() else ()
# Runs that are killed part-way are given far more steps than a fast GPU finishes meanwhile.
KILLED_RUN_STEPS = "--max_train_steps=100000"


def command(root: Path, *extra: str) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", "--placeholder_token=psychedelic",
        "--resolution=64", "--train_batch_size=1", "--gradient_accumulation_steps=1",
        "--mixed_precision=no", "--seed=21", "--learning_rate=0.002", *EXACT, *extra,
    ]


def output_of(root: Path) -> Path:
    return root / "text-inversion-output" / "psychedelic"


def final_vectors(root: Path) -> torch.Tensor:
    return load_file(str(output_of(root) / "learned_embeds.safetensors"))["<psychedelic>"]


def start(root: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "invokeai_ti", *command(root, *extra)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def wait_for_steps(root: Path, steps: int, process: subprocess.Popen, timeout: float = 120) -> None:
    log = output_of(root) / "loss_log.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) > steps:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    pytest.fail("training never reached the step to interrupt at")


def straight_run(root: Path, steps: int) -> torch.Tensor:
    other = root.parent / "straight"
    other.mkdir()
    assert main(command(root, f"--max_train_steps={steps}", f"--output_dir={other}")) == 0
    return load_file(str(other / "learned_embeds.safetensors"))["<psychedelic>"]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_prints_the_resume_command_and_resume_is_exact(make_root, capsys):
    root = make_root()
    process = start(root, KILLED_RUN_STEPS, "--checkpointing_steps=1000")
    wait_for_steps(root, 3, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "--resume_from_checkpoint latest" in err and "Traceback" not in err
    saved = checkpoints.list_checkpoints(output_of(root))
    assert len(saved) == 1
    stopped_at = saved[0][0]
    assert (output_of(root) / "learned_embeds.safetensors").exists()
    assert not (output_of(root) / OWNER_NAME).exists()

    total = stopped_at + 3
    assert main(command(root, f"--max_train_steps={total}", "--resume_from_checkpoint=latest")) == 0
    assert f"Resuming from checkpoint-{stopped_at}" in capsys.readouterr().out
    assert torch.equal(final_vectors(root), straight_run(root, total))


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_ends_bit_identical(make_root, capsys):
    """Randomness comes from seed and sample number, so a resumed run replays the same samples."""
    root = make_root()
    process = start(root, KILLED_RUN_STEPS, "--checkpointing_steps=2")
    wait_for_steps(root, 5, process)
    process.kill()
    process.communicate()
    assert (output_of(root) / OWNER_NAME).exists(), "a killed run leaves its owner note behind"
    newest = checkpoints.list_checkpoints(output_of(root))[-1][0]

    total = newest + 3
    assert main(command(root, f"--max_train_steps={total}", "--resume_from_checkpoint=latest")) == 0
    out = capsys.readouterr().out
    assert "Cleared a lock left by process" in out
    assert torch.equal(final_vectors(root), straight_run(root, total))


def test_a_second_training_into_the_same_output_folder_is_refused(make_root, capsys):
    root = make_root()
    holder = OutputLock(output_of(root))
    holder.acquire()
    try:
        assert main(command(root, "--max_train_steps=2")) == 2
        err = capsys.readouterr().err
        assert "Another training" in err and f"process {os.getpid()}" in err
        assert holder.held and (output_of(root) / OWNER_NAME).exists()
    finally:
        holder.release()


def test_two_runs_clearing_the_same_stale_lock_never_both_hold_it(tmp_path):
    """The old PID file let two runs both clear a stale lock and both write; a kernel lock cannot."""
    import threading

    (tmp_path / OWNER_NAME).write_text('{"pid": 999999999, "host": "gone"}')
    locks = [OutputLock(tmp_path) for _ in range(6)]
    start = threading.Barrier(len(locks))
    won: list[OutputLock] = []

    def contend(lock: OutputLock) -> None:
        start.wait()
        try:
            lock.acquire()
            won.append(lock)
        except UserError:
            pass

    threads = [threading.Thread(target=contend, args=(lock,)) for lock in locks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    won[0].release()
    assert list(tmp_path.iterdir()) == [], "a released lock leaves no file behind"
    again = OutputLock(tmp_path)
    assert again.acquire() is None, "a cleanly released lock leaves no note"
    with pytest.raises(UserError, match="Another training"):
        OutputLock(tmp_path).acquire()
    again.release()


def test_nan_loss_stops_at_once_and_keeps_the_last_good_embedding(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=2")) == 0
    installed = root / "embeddings" / "psychedelic" / "learned_embeds.bin"
    good = installed.read_bytes()
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=6", "--learning_rate=1e30", "--no-scale_lr")) == 2
    err = capsys.readouterr().err
    assert "NaN or infinite" in err and "learning rate" in err and "Traceback" not in err
    assert installed.read_bytes() == good
    earlier = load_file(str(output_of(root) / "previous-run" / "learned_embeds.safetensors"))["<psychedelic>"]
    assert torch.isfinite(earlier).all(), "the earlier run's embedding is kept, moved aside for the new run"
    for saved in output_of(root).glob("*.safetensors"):
        assert torch.isfinite(load_file(str(saved))["<psychedelic>"]).all(), f"{saved.name} holds NaN"


def test_too_little_disk_is_refused_before_training(make_root, capsys, monkeypatch):
    root = make_root()
    real = __import__("shutil").disk_usage

    def tiny_disk(path):
        return real(path)._replace(free=1024)

    monkeypatch.setattr("invokeai_ti.training.bookkeeping.shutil.disk_usage", tiny_disk)
    assert main(command(root, "--max_train_steps=2")) == 2
    assert "MiB free but this run needs about" in capsys.readouterr().err


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(make_root, capsys, monkeypatch):
    root = make_root()
    real_save = torch.save
    calls = {"n": 0}

    def save_until_full(obj, path, *args, **kwargs):
        if "optimizer" in str(path):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoints.torch, "save", save_until_full)
    assert main(command(root, "--max_train_steps=5", "--checkpointing_steps=1")) == 2
    assert "is full" in capsys.readouterr().err
    saved = checkpoints.list_checkpoints(output_of(root))
    assert [step for step, _ in saved] == [1]
    assert not list(output_of(root).glob(".checkpoint-*"))
    assert checkpoints.read_checkpoint(saved[0][1]).step == 1


def test_resuming_with_another_batch_size_says_what_differs(make_root, capsys):
    root = make_root()
    assert main(command(root, "--max_train_steps=3", "--checkpointing_steps=1")) == 0
    capsys.readouterr()
    argv = [a for a in command(root) if not a.startswith("--train_batch_size")]
    assert main(argv + ["--train_batch_size=2", "--max_train_steps=5", "--resume_from_checkpoint=latest"]) == 2
    err = capsys.readouterr().err
    assert "batch size 1 (checkpoint) vs 2 (now)" in err


def test_checkpoints_from_before_sdxl_with_one_token_width_still_resume(make_root, capsys):
    """They recorded ``token_dim``; now a shape holds one width per text encoder."""
    import json

    root = make_root()
    assert main(command(root, "--max_train_steps=2", "--checkpointing_steps=1")) == 0
    state_file = output_of(root) / "checkpoint-1" / CHECKPOINT_STATE
    state = json.loads(state_file.read_text())
    assert state["shape"].pop("token_dims") == [32]
    state_file.write_text(json.dumps(state | {"shape": state["shape"] | {"token_dim": 1024}}))
    capsys.readouterr()
    resume = ["--max_train_steps=3", "--resume_from_checkpoint=checkpoint-1"]
    assert main(command(root, *resume)) == 2
    assert "token widths 1024 (checkpoint) vs 32 (now)" in capsys.readouterr().err
    state_file.write_text(json.dumps(state | {"shape": state["shape"] | {"token_dim": 32}}))
    assert main(command(root, *resume)) == 0
    assert "Resuming from checkpoint-1 (step 1 of 3)" in capsys.readouterr().out


def test_retraining_replaces_the_installed_embedding_and_keeps_a_backup_in_the_output_folder(make_root):
    root = make_root()
    installed = root / "embeddings" / "psychedelic" / "learned_embeds.bin"
    assert main(command(root, "--max_train_steps=1")) == 0
    first = torch.load(installed, weights_only=True)["<psychedelic>"]
    assert main(command(root, "--max_train_steps=3")) == 0
    backup = torch.load(output_of(root) / "learned_embeds.bin.previous", weights_only=True)["<psychedelic>"]
    assert torch.equal(backup, first)
    assert not torch.equal(torch.load(installed, weights_only=True)["<psychedelic>"], first)


def test_a_checkpoint_carrying_code_is_refused_without_running_it(make_root, tmp_path, capsys):
    """A checkpoint folder can be named on the command line, so it may come from anyone."""
    root = make_root()
    assert main(command(root, "--max_train_steps=2", "--checkpointing_steps=1")) == 0
    marker = tmp_path / "code-ran"
    checkpoint = output_of(root) / "checkpoint-1"
    torch.save({"last_epoch": RunsCode(marker)}, checkpoint / "scheduler.pt")
    capsys.readouterr()
    assert main(command(root, "--max_train_steps=4", f"--resume_from_checkpoint={checkpoint}")) == 2
    err = capsys.readouterr().err
    assert "scheduler.pt is damaged or holds more than saved training state" in err and "Traceback" not in err
    assert not marker.exists()


class RunsCode:
    """Unpickling this creates ``marker``: what a booby-trapped file could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_formats(folder: Path, vectors: torch.Tensor) -> dict[str, Path]:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "diffusers": folder / "diffusers.bin",
        "a1111": folder / "a1111.pt",
        "kohya": folder / "kohya.safetensors",
    }
    torch.save({"<old>": vectors}, paths["diffusers"])
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": "old", "step": 9}, paths["a1111"])
    save_file({"emb_params": vectors}, str(paths["kohya"]))
    return paths


@pytest.mark.parametrize("kind", ["diffusers", "a1111", "kohya"])
def test_training_continues_from_an_existing_embedding_in_any_format(make_root, tmp_path, kind):
    root = make_root()
    start_vectors = torch.randn(2, 32)
    path = write_formats(tmp_path / "embeddings", start_vectors)[kind]
    assert main(command(root, "--max_train_steps=1", f"--initial_embedding={path}", "--learning_rate=1e-9")) == 0
    trained = final_vectors(root)
    assert trained.shape == (2, 32)
    assert torch.allclose(trained, start_vectors, atol=1e-4)


def test_an_embedding_of_another_token_width_is_refused_in_invokeais_words(make_root, tmp_path, capsys):
    root = make_root()
    path = write_formats(tmp_path / "embeddings", torch.randn(1, 1024))["diffusers"]
    assert main(command(root, "--max_train_steps=1", f"--initial_embedding={path}")) == 2
    assert (
        "It was trained on a model with token dimension 1024, but the current model has token dimension 32"
        in capsys.readouterr().err
    )


def test_full_pipeline_export_knows_the_trigger(make_root):
    from diffusers import StableDiffusionPipeline

    root = make_root()
    assert main(command(root, "--max_train_steps=1", "--no-only_save_embeds")) == 0
    pipe = StableDiffusionPipeline.from_pretrained(str(output_of(root) / "pipeline"))
    token_id = pipe.tokenizer.convert_tokens_to_ids("<psychedelic>")
    assert torch.allclose(pipe.text_encoder.get_input_embeddings().weight[token_id], final_vectors(root)[0])


def test_full_pipeline_export_names_text_encoder_weights_as_released_checkpoints_do(make_root):
    """InvokeAI 6.14 pins transformers 5.5, which finds no weight in a file whose keys lack the
    ``text_model.`` prefix (as newer transformers save them) and leaves the encoder random."""
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    root = make_root()
    assert main(command(root, "--max_train_steps=1", "--no-only_save_embeds")) == 0
    folder = output_of(root) / "pipeline" / "text_encoder"
    saved = load_file(str(folder / "model.safetensors"))
    assert saved and all(name.startswith("text_model.") for name in saved)
    encoder, info = CLIPTextModel.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], "this transformers reads them too"
    assert len(saved) == len(encoder.state_dict())
    assert [p.name for p in folder.iterdir() if "safetensors" in p.name] == ["model.safetensors"]
