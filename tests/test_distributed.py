"""`accelerate launch --multi_gpu --num_processes 2 $(which invokeai-ti)` trains ONE embedding.

Here the two processes run on the CPU over gloo, which is how CI exercises the distributed path.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port free a moment ago: another process may take it before the launched one binds it,
    so ``launch_two`` tries again on a clash."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT_TAKEN = ("EADDRINUSE", "Address already in use", "address already in use")
LAUNCH_TRIES = 3


def invokeai_ti_command() -> str:
    found = Path(sys.executable).parent / "invokeai-ti"
    return str(found) if found.exists() else shutil.which("invokeai-ti")


# The CPU over gloo, even on a machine with a GPU: with one GPU, two --multi_gpu processes would
# both pick NCCL on the same device.
CPU_ONLY_ENV = {"CUDA_VISIBLE_DEVICES": ""}


def launch_two(root: Path, *flags: str) -> subprocess.CompletedProcess:
    """Two processes through ``accelerate launch``, on a port found free; a port another process
    took between finding and binding it fails before any training, and is tried again."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **CPU_ONLY_ENV}
    for _ in range(LAUNCH_TRIES):
        done = subprocess.run(
            [
                sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(free_port()), invokeai_ti_command(), *flags,
            ],
            capture_output=True, text=True, env=env, timeout=300,
        )
        if done.returncode == 0 or not any(text in done.stderr for text in PORT_TAKEN):
            return done
    return done


def run_one(*flags: str) -> subprocess.CompletedProcess:
    """One process on the CPU, as the two-process runs are, so the two can be compared."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **CPU_ONLY_ENV}
    return subprocess.run(
        [sys.executable, "-m", "invokeai_ti", *flags], capture_output=True, text=True, env=env, timeout=300
    )


def flags(root: Path, output: Path, batch: int, *extra: str) -> list[str]:
    return [
        f"--root={root}", "--model=stable-diffusion-1.5", "--placeholder_token=psychedelic",
        f"--train_data_dir={root / 'text-inversion-training-data' / 'psychedelic'}",
        f"--output_dir={output}", "--resolution=64", f"--train_batch_size={batch}",
        "--gradient_accumulation_steps=2", "--mixed_precision=no", "--seed=5", *extra,
    ]


@pytest.fixture
def root(make_root) -> Path:
    if invokeai_ti_command() is None:
        pytest.skip("the invokeai-ti console script is not installed")
    return make_root(images=4)


def test_two_processes_at_batch_b_match_one_process_at_batch_2b(root, tmp_path):
    """Same samples, same averaged gradient: only the order of float additions differs.

    One process averages the loss over 2B samples; two processes each average B and the
    all-reduce averages the two means. Both equal the same sum divided by 2B, computed in a
    different order, so the vectors agree to float32 rounding (about 1e-8 here), far below any
    change a training step makes (about 1e-3).
    """
    two = launch_two(root, *flags(root, tmp_path / "two", 1, "--max_train_steps=4", "--validation_steps=2",
                                  "--num_validation_images=1"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("The embedding is installed at") == 1, "only the main process installs and reports"
    assert two.stdout.count("Preview of step 2:") == 1, "only the main process renders previews"
    assert sorted(p.name for p in (tmp_path / "two" / "samples").iterdir()) == [
        "step-000000.png", "step-000002.png", "step-000004.png"]
    one = run_one(*flags(root, tmp_path / "one", 2, "--max_train_steps=4"))
    assert one.returncode == 0, one.stderr[-3000:]

    one_vectors = load_file(str(tmp_path / "one" / "learned_embeds.safetensors"))["<psychedelic>"]
    two_vectors = load_file(str(tmp_path / "two" / "learned_embeds.safetensors"))["<psychedelic>"]
    assert torch.allclose(one_vectors, two_vectors, atol=1e-6, rtol=0)
    # The logged losses are the same mean summed in another order: equal to float32 rounding,
    # which can straddle the sixth decimal the log prints, so they are compared as numbers.
    first_rows = [
        (tmp_path / run / "loss_log.csv").read_text().splitlines()[1].split(",")[:3] for run in ("one", "two")
    ]
    assert first_rows[0][0] == first_rows[1][0] and first_rows[0][2] == first_rows[1][2]
    assert float(first_rows[0][1]) == pytest.approx(float(first_rows[1][1]), abs=2e-6)
    assert two_vectors.shape == (1, 32)


def test_distributed_checkpoints_resume_with_the_same_number_of_processes(root, tmp_path):
    output = tmp_path / "out"
    first = launch_two(root, *flags(root, output, 1, "--max_train_steps=2", "--checkpointing_steps=1"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]

    resumed = launch_two(root, *flags(root, output, 1, "--max_train_steps=3", "--resume_from_checkpoint=latest"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("Resuming from checkpoint-2") == 1

    single = run_one(*flags(root, output, 1, "--max_train_steps=3", "--resume_from_checkpoint=latest"))
    assert single.returncode == 2, "one process cannot continue a two-process run exactly"
    assert "number of processes 2 (checkpoint) vs 1 (now)" in single.stderr


# Rank 0 binds the store on a port the system picks and prints it; rank 1 is started with it, so
# no other process can take the port in between. Starting and meeting may take long on a busy
# machine; only the training group's collectives have the short timeout under test, and rank 0's
# slow preview lasts three times that timeout counted from when rank 1 is known to be waiting.
GATE_SCRIPT = """
import datetime, sys, time
import torch
import torch.distributed as dist
from invokeai_ti.training.waiting import MainProcessWait

