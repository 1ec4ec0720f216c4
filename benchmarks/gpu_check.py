#!/usr/bin/env python
"""The Python parts of benchmarks/gpu_check.sh: what the machine is, what the device probe finds,
the kill-and-resume check, and the one results file.

``gpu_check.sh`` runs each part in its own process under its own time budget and goes on when one
fails; ``collect`` then reads whatever the parts left (their JSON, their exit status, the tests'
JSON lines) into one results file in which every field of ``FIELDS`` is present: a figure, or
``null`` with the part's status saying why. ``benchmarks/gpu_report.py`` turns that file into the
GPU table of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent

# The packages whose versions explain a figure: what the machine had, and what the wheels brought.
PACKAGES = (
    "torch", "torchvision", "triton", "transformers", "accelerate", "diffusers", "huggingface_hub",
    "safetensors", "tokenizers", "numpy", "pillow", "pytest", "pytest-timeout", "pytest-xdist",
    "xformers", "npyscreen", "platformdirs", "importlib_metadata", "pexpect", "ptyprocess",
)
# The carried wheels' top-level modules: each must import after the install.
CARRIED_MODULES = ("diffusers", "npyscreen", "platformdirs", "importlib_metadata", "lazy_importer", "pexpect", "ptyprocess")

BENCH_FIELDS = (
    "trainer", "model", "precision", "resolution", "batch", "accumulation", "gradient_checkpointing",
    "median_step_s", "steps_per_s", "first_step_s", "total_s", "peak_rss_bytes", "cuda_peak_allocated",
    "cuda_peak_reserved", "device",
)
TEST_FIELDS = ("collected", "passed", "failed", "skipped", "errors", "timeouts", "failures", "slowest", "finished")
# Every part of the check and the fields its record always has (``null`` where it brought none).
FIELDS: dict[str, tuple[str, ...]] = {
    "machine": ("gpu", "gpu_memory_bytes", "driver", "cuda", "torch", "python", "cpu", "cores", "ram_gib",
                "packages", "nvidia_smi"),
    "install": ("wheels", "target", "versions", "examples"),
    "probe": ("device", "memory_bytes", "fp16", "bf16", "sdpa_efficient", "sdpa_reason", "xformers",
              "xformers_reason", "backends", "batch_sd1", "batch_sdxl", "reason_sd1", "reason_sdxl"),
    "tests": TEST_FIELDS,
    "learning": TEST_FIELDS,
    "build_sd15": ("model", "images"),
    "build_sdxl": ("model", "images"),
    "resume": ("model", "precision", "resolution", "batch", "steps", "killed_at_step", "resumed_from_step",
               "bit_identical", "max_abs_diff", "straight_s", "resume_s"),
    "sd15_ours": BENCH_FIELDS,
    "sd15_example": BENCH_FIELDS,
    "sdxl_ours_fp16": BENCH_FIELDS,
    "sdxl_example_bf16": BENCH_FIELDS,
    "cat_toy_ours": BENCH_FIELDS,
    "sdxl_ours_bf16": BENCH_FIELDS,
    "sdxl_example_fp16": BENCH_FIELDS,
    "sd15_ours_checkpointing": BENCH_FIELDS,
}
TIMEOUT_CODES = (124, 137)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# The machine and the device
# --------------------------------------------------------------------------------------------


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def nvidia_smi() -> tuple[str | None, str | None]:
    """The plain ``nvidia-smi`` table and the driver version, or None where there is none."""
    try:
        table = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return table, driver[0] if driver else None


def machine(args: argparse.Namespace) -> dict:
    import torch

    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    table, driver = nvidia_smi()
    cuda = torch.cuda.is_available()
    record = {
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_memory_bytes": torch.cuda.get_device_properties(0).total_memory if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
        "driver": driver,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average": os.getloadavg()[0],
        "packages": package_versions(),
        "nvidia_smi": table,
    }
    print(table or "nvidia-smi: not found")
    print(json.dumps({k: v for k, v in record.items() if k != "nvidia_smi"}, indent=2))
    return record


def installed(args: argparse.Namespace) -> dict:
    """Which carried wheels went in, and that each of their modules imports from where."""
    import importlib

    versions = {}
    for module in CARRIED_MODULES:
        imported = importlib.import_module(module)
        versions[module] = {"version": getattr(imported, "__version__", None), "from": str(Path(imported.__file__).parent)}
    versions.update({name: {"version": version} for name, version in package_versions().items() if name not in versions})
    revision = args.examples / "REVISION"
    examples = {
        "scripts": sorted(path.name for path in args.examples.glob("*.py")),
        "diffusers_revision": revision.read_text(encoding="utf-8").strip() if revision.exists() else None,
    }
    print(json.dumps({"versions": versions, "examples": examples}, indent=2))
    return {"wheels": sorted(Path(w).name for w in args.wheels), "target": args.target, "versions": versions,
            "examples": examples}


def probe(args: argparse.Namespace) -> dict:
    """What invokeai_ti.device finds here, and the batch sizes the form and the CLI would default to."""
    import torch

    from invokeai_ti.device import detect
    from invokeai_ti.models import BASE_SDXL

    started = time.monotonic()
    caps = detect()
    took = time.monotonic() - started
    record = {
        "device": caps.name, "kind": caps.kind, "memory_bytes": caps.memory_bytes, "fp16": caps.fp16,
        "bf16": caps.bf16, "sdpa_efficient": caps.sdpa_efficient, "sdpa_reason": caps.sdpa_reason,
        "xformers": caps.xformers, "xformers_reason": caps.xformers_reason, "probe_s": round(took, 2),
        "backends": sdpa_backends(torch),
        "batch_sd1": caps.batch_size_for(None), "batch_sdxl": caps.batch_size_for(BASE_SDXL),
        "reason_sd1": caps.batch_reason(None), "reason_sdxl": caps.batch_reason(BASE_SDXL),
        "default_precision": caps.default_precision,
    }
    print(json.dumps(record, indent=2))
    return record


def sdpa_backends(torch) -> dict[str, str]:
    """Each scaled-dot-product attention kernel forced alone on a small fp16 call: runs, or why not."""
    if not torch.cuda.is_available():
        return {}
    from torch.nn.attention import SDPBackend, sdpa_kernel

    results = {}
    q = torch.randn(2, 8, 256, 64, device="cuda", dtype=torch.float16)
    for name in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            results[name] = f"fails: this torch has no SDPBackend.{name}"
            continue
        try:
            with sdpa_kernel([backend]):
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
            torch.cuda.synchronize()
            results[name] = "runs"
        except Exception as error:  # a missing kernel says so in many ways; each is an answer here
            results[name] = f"fails: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    return results


# --------------------------------------------------------------------------------------------
# SIGKILL in the middle of a --deterministic run, resume, compare with a run left alone
# --------------------------------------------------------------------------------------------


def training_command(args: argparse.Namespace, root: Path, output: Path) -> list[str]:
    return [
        sys.executable, "-m", "invokeai_ti", f"--root={root}", f"--model={args.model}",
        f"--train_data_dir={args.images}", f"--output_dir={output}", "--placeholder_token=gpu-check",
        "--initializer_token=*", f"--resolution={args.resolution}", f"--train_batch_size={args.batch}",
        "--gradient_accumulation_steps=1", f"--max_train_steps={args.steps}",
        f"--checkpointing_steps={args.checkpoint_every}", f"--save_steps={args.steps}",
        f"--mixed_precision={args.precision}", "--seed=3", "--learning_rate=0.005", "--no-scale_lr",
        "--lr_scheduler=constant", "--validation_prompt=none", "--deterministic", "--no-compile",
    ]


def logged_steps(output: Path) -> int:
    log = output / "loss_log.csv"
    return max(0, len(log.read_text(encoding="utf-8").splitlines()) - 1) if log.exists() else 0


def embedding(output: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(output / "learned_embeds.safetensors"))


def resume(args: argparse.Namespace) -> dict:
    """Two runs at once, one killed with SIGKILL between two checkpoints and then resumed.

    The runs share nothing but the model and the photos (each has its own root and output folder),
    so running them side by side on one GPU changes no result under ``--deterministic``.
    """
    import shutil

    import torch

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    outputs = {name: work / name / "output" for name in ("straight", "killed")}
    logs = {}
    processes = {}
    started = time.monotonic()
    for name, output in outputs.items():
        (work / name / "root").mkdir(parents=True)
        logs[name] = open(work / name / "train.log", "w", encoding="utf-8")
        processes[name] = subprocess.Popen(
            training_command(args, work / name / "root", output), stdout=logs[name], stderr=subprocess.STDOUT
        )
    killed = processes["killed"]
    while logged_steps(outputs["killed"]) < args.kill_after and killed.poll() is None:
        time.sleep(0.02)
    if killed.poll() is not None:
        raise SystemExit(f"the run to kill ended (exit {killed.returncode}) before step {args.kill_after}; "
                         f"see {work / 'killed' / 'train.log'}")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed_at = logged_steps(outputs["killed"])
    if processes["straight"].wait() != 0:
        raise SystemExit(f"the uninterrupted run failed; see {work / 'straight' / 'train.log'}")
    straight_s = time.monotonic() - started
    if killed_at >= args.steps:
        raise SystemExit(f"the run finished all {args.steps} steps before SIGKILL reached it; give it more --steps")
    started = time.monotonic()
    result = subprocess.run(
        training_command(args, work / "killed" / "root", outputs["killed"]) + ["--resume_from_checkpoint=latest"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    resume_s = time.monotonic() - started
    (work / "killed" / "resume.log").write_text(result.stdout, encoding="utf-8")
    if result.returncode != 0:
        raise SystemExit(f"the resumed run failed (exit {result.returncode}):\n{result.stdout[-3000:]}")
    for log in logs.values():
        log.close()
    straight, resumed = embedding(outputs["straight"]), embedding(outputs["killed"])
    identical = straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    difference = max(float((straight[k].float() - resumed[k].float()).abs().max()) for k in straight if k in resumed)
    message = re.search(r"Resuming from checkpoint-(\d+)", result.stdout)
    record = {
        "model": str(args.model), "precision": args.precision, "resolution": args.resolution, "batch": args.batch,
        "steps": args.steps, "killed_at_step": killed_at, "killed_exit": killed.returncode,
        "resumed_from_step": int(message.group(1)) if message else None,
        "bit_identical": identical, "max_abs_diff": difference,
        "straight_s": round(straight_s, 1), "resume_s": round(resume_s, 1),
    }
    print(json.dumps(record, indent=2))
    return record


# --------------------------------------------------------------------------------------------
# One results file from whatever the parts left
# --------------------------------------------------------------------------------------------


def bench_record(data: dict) -> dict:
    (run,) = data["runs"]
    argv = data["argv"]

    def flag(name: str, default=None):
        prefix = f"--{name}="
        for i, arg in enumerate(argv):
            if arg.startswith(prefix):
                return arg[len(prefix):]
            if arg == f"--{name}" and i + 1 < len(argv):
                return argv[i + 1]
        return default

    return {
        "trainer": run["trainer"], "model": flag("model") or flag("model-dir"), "precision": run["precision"],
        "resolution": int(flag("resolution", 256)), "batch": int(flag("batch", 1)),
        "accumulation": int(flag("accumulation", 1)), "gradient_checkpointing": "--gradient-checkpointing" in argv,
        "median_step_s": run["median_step_s"], "steps_per_s": 1 / run["median_step_s"],
        "first_step_s": run["first_step_s"], "total_s": run["total_s"], "step_s": run["step_s"],
        "peak_rss_bytes": run["peak_rss_bytes"], "cuda_peak_allocated": run["cuda_peak_allocated"],
        "cuda_peak_reserved": run["cuda_peak_reserved"], "device": run["device"], "machine": data["machine"],
    }


def test_record(lines: list[dict]) -> dict:
    tests = [line for line in lines if line.get("event") == "test"]
    counts = [line["count"] for line in lines if line.get("event") == "collected"]

    def having(outcome: str, *, timeout: bool | None = None, when: tuple[str, ...] = ("call",)) -> list[dict]:
        return [t for t in tests if t["outcome"] == outcome and t["when"] in when
                and (timeout is None or bool(t.get("timeout")) == timeout)]

    failed = having("failed", timeout=False)
    timeouts = having("failed", timeout=True, when=("setup", "call", "teardown"))
    errors = having("failed", timeout=False, when=("setup", "teardown")) + having("error", when=("collect",))
    return {
        "collected": max(counts) if counts else None,
        "passed": len(having("passed")),
        "failed": len(failed),
        "skipped": len(having("skipped", when=("setup", "call"))),
        "errors": len(errors),
        "timeouts": len(timeouts),
        "failures": [{"nodeid": t["nodeid"], "when": t["when"], "timeout": bool(t.get("timeout")),
                      "text": t["longrepr"]} for t in failed + timeouts + errors],
        "slowest": sorted(({"nodeid": t["nodeid"], "duration": t["duration"]} for t in tests),
                          key=lambda t: -t["duration"])[:10],
    }


def part_record(name: str, parts: Path) -> dict:
    status_path = parts / f"{name}.status.json"
    record: dict = dict.fromkeys(FIELDS[name])
    if not status_path.exists():
        return {"status": "not run", "reason": "the check ended before this part", **record}
    status = json.loads(status_path.read_text(encoding="utf-8"))
    record.update(status)
    log = parts / f"{name}.log"
    record["log_tail"] = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""
    if status.get("skipped"):
        record["status"] = "skipped"
        return record
    data_path = parts / f"{name}.json"
    lines_path = parts / f"{name}.jsonl"
    try:
        if lines_path.exists() or name in ("tests", "learning"):
            text = lines_path.read_text(encoding="utf-8") if lines_path.exists() else ""
            record.update(test_record([json.loads(line) for line in text.splitlines() if line.strip()]))
            # pytest: 0 all passed, 1 some failed, 5 nothing collected (--collect-only collects and exits 0)
            record["finished"] = status["rc"] in (0, 1, 5)
        elif data_path.exists():
            data = json.loads(data_path.read_text(encoding="utf-8"))
            record.update(bench_record(data) if "runs" in data else data)
    except (ValueError, KeyError, TypeError) as error:
        record["status"] = "failed"
        record["reason"] = f"its results could not be read: {type(error).__name__}: {error}"
        return record
    rc = status["rc"]
    if rc in TIMEOUT_CODES:
        record["status"] = "timeout"
        record["reason"] = f"stopped at its budget of {status['budget_s']} s"
    elif rc == 0 and (data_path.exists() or lines_path.exists() or name in ("tests", "learning")):
        record["status"] = "ok"
    elif name in ("tests", "learning"):
        record["status"] = "failed"
        record["reason"] = "some tests failed" if rc == 1 else f"pytest ended with exit {rc}"
    else:
        record["status"] = "failed"
        record["reason"] = f"exit {rc}" + ("" if data_path.exists() else ", no results written")
    return record


def collect(args: argparse.Namespace) -> dict:
    parts = Path(args.parts)
    results = {
        "schema": 1,
        "mode": args.mode,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(args.started)),
        "wall_s": round(time.time() - args.started, 1),
        "budget_s": args.budget,
        "parts": {name: part_record(name, parts) for name in FIELDS},
    }
    missing = [f"{name}.{field}" for name, part in results["parts"].items() for field in FIELDS[name] if field not in part]
    if missing:
        raise SystemExit(f"fields left out of the results: {missing}")
    write_json(Path(args.out), results)
    for name, part in results["parts"].items():
        reason = f" ({part['reason']})" if part.get("reason") else ""
        print(f"{name:26s} {part['status']:8s} {part.get('elapsed_s') or 0:6.1f} s{reason}")
    print(f"Results: {args.out} ({results['wall_s']} s)")
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("machine", "probe"):
        command = commands.add_parser(name)
        command.add_argument("--json", type=Path, required=True)
    command = commands.add_parser("installed")
    command.add_argument("--json", type=Path, required=True)
    command.add_argument("--target")
    command.add_argument("--examples", type=Path, required=True)
    command.add_argument("wheels", nargs="*")
    command = commands.add_parser("resume")
    command.add_argument("--json", type=Path, required=True)
    command.add_argument("--model", required=True)
    command.add_argument("--images", required=True)
    command.add_argument("--work", required=True)
    command.add_argument("--resolution", type=int, required=True)
    command.add_argument("--batch", type=int, required=True)
    command.add_argument("--precision", required=True)
    command.add_argument("--steps", type=int, required=True)
    command.add_argument("--checkpoint-every", type=int, required=True)
    command.add_argument("--kill-after", type=int, required=True)
    command = commands.add_parser("collect")
    command.add_argument("--parts", required=True)
    command.add_argument("--out", required=True)
    command.add_argument("--mode", required=True)
    command.add_argument("--budget", type=int, required=True)
    command.add_argument("--started", type=float, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "collect":
        collect(args)
        return 0
    record = {"machine": machine, "installed": installed, "probe": probe, "resume": resume}[args.command](args)
    write_json(args.json, record)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
