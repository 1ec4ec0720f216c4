#!/usr/bin/env python
"""Learning benchmark: what users care about, measured on the world model by its judge.

Every run teaches the shipped world model (``invokeai_ti/world/model``) a trigger from photos drawn
by ``invokeai_ti.world.photos`` (outlines, texture, shadow, perspective, JPEG: not the world's own
generator), saves a snapshot every ``--every`` steps, and each snapshot is drawn by one plain
diffusers ``StableDiffusionPipeline`` of the world model with the same seed, whoever trained it,
and read by the world's judge. Each run is a fresh process (benchmarks/bench.py's machinery: the
torchvision stand-in for the diffusers example, the optimizer-step clock).

Three tasks, each over ``--seeds`` seeds (the photos and the training seed both change):

- **fidelity**: photos of one colour and shape (``--concepts``), prompt "a photo of a <t>"; the
  share of pictures showing that colour and shape, at every snapshot. Drift is the best share of
  the run against its final one.
- **shape editability**: photos of one shape in three colours, each captioned with its colour
  ("a photo of a red <t>"); asked for "a photo of a green <t>" in three colours the photos never
  had, the share of pictures showing both the asked colour and the trained shape.
- **colour editability**: photos of one colour on three shapes, captioned with the shape ("a
  photo of a <t> circle"); asked for three shapes the photos never had.

The diffusers example reads no caption files (it describes every photo with its templates), so
in the editability tasks it learns from the same photos under "a photo of a <t>".

Trainers (``--variants``): invokeai-ti with each way of holding the vectors' size (``free``,
``preserve`` = ``--preserve_embedding_norm``, ``direction`` = ``--learn_direction_only``) at a
learning rate, optionally from another lowest timestep (``ours:free:5e-3:0`` trains on every
timestep, as before ``--min_timestep``), and the diffusers example. For invokeai-ti the step its report recommends (where
the fixed evaluation batch's score settled, ``invokeai_ti.settling``) is checked against the
judge: is its share within 10 points of the run's best snapshot? Every snapshot's vector norm is
kept, to see where fidelity and prompt-following part.

The same runs measure speed: the steps, wall seconds and CPU seconds (from the trainer process's
start, so loading and the latent cache count) at which a concept first reaches 80% and 90%. With
``--model-dir`` pointing at the SDXL world model (``invokeai_ti/world/model_sdxl``) and
``--example`` at ``textual_inversion_sdxl.py``, every run, judging included, goes through SDXL:
the snapshots' ``clip_l`` and ``clip_g`` vectors into their encoders, drawn by
``StableDiffusionXLPipeline``.

Results are written to ``--json`` after every run, so a long benchmark can be read while it runs
and summarised again with ``--summarise FILE``. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import bench  # benchmarks/bench.py: runs, the example's stand-in, the machine line

from invokeai_ti.settling import settled

DEFAULT_CONCEPTS = (
    "red circle,green star,blue triangle,yellow cross,orange square,purple ring,"
    "white triangle,black star,red square,blue ring,yellow circle,purple cross"
)
# A shape taught in three colours, asked for in three others; a colour taught on three shapes,
# asked for on three others.
DEFAULT_SHAPES = (
    "star:red blue yellow:green purple white,triangle:green orange white:red blue black,"
    "circle:purple black yellow:orange green blue,cross:orange blue white:red yellow purple"
)
DEFAULT_COLOURS = (
    "red:circle square triangle:star ring cross,blue:star ring cross:circle square triangle,"
    "yellow:square ring triangle:circle star cross,green:circle cross star:square triangle ring"
)
DEFAULT_VARIANTS = "ours:free:5e-3,ours:free:2e-3,ours:preserve:5e-3,ours:direction:1e-2,example:free:5e-3"
MODE_SETTINGS = {
    "free": {},
    "preserve": {"preserve_embedding_norm": True},
    "direction": {"learn_direction_only": True},
}
TRIGGER = "<blicket>"
REACHED = 0.8
CLOSE = 0.10


@dataclass(frozen=True)
class Variant:
    trainer: str
    mode: str
    lr: float
    # invokeai-ti's --min_timestep; None: its default.
    min_timestep: int | None = None

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``trainer:mode:lr`` or ``ours:mode:lr:N``, N the lowest timestep trained."""
        trainer, mode, lr, *lowest = text.split(":")
        return cls(trainer, mode, float(lr), int(lowest[0]) if lowest else None)

    @property
    def name(self) -> str:
        who = "invokeai-ti" if self.trainer == "ours" else "diffusers example"
        mode = "" if self.trainer == "example" else f" {self.mode}"
        lowest = "" if self.min_timestep is None else f", timesteps from {self.min_timestep}"
        return f"{who}{mode} @ {self.lr:g}{lowest}"

    def settings(self) -> dict:
        found = dict(MODE_SETTINGS[self.mode])
        if self.mode == "direction":
            found["direction_learning_rate"] = self.lr
        if self.min_timestep is not None:
            found["min_timestep"] = self.min_timestep
        return found