rank, gate = int(sys.argv[1]), sys.argv[2] == "gate"
timeout, starting = 2, datetime.timedelta(seconds=120)
port = 0 if rank == 0 else int(sys.argv[3])
store = dist.TCPStore("127.0.0.1", port, 2, is_master=rank == 0, timeout=starting, wait_for_workers=False)
if rank == 0:
    print("port", store.port, flush=True)
dist.init_process_group("gloo", store=store, rank=rank, world_size=2, timeout=starting)
training = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout))
wait = MainProcessWait(2)
if rank == 0:
    store.wait(["waiting"])
    time.sleep(3 * timeout)  # a preview that takes longer than the collectives' timeout
    wait.done()
else:
    store.set("waiting", "yes")
    if gate:
        wait.wait()
total = torch.ones(1)
dist.all_reduce(total, group=training)
print("sum", total.item(), flush=True)
# Without it, the process that did not host the store can abort at exit once rank 0 is gone.
dist.destroy_process_group()
"""


@pytest.mark.parametrize("gate", [True, False])
def test_other_processes_wait_for_a_slow_preview_outside_any_collective(tmp_path, gate):
    """Waiting in the next step's all-reduce instead would hit its timeout (the control case)."""
    script = tmp_path / "gate.py"
    script.write_text(GATE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    mode = "gate" if gate else "no-gate"
    first = subprocess.Popen([sys.executable, str(script), "0", mode], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    announced = first.stdout.readline()
    assert announced.startswith("port "), first.communicate()
    second = subprocess.Popen([sys.executable, str(script), "1", mode, announced.split()[1]], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = [(rank.wait(timeout=120), rank.communicate()) for rank in (first, second)]
    if gate:
        assert [code for code, _ in results] == [0, 0], results[1][1][1][-2000:]
        assert all("sum 2.0" in out for _, (out, _err) in results)
    else:
        assert "Timed out" in results[1][1][1]


def test_two_processes_score_the_evaluation_batch_as_one_and_stop_at_the_same_settled_step(root, tmp_path):
    """Each process scores its share of the fixed batch and the sums are added, so both hold the
    score one process computes (to float32 rounding) and stop together without talking."""
    settling = ("--learning_rate=0.05", "--no-scale_lr", "--validation_steps=5", "--max_train_steps=60",
                "--validation_prompt=none", "--stop_when_settled")
    two = launch_two(root, *flags(root, tmp_path / "two", 1, *settling))
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_one(*flags(root, tmp_path / "one", 2, *settling))
    assert one.returncode == 0, one.stderr[-3000:]
    scores = [[line.split(",") for line in (tmp_path / run / "evaluation.csv").read_text().splitlines()[1:]]
              for run in ("one", "two")]
    assert [step for step, _ in scores[0]] == [step for step, _ in scores[1]]
    assert int(scores[0][-1][0]) < 60, "the run settled and stopped before its last step"
    assert all(float(a) == pytest.approx(float(b), abs=2e-6) for (_, a), (_, b) in zip(*scores))
    assert two.stdout.count("stopping here") == 1
    one_vectors = load_file(str(tmp_path / "one" / "learned_embeds.safetensors"))["<psychedelic>"]
    two_vectors = load_file(str(tmp_path / "two" / "learned_embeds.safetensors"))["<psychedelic>"]
    assert torch.allclose(one_vectors, two_vectors, atol=1e-6, rtol=0)
