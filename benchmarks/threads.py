#!/usr/bin/env python
"""CPU threads on a shared machine: step times with 1, 2 and the trainer's own choice of threads,
alone and beside busy processes, and the demo's wall time alone and beside them.

Each training run is ``benchmarks/bench.py``'s (a fresh process timed by an optimizer-step hook);
only ``OMP_NUM_THREADS`` differs: ``1`` or ``2`` fixes the count, ``auto`` leaves it unset so the
trainer follows the load (``invokeai_ti/cpu_threads.py``). The busy processes are
``python -c 'while True: pass'``, started before each run and stopped after it, with the same
priority as the run. ``--demo`` times ``invokeai-ti --demo`` in a fresh root instead, start to
end, the way a newcomer runs it. See docs/benchmarks.md for the commands and the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import bench  # noqa: E402  (benchmarks/bench.py: one timed training run in a fresh process)

MODELS = {"world": None, "sd15": "sd15"}


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes that keep a core busy each, for as long as the block runs."""
    spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1.0 if count else 0.0)
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait()


@contextmanager
def threads_setting(threads: str) -> Iterator[None]:
    """``OMP_NUM_THREADS`` for the runs started inside: a number, or unset for ``auto``."""
    saved = os.environ.pop("OMP_NUM_THREADS", None)
    if threads != "auto":
        os.environ["OMP_NUM_THREADS"] = threads
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)
        if saved is not None:
            os.environ["OMP_NUM_THREADS"] = saved


def load() -> str:
    return "load " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def training_runs(args: argparse.Namespace) -> None:
    from invokeai_ti.world import WORLD_MODEL

    argv = ["--trainers=ours", f"--resolution={args.resolution}", f"--batch={args.batch}",
            f"--warmup={args.warmup}", f"--steps={args.steps}", "--repeats=1", f"--cache-dir={args.cache_dir}"]
    argv += [f"--model-dir={WORLD_MODEL}"] if args.model == "world" else ["--model=sd15"]
    spec_args = bench.parse_args(argv)
    model, images = bench.prepare_model(spec_args), bench.prepare_images(spec_args)
    base = {
        "model": str(model), "images": str(images), "example": None, "resolution": args.resolution,
        "batch": args.batch, "accumulation": 1, "compile": False, "deterministic": False,
        "total_steps": args.warmup + args.steps, "warmup": args.warmup, "lr": 5e-4, "seed": 1234,
        "gradient_checkpointing": False, "xformers": False, "validation_steps": 0, "validation_images": 1,
        "skip_version_check": False, "precision": "no",
    }
    work = Path(tempfile.mkdtemp(prefix="invokeai-ti-threads-"))
    print(f"Machine: {bench.machine()}")
    print(f"Model {args.model}, {args.resolution} px, batch {args.batch}, {args.warmup} warm-up + "
          f"{args.steps} timed steps per run, each run alone in a fresh process")
    print("| busy processes | threads | median s/step | threads used | load before |")
    print("|---|---|---|---|---|")
    try:
        for repeat in range(args.repeats):
            for busy in args.busy:
                for threads in args.threads:
                    with busy_processes(busy), threads_setting(threads):
                        before = load()
                        run = bench.run_one("ours", dict(base, repeat=repeat), work, None, work)
                    used = "/".join(map(str, sorted(set(run["threads_used"]))))
                    print(f"| {busy} | {threads} | {run['median_step_s']:.3f} | {used} | {before} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def demo_runs(args: argparse.Namespace) -> None:
    """The whole demo, start to end, in a fresh root: its wall time and its CPU time (all threads).

    A run that slows in proportion to the load keeps its CPU time; one whose threads wait for
    each other spends it spinning (the issue's 35-minute demo used 1425 s of CPU).
    """
    command = shutil.which("invokeai-ti") or str(Path(sys.executable).parent / "invokeai-ti")
    print(f"Machine: {bench.machine()}")
    print("| busy processes | threads | demo wall s | demo CPU s | load before |")
    print("|---|---|---|---|---|")
    times: dict[tuple[int, str], list[float]] = {}
    for repeat in range(args.repeats):
        for busy in args.busy:
            for threads in args.threads:
                root = Path(tempfile.mkdtemp(prefix="invokeai-ti-demo-"))
                with busy_processes(busy), threads_setting(threads):
                    before = load()
                    started = time.monotonic()
                    process = subprocess.Popen([command, "--demo", "--root", str(root)],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    _pid, status, usage = os.wait4(process.pid, 0)
                    wall = time.monotonic() - started
                shutil.rmtree(root, ignore_errors=True)
                if os.waitstatus_to_exitcode(status) != 0:
                    raise SystemExit(f"the demo failed beside {busy} busy processes with {threads} threads")
                times.setdefault((busy, threads), []).append(wall)
                print(f"| {busy} | {threads} | {wall:.1f} | {usage.ru_utime + usage.ru_stime:.1f} | {before} |",
                      flush=True)
    alone = statistics.median(times[min(times)])
    for (busy, threads), walls in sorted(times.items()):
        print(f"- {threads} threads beside {busy} busy processes: median {statistics.median(walls):.1f} s, "
              f"{statistics.median(walls) / alone:.2f}x the first row")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="time invokeai-ti --demo instead of training steps")
    parser.add_argument("--model", choices=tuple(MODELS), default="world")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--busy", default="0,2", help="comma list of busy-process counts")
    parser.add_argument("--threads", help="comma list of 1, 2, ... and auto (default: 1,2,auto; with --demo: auto)")
    parser.add_argument("--cache-dir", default=str(bench.DEFAULT_CACHE))
    args = parser.parse_args(argv)
    args.busy = [int(count) for count in args.busy.split(",")]
    args.threads = [value.strip() for value in (args.threads or ("auto" if args.demo else "1,2,auto")).split(",")]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    (demo_runs if args.demo else training_runs)(args)


if __name__ == "__main__":
    main()