@dataclass(frozen=True)
class Task:
    """One thing taught: its photos (colour, shape, caption word) and what its pictures are asked."""

    kind: str  # fidelity, shape, colour
    name: str
    photos: tuple[tuple[str, str], ...]
    # (prompt, colour, shape) the judge must see in pictures of the prompt.
    asks: tuple[tuple[str, str, str], ...]

    def caption(self, colour: str, shape: str) -> str | None:
        if self.kind == "shape":
            return f"a photo of a {colour} {TRIGGER}"
        if self.kind == "colour":
            return f"a photo of a {TRIGGER} {shape}"
        return None


def fidelity_tasks(text: str) -> list[Task]:
    tasks = []
    for item in text.split(","):
        colour, shape = item.split()
        tasks.append(Task("fidelity", f"{colour} {shape}", ((colour, shape),) * 6,
                          (("a photo of a {}", colour, shape),)))
    return tasks


def editability_tasks(text: str, kind: str) -> list[Task]:
    tasks = []
    for item in text.split(","):
        taught, seen, new = (part.split() for part in item.split(":"))
        (fixed,) = taught
        if kind == "shape":
            photos = tuple((colour, fixed) for colour in seen for _ in range(2))
            asks = tuple((f"a photo of a {colour} {{}}", colour, fixed) for colour in new)
        else:
            photos = tuple((fixed, shape) for shape in seen for _ in range(2))
            asks = tuple((f"a photo of a {{}} {shape}", fixed, shape) for shape in new)
        tasks.append(Task(kind, f"{kind} {fixed}", photos, asks))
    return tasks


def write_task_photos(task: Task, folder: Path, seed: int, size: int, effects: frozenset[str]) -> tuple[Path, Path]:
    """The photos twice: plain (for the example, which reads no captions) and with caption files."""
    from invokeai_ti.world.photos import write_photos

    plain, captioned = folder / "plain", folder / "captioned"
    counts: dict[tuple[str, str], int] = {}
    for pair in task.photos:
        counts[pair] = counts.get(pair, 0) + 1
    for (colour, shape), count in counts.items():
        for path in write_photos(plain, colour, shape, count, seed=seed, size=size, effects=effects):
            captioned.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, captioned / path.name)
            if (text := task.caption(colour, shape)) is not None:
                (captioned / path.name).with_suffix(".txt").write_text(text, encoding="utf-8")
    return plain, captioned


