#!/usr/bin/env python
"""Side-by-side benchmark: invokeai-ti's trainer against the diffusers Textual Inversion example.

One invocation trains the same model on the same images with the same settings, once per trainer
and repeat, each run in its own fresh Python process, and reports for each trainer:

* the median seconds per optimizer step over the timed steps (after ``--warmup`` steps),
* the time from starting the process to the end of the first optimizer step,
* the peak resident memory of the process (and peak CUDA memory on a GPU),
* the ratios between the two, and after how many steps our up-front latent caching pays back.

Step times come from a global ``torch.optim`` step hook installed in the child process, so both
trainers are timed the same way without touching their code. Peak memory is the ``ru_maxrss`` of
the finished child, read with ``os.wait4``.

The diffusers examples (``examples/textual_inversion/textual_inversion.py`` for SD-1/SD-2,
``textual_inversion_sdxl.py`` for SDXL) are not part of this project: pass the one for the model
with ``--example``. They import ``torchvision`` for a few transforms (a flip; the SDXL one also
its crops); this script writes a tiny stand-in ``torchvision.transforms`` (a namespace package,
so libraries probing for a real torchvision still see none) to a temporary folder that only the
example's process puts on ``sys.path``, after importing the libraries (which probe for
torchvision) and just before running the example.

Models: ``--model sd15`` builds (once, into ``--cache-dir``) a pipeline with Stable Diffusion 1.5's
exact architecture and random weights (860M UNet, 84M VAE, 123M CLIP ViT-L/14 text encoder, 49408
token vocabulary), so no download is needed; ``--model sdxl`` one with SDXL base 1.0's (2.6B
UNet, CLIP ViT-L and OpenCLIP ViT-bigG text encoders, the same VAE architecture with SDXL's
scaling); ``--model tiny`` and ``--model tiny-sdxl`` use the tests' tiny pipelines. Every one is
built by ``tools/pipelines.py``, the builders the tests use;
``--model-dir`` uses any diffusers SD or SDXL folder. See docs/benchmarks.md for the commands and
results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))  # tools/ is not installed: it is read from the checkout
sys.path.insert(1, str(HERE.parent))  # phases.py beside it, however this script was loaded

from tools.pipelines import (  # noqa: E402
    build_sd15_random,
    build_sdxl_random,
    build_tiny_pipeline,
    build_tiny_sdxl_pipeline,
)

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "invokeai-ti-bench"
TRAINERS = ("ours", "example")
PLACEHOLDER = "<bench-toy>"
INITIALIZER = "*"

# Everything the examples take from torchvision, supplied here (the CPU here has no torchvision).
TORCHVISION_SHIM = '''"""Stand-in for torchvision.transforms written by invokeai-ti's benchmarks/bench.py."""
import types

import torch
from PIL import Image


class RandomHorizontalFlip:
    """torchvision's transform for PIL images: flip with probability p, same RNG draw."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        if torch.rand(1) < self.p:
            return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img


def _crop(img, top, left, height, width):
    return img.crop((left, top, left + width, top + height))


functional = types.SimpleNamespace(crop=_crop)


class CenterCrop:
    """The centred size x size square, corners rounded as torchvision rounds them."""

    def __init__(self, size):
        self.size = size

    def __call__(self, img):
        top = int(round((img.height - self.size) / 2.0))
        left = int(round((img.width - self.size) / 2.0))
        return _crop(img, top, left, self.size, self.size)


class RandomCrop:
    """Only ``get_params``, as the SDXL example uses it: a corner drawn as torchvision draws it."""

    def __init__(self, size):
        self.size = size

    @staticmethod
    def get_params(img, output_size):
        height, width = output_size
        if img.height == height and img.width == width:
            return 0, 0, height, width
        top = int(torch.randint(0, img.height - height + 1, size=(1,)).item())
        left = int(torch.randint(0, img.width - width + 1, size=(1,)).item())
        return top, left, height, width
'''
SHIMMED_TRANSFORMS = {"RandomHorizontalFlip", "CenterCrop", "RandomCrop", "functional"}
MODEL_FOLDERS = {"sd15": "sd15-random", "sdxl": "sdxl-random", "tiny": "tiny-random", "tiny-sdxl": "tiny-sdxl-random"}
# The project's one set of random-pipeline builders, the tests' too.
BUILDERS = {"sd15": build_sd15_random, "sdxl": build_sdxl_random, "tiny": build_tiny_pipeline,
            "tiny-sdxl": build_tiny_sdxl_pipeline}


# --------------------------------------------------------------------------------------------
# Models and images
# --------------------------------------------------------------------------------------------


def prepare_model(args: argparse.Namespace) -> Path:
    if args.model_dir:
        return Path(args.model_dir).expanduser().resolve()
    folder = Path(args.cache_dir).expanduser() / MODEL_FOLDERS[args.model]
    if args.rebuild or not (folder / "model_index.json").exists():
        print(f"Building the {args.model} random-weight model in {folder} (once)...", flush=True)
        started = time.monotonic()
        shutil.rmtree(folder, ignore_errors=True)
        BUILDERS[args.model](folder)
        print(f"Built in {time.monotonic() - started:.0f} s.", flush=True)
    return folder.resolve()


def prepare_images(args: argparse.Namespace) -> Path:
    from invokeai_ti.demo import draw_sample_photos

    folder = Path(args.cache_dir).expanduser() / f"images-{args.images}"

    def complete() -> bool:
        return folder.is_dir() and len(list(folder.iterdir())) == args.images

    if args.rebuild or not complete():
        # Drawn aside and renamed into place: benchmarks/gpu_check.sh builds two models at once,
        # and neither may see, or remove, the other's half-drawn photos (the same ones: one seed).
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
        draw_sample_photos(partial, count=args.images, size=512, seed=7)
        if args.rebuild or not complete():
            shutil.rmtree(folder, ignore_errors=True)
            try:
                partial.rename(folder)
            except OSError:  # the other build put the same photos there first
                pass
        shutil.rmtree(partial, ignore_errors=True)
    return folder.resolve()


# --------------------------------------------------------------------------------------------
# Child processes: one training run each, timed from inside
# --------------------------------------------------------------------------------------------


def install_step_recorder(result_path: Path):
    """Record the wall-clock time after every optimizer step; write them out at exit."""
    import atexit

    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    record: dict = {"step_times": [], "step_cpu_s": [], "step_threads": [], "child_started": time.time()}

    def after_step(_optimizer, _args, _kwargs) -> None:
        record["step_times"].append(time.time())
        record["step_cpu_s"].append(time.process_time())
        # The trainer may follow the load (invokeai_ti/cpu_threads.py): the count each step ran with.
        record["step_threads"].append(torch.get_num_threads())

    register_optimizer_step_post_hook(after_step)

    def write() -> None:
        import resource

        if torch.cuda.is_available():
            record["cuda_peak_allocated"] = torch.cuda.max_memory_allocated()
            record["cuda_peak_reserved"] = torch.cuda.max_memory_reserved()
            record["device"] = torch.cuda.get_device_name(0)
        record["self_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result_path.write_text(json.dumps(record), encoding="utf-8")

    atexit.register(write)
    return record


def child_ours(spec: dict) -> None:
    """Train with invokeai-ti through the same plan_run/run_plan path as the CLI."""
    from invokeai_ti.device import detect
    from invokeai_ti.settings import TrainingSettings
    from invokeai_ti.workflow import plan_run, run_plan

    settings = TrainingSettings(
        root=Path(spec["root"]),
        model=spec["model"],
        train_data_dir=Path(spec["images"]),
        output_dir=Path(spec["output"]),
        placeholder_token=spec.get("placeholder", PLACEHOLDER),
        initializer_token=spec.get("initializer", INITIALIZER),
        num_vectors=spec.get("num_vectors", 1),
        learnable_property=spec.get("learnable_property", "object"),
        resolution=spec["resolution"],
        train_batch_size=spec["batch"],
        gradient_accumulation_steps=spec["accumulation"],
        max_train_steps=spec["total_steps"],
        learning_rate=spec["lr"],
        scale_lr=False,
        lr_scheduler="constant",
        lr_warmup_steps=0,
        seed=spec["seed"],
        mixed_precision=spec["precision"],
        gradient_checkpointing=spec["gradient_checkpointing"],
        enable_xformers_memory_efficient_attention=spec["xformers"],
        compile=spec["compile"],
        deterministic=spec["deterministic"],
        checkpointing_steps=10**6,
        save_steps=spec.get("save_steps") or 10**6,
        validation_prompt=None if spec["validation_steps"] else "none",
        validation_steps=spec["validation_steps"] or None,
        num_validation_images=spec["validation_images"],
    )
    # What a benchmark varies beyond the shared settings (benchmarks/learning.py: the size modes).
    settings = dataclasses.replace(settings, **spec.get("settings", {}))
    caps = detect()
    if spec["precision"] == "bf16" and not caps.bf16:
        # The trainer refuses bf16 where oneDNN reports no native bf16; measure it anyway.
        caps = dataclasses.replace(caps, bf16=True)
    run_plan(plan_run(settings, caps), notify=lambda _message: None, show_progress=False)


def example_argv(spec: dict) -> list[str]:
    argv = [
        spec["example"],
        f"--pretrained_model_name_or_path={spec['model']}",
        f"--train_data_dir={spec['images']}",
        f"--output_dir={spec['output']}",
        f"--placeholder_token={spec.get('placeholder', PLACEHOLDER)}",
        f"--initializer_token={spec.get('initializer', INITIALIZER)}",
        f"--num_vectors={spec.get('num_vectors', 1)}",
        f"--learnable_property={spec.get('learnable_property', 'object')}",
        f"--resolution={spec['resolution']}",
        f"--train_batch_size={spec['batch']}",
        f"--gradient_accumulation_steps={spec['accumulation']}",
        f"--max_train_steps={spec['total_steps']}",
        f"--learning_rate={spec['lr']}",
        "--lr_scheduler=constant",
        "--lr_warmup_steps=0",
        f"--seed={spec['seed']}",
        f"--mixed_precision={spec['precision']}",
        "--checkpointing_steps=1000000",
        f"--save_steps={spec.get('save_steps') or 1000000}",
        "--dataloader_num_workers=0",
    ]
    if spec["gradient_checkpointing"]:
        argv.append("--gradient_checkpointing")
    if spec["xformers"]:
        argv.append("--enable_xformers_memory_efficient_attention")
    return argv


def child_example(spec: dict) -> None:
    """Run the diffusers example as ``__main__``, as ``python textual_inversion.py`` would."""
    import runpy

    # transformers and diffusers decide at import time whether torchvision is installed (a
    # find_spec probe) and then import parts of it the stand-in lacks. Importing what the example
    # uses first, while no torchvision can be found, keeps them on their no-torchvision paths;
    # only then does the stand-in become importable, for the example's own import.
    import diffusers  # noqa: F401
    import transformers  # noqa: F401
    from diffusers import (  # noqa: F401  # noqa: F401
        AutoencoderKL,
        DDPMScheduler,
        DiffusionPipeline,
        DPMSolverMultistepScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from diffusers.optimization import get_scheduler  # noqa: F401
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # noqa: F401

    sys.path.insert(0, spec["shim"])
    if spec["skip_version_check"]:
        import diffusers.utils

        diffusers.utils.check_min_version = lambda _version: None
    sys.argv = example_argv(spec)
    runpy.run_path(spec["example"], run_name="__main__")


def child_main(trainer: str, spec_path: Path, result_path: Path) -> int:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    record = install_step_recorder(result_path)
    if spec.get("phases"):
        import phases

        phases.install(record, trainer)
    {"ours": child_ours, "example": child_example}[trainer](spec)
    return 0


# --------------------------------------------------------------------------------------------
# The parent: run, collect, summarise
# --------------------------------------------------------------------------------------------


def check_example(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    used = set(re.findall(r"\btransforms\.(\w+)", source))
    missing = used - SHIMMED_TRANSFORMS
    other = re.findall(r"^\s*(?:from torchvision[.\w]* import .*|import torchvision.*)$", source, re.M)
    if missing or any(line.strip() != "from torchvision import transforms" for line in other):
        raise SystemExit(
            f"{path} uses torchvision beyond {', '.join(sorted(SHIMMED_TRANSFORMS))} ({sorted(missing) or other}); "
            "extend TORCHVISION_SHIM in benchmarks/bench.py."
        )


def write_shim(folder: Path) -> Path:
    # No torchvision/__init__.py: a namespace package, so transformers and diffusers, which probe
    # for an installed torchvision, still find none; ``from torchvision import transforms`` works.
    transforms = folder / "torchvision" / "transforms"
    transforms.mkdir(parents=True, exist_ok=True)
    (transforms / "__init__.py").write_text(TORCHVISION_SHIM, encoding="utf-8")
    return folder


def run_one(trainer: str, spec: dict, work: Path, shim: Path | None, log_dir: Path, *, keep: bool = False) -> dict:
    """Train once in a fresh process; return its step times, startup time and peak memory.

    ``keep`` leaves the run's folder in place and names its output folder in the result, for a
    caller that reads what the run saved (benchmarks/learning.py judges the snapshots).
    """
    run_dir = Path(tempfile.mkdtemp(prefix=f"{trainer}-", dir=work))
    spec = dict(spec, root=str(run_dir / "root"), output=str(run_dir / "output"), shim=str(shim) if shim else None)
    spec_path, result_path = run_dir / "spec.json", run_dir / "result.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("INVOKEAI_ROOT", None)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent.parent)] + [p for p in [env.get("PYTHONPATH")] if p])
    log_path = log_dir / f"{trainer}-{spec['precision']}-{spec['repeat']}.log"
    command = [sys.executable, str(HERE), "--child", trainer, str(spec_path), str(result_path)]
    load = os.getloadavg()[0]
    with open(log_path, "w", encoding="utf-8") as log:
        started = time.time()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=run_dir)
        _pid, status, usage = os.wait4(process.pid, 0)
        ended = time.time()
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{trainer} run failed (exit {process.returncode}); log {log_path}:\n{tail}")
    record = json.loads(result_path.read_text(encoding="utf-8"))
    times = record["step_times"]
    if len(times) != spec["total_steps"]:
        raise SystemExit(f"{trainer} made {len(times)} optimizer steps, expected {spec['total_steps']}")
    durations = [b - a for a, b in zip(times, times[1:])]
    timed = durations[spec["warmup"] - 1 :] if spec["warmup"] >= 1 else durations
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "trainer": trainer,
        "output": spec["output"] if keep else None,
        "elapsed_s": [t - started for t in times],
        "cpu_s": record["step_cpu_s"],
        "precision": spec["precision"],
        "repeat": spec["repeat"],
        "load_before": load,
        "first_step_s": times[0] - started,
        "total_s": ended - started,
        # The process's own CPU seconds, all threads: what a machine busy with other work inflates least.
        "total_cpu_s": usage.ru_utime + usage.ru_stime,
        "step_s": timed,
        "median_step_s": statistics.median(timed),
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "cuda_peak_allocated": record.get("cuda_peak_allocated"),
        "cuda_peak_reserved": record.get("cuda_peak_reserved"),
        "device": record.get("device", "CPU"),
        "threads_used": record["step_threads"],
        "phases": phases_of(record, spec["warmup"]) if spec.get("phases") else None,
    }


def phases_of(record: dict, warmup: int) -> dict:
    import phases

    return phases.breakdown(record, warmup)


def summarise(runs: list[dict]) -> dict[tuple[str, str], dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["trainer"], run["precision"]), []).append(run)
    summary = {}
    for key, group in groups.items():
        medians = [r["median_step_s"] for r in group]
        summary[key] = {
            "repeats": len(group),
            "median_step_s": statistics.median(medians),
            "min_step_s": min(medians),
            "max_step_s": max(medians),
            "first_step_s": statistics.median(r["first_step_s"] for r in group),
            "total_s": statistics.median(r["total_s"] for r in group),
            "total_cpu_s": statistics.median(r["total_cpu_s"] for r in group),
            "peak_rss_bytes": statistics.median(r["peak_rss_bytes"] for r in group),
            "cuda_peak_allocated": group[0]["cuda_peak_allocated"]
            and statistics.median(r["cuda_peak_allocated"] for r in group),
            "max_load_before": max(r["load_before"] for r in group),
        }
    return summary


def gib(value: float | None) -> str:
    return "-" if not value else f"{value / 2**30:.2f} GiB"


def markdown(summary: dict[tuple[str, str], dict], cuda: bool) -> str:
    lines = [
        "| trainer | precision | s/step (median; min-max of repeats) | steps/s | time to first step | "
        "whole run (CPU s) | peak RSS |" + (" peak CUDA allocated |" if cuda else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if cuda else ""),
    ]
    for (trainer, precision), s in sorted(summary.items()):
        name = "invokeai-ti" if trainer == "ours" else "diffusers example"
        lines.append(
            f"| {name} | {precision} | {s['median_step_s']:.2f} ({s['min_step_s']:.2f}-{s['max_step_s']:.2f})"
            f" | {1 / s['median_step_s']:.3f} | {s['first_step_s']:.1f} s | {s['total_s']:.1f} s ({s['total_cpu_s']:.1f})"
            f" | {gib(s['peak_rss_bytes'])} |"
            + (f" {gib(s['cuda_peak_allocated'])} |" if cuda else "")
        )
    ratios = []
    for precision in sorted({p for _, p in summary}):
        ours, theirs = summary.get(("ours", precision)), summary.get(("example", precision))
        if not (ours and theirs):
            continue
        speed = theirs["median_step_s"] / ours["median_step_s"]
        memory = ours["peak_rss_bytes"] / theirs["peak_rss_bytes"]
        line = (
            f"- {precision}: invokeai-ti makes {speed:.2f}x the example's steps per second with "
            f"{memory:.2f}x its peak RSS, and its whole run takes {ours['total_s'] / theirs['total_s']:.2f}x "
            f"the example's time ({ours['total_cpu_s'] / theirs['total_cpu_s']:.2f}x its CPU time)"
        )
        if cuda and ours["cuda_peak_allocated"] and theirs["cuda_peak_allocated"]:
            line += f" and {ours['cuda_peak_allocated'] / theirs['cuda_peak_allocated']:.2f}x its peak CUDA memory"
        head = ours["first_step_s"] - theirs["first_step_s"]
        saved = theirs["median_step_s"] - ours["median_step_s"]
        if head <= 0:
            line += f"; its first step also comes {-head:.1f} s sooner, so it is ahead from step 1."
        elif saved > 0:
            line += (
                f"; its first step comes {head:.1f} s later (latent caching), which pays back after "
                f"{head / saved + 1:.1f} steps."
            )
        else:
            line += f"; its first step comes {head:.1f} s later."
        ratios.append(line)
    for trainer in TRAINERS:
        base = summary.get((trainer, "no"))
        for precision in ("bf16", "fp16"):
            other = summary.get((trainer, precision))
            if base and other:
                name = "invokeai-ti" if trainer == "ours" else "diffusers example"
                ratios.append(
                    f"- {name} {precision} against fp32: {base['median_step_s'] / other['median_step_s']:.2f}x "
                    f"the steps per second, {other['peak_rss_bytes'] / base['peak_rss_bytes']:.2f}x the peak RSS."
                )
    return "\n".join(lines + [""] + ratios)


def phase_table(runs: list[dict]) -> str:
    """Milliseconds per step of each part, per trainer and precision (median over the repeats)."""
    import phases

    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["trainer"], run["precision"]), []).append(run["phases"])
    keys = sorted(groups)
    names = [f"{'invokeai-ti' if t == 'ours' else 'diffusers example'} ({p})" for t, p in keys]
    lines = ["| ms per step | " + " | ".join(names) + " |", "|---|" + "---|" * len(keys)]
    for label in (*phases.PER_STEP, "other (Python between the parts)", "step"):
        cells = [statistics.median(g[label] for g in groups[key]) for key in keys]
        lines.append(f"| {label} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    cells = [
        f"{statistics.median(g['evaluation_ms'] for g in groups[key]):.0f} ms x {groups[key][0]['evaluations']}"
        for key in keys
    ]
    lines.append("| evaluation (per run: ms each x count) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, avx512_bf16/amx: {'yes' if bf16 else 'no'}, "
        f"GPU: {gpu}; Python {platform.python_version()}, torch {torch.__version__}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--example", type=Path,
        help="path of diffusers' examples/textual_inversion/textual_inversion.py (textual_inversion_sdxl.py for SDXL)",
    )
    parser.add_argument("--trainers", default="ours,example", help="comma list of ours,example (default both)")
    parser.add_argument("--model", choices=tuple(MODEL_FOLDERS), default="sd15", help="random-weight model to build and use")
    parser.add_argument("--model-dir", help="use this diffusers SD or SDXL folder instead of a built random model")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="where the built model and images are kept")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the random model and the images")
    parser.add_argument("--images", type=int, default=5, help="number of generated training photos")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--accumulation", type=int, default=1, help="gradient accumulation steps, both trainers")
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=None,
        help="invokeai-ti's --compile/--no-compile (default: its own default for the run)",
    )
    parser.add_argument("--deterministic", action="store_true", help="invokeai-ti's --deterministic")
    parser.add_argument("--precisions", default="no", help="comma list of no,bf16,fp16 for every trainer")
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps not timed")
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each trainer, interleaved")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--xformers", action="store_true", help="xFormers attention in both trainers")
    parser.add_argument(
        "--validation-steps",
        type=int,
        default=0,
        help="our trainer makes previews before the first step, every N steps and at the end "
        "(default 0: no previews, as the example without --validation_prompt)",
    )
    parser.add_argument("--validation-images", type=int, default=4, help="images in each preview")
    parser.add_argument(
        "--skip-version-check",
        action="store_true",
        help="let an example that wants a newer diffusers run anyway (patches check_min_version)",
    )
    parser.add_argument(
        "--prepare-only", action="store_true",
        help="build the model and the photos into --cache-dir and stop (benchmarks/gpu_check.sh builds "
        "while it runs the tests, then times)",
    )
    parser.add_argument(
        "--phases", action="store_true",
        help="also time each part of a step (data, VAE, text encoder, UNet, optimizer, restore, logging) and "
        "the evaluation, in both trainers (benchmarks/phases.py)",
    )
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    parser.add_argument("--logs", type=Path, help="keep each run's output in this folder")
    args = parser.parse_args(argv)
    args.trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if unknown := set(args.trainers) - set(TRAINERS):
        parser.error(f"unknown trainers {sorted(unknown)}")
    if "example" in args.trainers and not args.example and not args.prepare_only:
        parser.error("--example PATH is needed to run the diffusers example (or pass --trainers ours)")
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    shim_dir = None
    if "example" in args.trainers and not args.prepare_only:
        args.example = args.example.expanduser().resolve()
        check_example(args.example)
    model = prepare_model(args)
    images = prepare_images(args)
    if args.prepare_only:
        print(f"Model {model}, photos {images}.", flush=True)
        return {"model": str(model), "images": str(images)}
    work = Path(tempfile.mkdtemp(prefix="invokeai-ti-bench-"))
    log_dir = args.logs or work / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if "example" in args.trainers:
        shim_dir = write_shim(work / "shim")
    base = {
        "model": str(model),
        "images": str(images),
        "example": str(args.example) if args.example else None,
        "resolution": args.resolution,
        "batch": args.batch,
        "accumulation": args.accumulation,
        "compile": args.compile,
        "deterministic": args.deterministic,
        "total_steps": args.warmup + args.steps,
        "warmup": args.warmup,
        "lr": args.lr,
        "seed": args.seed,
        "gradient_checkpointing": args.gradient_checkpointing,
        "xformers": args.xformers,
        "validation_steps": args.validation_steps,
        "validation_images": args.validation_images,
        "skip_version_check": args.skip_version_check,
        "phases": args.phases,
    }
    print(f"Machine: {machine()}", flush=True)
    runs = []
    try:
        for repeat in range(args.repeats):
            for precision in args.precisions:
                for trainer in args.trainers:
                    spec = dict(base, precision=precision, repeat=repeat)
                    run = run_one(trainer, spec, work, shim_dir, log_dir)
                    runs.append(run)
                    print(
                        f"[{repeat + 1}/{args.repeats}] {trainer:7s} {precision:4s} "
                        f"median {run['median_step_s']:.3f} s/step, first step {run['first_step_s']:.1f} s, "
                        f"whole run {run['total_s']:.1f} s ({run['total_cpu_s']:.1f} s CPU), "
                        f"peak RSS {gib(run['peak_rss_bytes'])}, load before {run['load_before']:.2f}",
                        flush=True,
                    )
    finally:
        if not args.logs:
            shutil.rmtree(work, ignore_errors=True)
    summary = summarise(runs)
    cuda = any(r["cuda_peak_allocated"] for r in runs)
    table = markdown(summary, cuda)
    print()
    print(
        f"Model {args.model_dir or args.model}, {args.resolution} px, batch {args.batch}, "
        f"{args.warmup} warm-up + {args.steps} timed steps, {args.repeats} repeats"
        + (", gradient checkpointing" if args.gradient_checkpointing else "")
        + (f", previews every {args.validation_steps} steps" if args.validation_steps else "")
    )
    print(table)
    if args.phases:
        table += "\n\n" + phase_table(runs)
        print()
        print(phase_table(runs))
    result = {
        "machine": machine(),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "runs": runs,
        "summary": [{"trainer": t, "precision": p, **s} for (t, p), s in summary.items()],
        "table": table,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        sys.exit(child_main(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
    main()