class Judging:
    """Every snapshot of every trainer drawn by the same pipeline with the same seed, then judged."""

    def __init__(self, model: Path, pictures: int, seed: int, initializer: str) -> None:
        from tools.sampling import TriggerSampler

        self.sampler = TriggerSampler(model, trigger=TRIGGER)
        self.pictures = pictures
        self.seed = seed
        self.start = self.sampler.word(initializer)
        self.at_start: dict[str, list[float]] = {}

    def initializer_shares(self, task: Task) -> list[float]:
        """The initializer alone, the same for every run of a task: judged once."""
        if task.name not in self.at_start:
            self.at_start[task.name] = self.shares(self.start, task)
        return self.at_start[task.name]

    def shares(self, vectors, task: Task) -> list[float]:
        """Per asked prompt, the share of pictures showing what it asks."""
        from invokeai_ti.world.judge import share_showing

        count = max(1, self.pictures // len(task.asks))
        return [share_showing(self.sampler.draw(vectors, count, self.seed, prompt), colour, shape)
                for prompt, colour, shape in task.asks]


def snapshot_vectors(output: Path, step: int):
    """What a trainer saved after ``step`` steps (the final file if no snapshot has that name)."""
    from tools.sampling import saved_vectors

    path = output / f"learned_embeds-steps-{step}.safetensors"
    return saved_vectors(path if path.exists() else output / "learned_embeds.safetensors")


def vector_norm(vectors) -> float:
    """The vectors' size; for SDXL, the second encoder's (the one that carries the concept,
    docs/world.md), since the two encoders' vectors live on different scales."""
    if isinstance(vectors, dict):
        return float(vectors["clip_g"].norm())
    return float(vectors.norm())


def recommended(output: Path) -> int | None:
    from invokeai_ti.outputs.learning_log import read_evaluation

    found = settled(read_evaluation(output / "evaluation.csv"))
    return None if found is None else found.best


def evaluation_curve(output: Path) -> list[list[float]]:
    from invokeai_ti.outputs.learning_log import read_evaluation

    return [[step, score] for step, score in read_evaluation(output / "evaluation.csv")]


def run_variant(args, variant: Variant, task: Task, seed: int, photos: tuple[Path, Path], judging: Judging,
                work: Path, shim: Path | None) -> dict:
    plain, captioned = photos
    spec = {
        "model": str(args.model), "images": str(captioned if variant.trainer == "ours" else plain),
        "example": str(args.example) if args.example else None,
        "resolution": args.resolution, "batch": args.batch, "accumulation": 1,
        "compile": None, "deterministic": False, "total_steps": args.steps, "warmup": 1,
        "lr": variant.lr, "seed": args.seed + seed, "gradient_checkpointing": False,
        "xformers": False, "validation_steps": 0, "validation_images": 1,
        "skip_version_check": args.skip_version_check, "precision": "no", "repeat": seed,
        "placeholder": TRIGGER, "initializer": args.initializer, "num_vectors": 1,
        "learnable_property": "object", "save_steps": args.every, "settings": variant.settings(),
    }
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    run = bench.run_one(variant.trainer, spec, work, shim, logs, keep=True)
    output = Path(run["output"])
    curve = [{"step": 0, "shares": judging.initializer_shares(task), "norm": vector_norm(judging.start),
              "seconds": 0.0, "cpu_seconds": 0.0}]
    for step in range(args.every, args.steps + 1, args.every):
        vectors = snapshot_vectors(output, step)
        curve.append({"step": step, "shares": judging.shares(vectors, task), "norm": vector_norm(vectors),
                      "seconds": run["elapsed_s"][step - 1], "cpu_seconds": run["cpu_s"][step - 1]})
    result = {
        "task": task.name, "kind": task.kind, "seed": seed, "variant": variant.name,
        "trainer": variant.trainer, "mode": variant.mode, "lr": variant.lr, "curve": curve,
        "median_step_s": run["median_step_s"], "total_s": run["total_s"], "load_before": run["load_before"],
        "evaluation": evaluation_curve(output) if variant.trainer == "ours" else None,
        "recommended": recommended(output) if variant.trainer == "ours" else None,
    }
    shutil.rmtree(output.parent, ignore_errors=True)
    return result


def share(point: dict) -> float:
    return statistics.mean(point["shares"])


def best_and_final(result: dict) -> tuple[float, float]:
    trained = [point for point in result["curve"] if point["step"] > 0]
    return max(share(point) for point in trained), share(trained[-1])


def recommendation_close(result: dict) -> bool | None:
    """Is the recommended step's share within ``CLOSE`` of the best snapshot's? Without a
    recommendation the final step is what the user gets, and that is what is checked.

    The step is found again from the run's evaluation scores with ``invokeai_ti.settling`` as it is
    now, so ``--summarise`` checks the rule the trainer ships on runs made before it changed.
    """
    best, final = best_and_final(result)
    found = settled([(int(s), score) for s, score in result["evaluation"] or []])
    step = None if found is None else found.best
    if step is None:
        return final >= best - CLOSE
    at = {point["step"]: share(point) for point in result["curve"]}
    if step not in at:
        return None
    return at[step] >= best - CLOSE


def pct(value: float) -> str:
    return f"{value:.0%}"


def summary(results: list[dict], steps: int) -> list[str]:
    """One row per trainer: fidelity, drift, both editabilities and the recommended step."""
    variants = list(dict.fromkeys(r["variant"] for r in results))
    lines = [
        "| trainer | fidelity: concepts reaching 80% (best, median of seeds) | fidelity: final share (median) "
        "| drift: runs ending within 10 points of their best | new colours for a shape (final) "
        "| new shapes for a colour (final) | recommended step within 10 points of the best |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in variants:
        mine = [r for r in results if r["variant"] == name]
        fidelity = [r for r in mine if r["kind"] == "fidelity"]
        by_concept: dict[str, list[float]] = {}
        for r in fidelity:
            by_concept.setdefault(r["task"], []).append(best_and_final(r)[0])
        reached = sum(statistics.median(v) >= REACHED for v in by_concept.values())
        finals = [best_and_final(r)[1] for r in fidelity]
        close = [best_and_final(r)[1] >= best_and_final(r)[0] - CLOSE for r in fidelity]
        shape = [best_and_final(r)[1] for r in mine if r["kind"] == "shape"]
        colour = [best_and_final(r)[1] for r in mine if r["kind"] == "colour"]
        recs = [recommendation_close(r) for r in mine if r["trainer"] == "ours" and r["kind"] == "fidelity"]
        recs = [r for r in recs if r is not None]
        lines.append(
            f"| {name} | {reached} of {len(by_concept)} | {pct(statistics.median(finals)) if finals else '-'} "
            f"| {sum(close)} of {len(close)} | {pct(statistics.median(shape)) if shape else '-'} "
            f"| {pct(statistics.median(colour)) if colour else '-'} "
            f"| {f'{sum(recs)} of {len(recs)}' if recs else '-'} |"
        )
    return lines


def concept_rows(results: list[dict]) -> list[str]:
    """Best and final share per concept and trainer (median over seeds), with the step of the best."""
    variants = list(dict.fromkeys(r["variant"] for r in results))
    tasks = list(dict.fromkeys(r["task"] for r in results))
    lines = ["| task | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for task in tasks:
        cells = []
        for name in variants:
            runs = [r for r in results if r["variant"] == name and r["task"] == task]
            if not runs:
                cells.append("-")
                continue
            best = statistics.median(best_and_final(r)[0] for r in runs)
            final = statistics.median(best_and_final(r)[1] for r in runs)
            cells.append(f"{pct(best)} / {pct(final)}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def norm_rows(results: list[dict]) -> list[str]:
    """Fidelity and editability of every snapshot, by the vector's norm: where they part."""
    edges = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 99.0]
    lines = ["| norm | fidelity (snapshots) | new colours for a shape | new shapes for a colour |", "|---|---|---|---|"]
    for low, high in zip(edges, edges[1:]):
        cells = []
        for kind in ("fidelity", "shape", "colour"):
            found = [share(p) for r in results if r["kind"] == kind and r["mode"] == "free"
                     for p in r["curve"] if p["step"] > 0 and low <= p["norm"] < high]
            cells.append(f"{pct(statistics.mean(found))} ({len(found)})" if found else "-")
        label = f"{low:g}-{high:g}" if high < 99 else f"{low:g}+"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def first_reaching(result: dict, threshold: float) -> dict | None:
    return next((p for p in result["curve"] if p["step"] > 0 and share(p) >= threshold), None)


def speed_rows(results: list[dict]) -> list[str]:
    """Steps, wall seconds and CPU seconds to first reach 80% and 90% (median over the seeds that
    reached it, with how many did), and the initializer alone, per fidelity concept and trainer."""
    variants = list(dict.fromkeys(r["variant"] for r in results))
    tasks = list(dict.fromkeys(r["task"] for r in results if r["kind"] == "fidelity"))
    lines = ["| concept | trainer | initializer alone | 80%: steps, s, CPU s | 90%: steps, s, CPU s | best / final |",
             "|---|---|---|---|---|---|"]
    for task in tasks:
        for name in variants:
            # Runs recorded before the curves carried seconds have no speed to show.
            runs = [r for r in results if r["variant"] == name and r["task"] == task
                    and all("seconds" in p for p in r["curve"])]
            if not runs:
                continue
            cells = [pct(statistics.median(share(r["curve"][0]) for r in runs))]
            for threshold in (REACHED, 0.9):
                reached = [p for r in runs if (p := first_reaching(r, threshold)) is not None]
                if not reached:
                    cells.append(f"never ({len(runs)} runs)")
                    continue
                seen = "" if len(reached) == len(runs) else f" ({len(reached)} of {len(runs)} runs)"
                cells.append(f"{statistics.median(p['step'] for p in reached):g}, "
                             f"{statistics.median(p['seconds'] for p in reached):.1f}, "
                             f"{statistics.median(p['cpu_seconds'] for p in reached):.1f}{seen}")
            best = statistics.median(best_and_final(r)[0] for r in runs)
            final = statistics.median(best_and_final(r)[1] for r in runs)
            cells.append(f"{pct(best)} / {pct(final)}")
            lines.append(f"| {task} | {name} | " + " | ".join(cells) + " |")
    return lines


def report(results: list[dict], args_line: str, steps: int) -> str:
    parts = [args_line, "", *summary(results, steps), "", "Best / final share per task (median of seeds):", "",
             *concept_rows(results), "", "By the vector's norm (runs without size control, ours and the example, every snapshot after step 0):", "",
             *norm_rows(results), "", "Speed: the first snapshot at 80% and 90% (median of the seeds that got there):", "",
             *speed_rows(results)]
    return "\n".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", type=Path, help="path of diffusers' examples/textual_inversion/textual_inversion.py")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help="comma list of trainer:mode:lr (trainer ours or example; mode free, preserve, "
                             "direction; for direction the lr is --direction_learning_rate), for ours optionally "
                             ":N, the lowest timestep trained (--min_timestep; default: the trainer's)")
    parser.add_argument("--tasks", default="fidelity,shape,colour", help="comma list of fidelity, shape, colour")
    parser.add_argument("--model-dir", type=Path, help="the world model (default: the SD-1 one shipped in the package; "
                        "invokeai_ti/world/model_sdxl for SDXL, with textual_inversion_sdxl.py as --example)")
    parser.add_argument("--concepts", default=DEFAULT_CONCEPTS, help="fidelity: comma list of 'colour shape'")
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="shape editability: shape:seen colours:new colours,...")
    parser.add_argument("--colours", default=DEFAULT_COLOURS, help="colour editability: colour:seen shapes:new shapes,...")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only-seeds", help="comma list of the seeds this process runs (to share a benchmark "
                                              "between processes; --summarise takes all their --json files)")
    parser.add_argument("--initializer", default="toy")
    parser.add_argument("--photo-size", type=int, default=128)
    parser.add_argument("--photo-effects", default="all",
                        help="what makes the photos photos: all, none, or a comma list of "
                             "outline,shadow,light,tilt,speckle,table,jpeg to keep")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=25, help="snapshot (and judge) every N steps")
    parser.add_argument("--pictures", type=int, default=24, help="pictures judged per snapshot (split over a task's prompts)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--sample-seed", type=int, default=99)
    parser.add_argument("--skip-version-check", action="store_true",
                        help="let an example that wants a newer diffusers run anyway (patches check_min_version)")
    parser.add_argument("--json", type=Path, help="write every curve here after each run")
    parser.add_argument("--summarise", type=Path, nargs="+", help="only print the tables of --json files written before")
    args = parser.parse_args(argv)
    args.variants = [Variant.parse(v) for v in args.variants.split(",") if v]
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if unknown := {v.trainer for v in args.variants} - set(bench.TRAINERS):
        parser.error(f"unknown trainers {sorted(unknown)}")
    if unknown := {v.mode for v in args.variants} - set(MODE_SETTINGS):
        parser.error(f"unknown modes {sorted(unknown)}")
    if any(v.trainer == "example" for v in args.variants) and not args.example and not args.summarise:
        parser.error("--example PATH is needed to run the diffusers example (or leave example out of --variants)")
    if args.steps % args.every:
        parser.error("--steps must be a multiple of --every")
    from invokeai_ti.world.photos import EFFECTS

    chosen = {"all": EFFECTS, "none": frozenset()}.get(args.photo_effects)
    if chosen is None:
        chosen = frozenset(e.strip() for e in args.photo_effects.split(",") if e.strip())
        if unknown := chosen - EFFECTS:
            parser.error(f"unknown photo effects {sorted(unknown)}; they are {', '.join(sorted(EFFECTS))}")
    args.photo_effects = chosen
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args_line = " ".join(sys.argv[1:] if argv is None else argv)
    if args.summarise:
        saved = [json.loads(path.read_text(encoding="utf-8")) for path in args.summarise]
        results = [result for part in saved for result in part["results"]]
        print(report(results, " + ".join(part["argv"] for part in saved), saved[0].get("steps", args.steps)))
        return {"results": results}
    from invokeai_ti.world import WORLD_MODEL

    args.model = (args.model_dir or WORLD_MODEL).expanduser().resolve()
    tasks = []
    if "fidelity" in args.tasks:
        tasks += fidelity_tasks(args.concepts)
    if "shape" in args.tasks:
        tasks += editability_tasks(args.shapes, "shape")
    if "colour" in args.tasks:
        tasks += editability_tasks(args.colours, "colour")
    work = Path(tempfile.mkdtemp(prefix="invokeai-ti-learning-"))
    shim = None
    if any(v.trainer == "example" for v in args.variants):
        args.example = args.example.expanduser().resolve()
        bench.check_example(args.example)
        shim = bench.write_shim(work / "shim")
    print(f"Machine: {bench.machine()}", flush=True)
    judging = Judging(args.model, args.pictures, args.sample_seed, args.initializer)
    results: list[dict] = []
    try:
        seeds = [int(s) for s in args.only_seeds.split(",")] if args.only_seeds else range(args.seeds)
        for seed in seeds:
            for task in tasks:
                photos = write_task_photos(task, work / f"photos-{seed}-{task.name.replace(' ', '-')}", seed,
                                           args.photo_size, args.photo_effects)
                for variant in args.variants:
                    result = run_variant(args, variant, task, seed, photos, judging, work, shim)
                    results.append(result)
                    best, final = best_and_final(result)
                    print(f"[seed {seed}] {task.name:16s} {variant.name:34s} best {best:4.0%} final {final:4.0%} "
                          f"recommended {result['recommended']} norm {result['curve'][-1]['norm']:.2f} "
                          f"({result['total_s']:.0f} s, load {result['load_before']:.1f}); "
                          + " ".join(f"{share(p):.0%}" for p in result["curve"]), flush=True)
                    if args.json:
                        args.json.parent.mkdir(parents=True, exist_ok=True)
                        args.json.write_text(json.dumps({
                            "machine": bench.machine(), "argv": args_line, "steps": args.steps, "results": results,
                            "updated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                        }), encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(report(results, args_line, args.steps))
    return {"results": results}


if __name__ == "__main__":
    main()
