#!/usr/bin/env python
"""Learning benchmark: how soon each trainer teaches the world model a concept, as its judge sees it.

For each concept (a colour and a shape of the world), photos are drawn by
``invokeai_ti.world.photos`` (outlines, texture, shadow, perspective, JPEG: not the world's own
generator) and both trainers, invokeai-ti and the diffusers Textual Inversion example, learn them
under the same trigger, initializer, resolution, batch, learning rate and seed, each run in its
own fresh process (benchmarks/bench.py's machinery: the torchvision stand-in, the optimizer-step
clock). Both save a snapshot of the vectors every ``--every`` steps
(``learned_embeds-steps-N.safetensors``). Every snapshot, and the initializer's own vector, is
then judged the same way, whoever trained it: one diffusers ``StableDiffusionPipeline`` of the
world model draws ``--pictures`` pictures of the prompt with the same seed, and the world's judge
says how many show the concept.

Reported for each concept and trainer: the share judged right against steps and against wall
time (seconds from the process's start, so loading and our latent cache are counted), and the
steps and seconds at which 80% and 90% are first reached. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import bench  # noqa: E402  (benchmarks/bench.py: runs, the example's stand-in, the machine line)

DEFAULT_CONCEPTS = "green star,red circle,blue triangle,yellow cross"
THRESHOLDS = (0.8, 0.9)
TRAINER_NAMES = {"ours": "invokeai-ti", "example": "diffusers example"}


class Judging:
    """Every snapshot of every trainer drawn by the same pipeline with the same seed, then judged."""

    def __init__(self, model: Path, trigger: str, num_vectors: int, prompt: str, pictures: int, seed: int) -> None:
        from tools.sampling import TriggerSampler

        self.sampler = TriggerSampler(model, num_vectors=num_vectors, prompt=prompt, trigger=trigger)
        self.pictures = pictures
        self.seed = seed

    def share(self, vectors, colour: str, shape: str) -> float:
        from invokeai_ti.world.judge import share_showing

        return share_showing(self.sampler.draw(vectors, self.pictures, self.seed), colour, shape)


def snapshot_vectors(output: Path, step: int):
    """What a trainer saved after ``step`` steps (the final file if no snapshot has that name)."""
    from tools.sampling import saved_vectors

    path = output / f"learned_embeds-steps-{step}.safetensors"
    return saved_vectors(path if path.exists() else output / "learned_embeds.safetensors")


def first_reaching(curve: list[dict], threshold: float) -> dict | None:
    return next((point for point in curve if point["share"] >= threshold), None)


def summary_rows(results: list[dict]) -> list[str]:
    """Steps, wall seconds and CPU seconds (this process's, all threads) to first reach each share.

    CPU seconds are what a run costs regardless of what else the machine does at the time.
    """
    lines = [
        "| concept | vectors | trainer | initializer alone | "
        + " | ".join(f"steps to {t:.0%} | s to {t:.0%} | CPU s to {t:.0%}" for t in THRESHOLDS)
        + " | final share | s/step |",
        "|---|---|---|---|" + "---|---|---|" * len(THRESHOLDS) + "---|---|",
    ]
    for result in results:
        for trainer, runs in result["trainers"].items():
            cells = []
            for threshold in THRESHOLDS:
                reached = [first_reaching(run["curve"], threshold) for run in runs]
                if all(reached):
                    cells.append(str(int(statistics.median(p["step"] for p in reached))))
                    cells.append(f"{statistics.median(p['seconds'] for p in reached):.1f}")
                    cells.append(f"{statistics.median(p['cpu_seconds'] for p in reached):.1f}")
                else:
                    cells += ["not reached", "-", "-"]
            final = statistics.median(run["curve"][-1]["share"] for run in runs)
            per_step = statistics.median(run["median_step_s"] for run in runs)
            lines.append(
                f"| {result['concept']} | {result['num_vectors']} | {TRAINER_NAMES[trainer]} | "
                f"{result['initializer_share']:.0%} | " + " | ".join(cells) + f" | {final:.0%} | {per_step:.3f} |"
            )
    return lines


def curve_rows(results: list[dict]) -> list[str]:
    """Share judged right at each snapshot: step, wall seconds and CPU seconds since the process started."""
    lines = []
    for result in results:
        for trainer, runs in result["trainers"].items():
            run = runs[0]
            points = ", ".join(f"{p['step']}: {p['share']:.0%} ({p['seconds']:.0f} s, {p['cpu_seconds']:.0f} CPU s)"
                               for p in run["curve"])
            lines.append(f"- {result['concept']}, {result['num_vectors']} vector(s), {TRAINER_NAMES[trainer]}: "
                         f"step 0: {result['initializer_share']:.0%}, {points}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--example", type=Path, help="path of diffusers' examples/textual_inversion/textual_inversion.py")
    parser.add_argument("--trainers", default="ours,example", help="comma list of ours,example (default both)")
    parser.add_argument("--model-dir", type=Path, help="the world model (default: the one shipped in the package)")
    parser.add_argument("--concepts", default=DEFAULT_CONCEPTS, help="comma list of 'colour shape'")
    parser.add_argument("--num-vectors", default="1", help="comma list of vector counts to run, e.g. 1,3")
    parser.add_argument("--learnable-property", default="object", choices=("object", "style"))
    parser.add_argument("--trigger", default="<blicket>")
    parser.add_argument("--initializer", default="toy")
    parser.add_argument("--prompt", default="a photo of a {}", help="what is drawn and judged; {} is the trigger")
    parser.add_argument("--photos", type=int, default=6, help="training photos per concept")
    parser.add_argument("--photo-size", type=int, default=128)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=25, help="snapshot (and judge) every N steps")
    parser.add_argument("--pictures", type=int, default=32, help="pictures judged per snapshot")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each trainer per concept, interleaved")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--sample-seed", type=int, default=99)
    parser.add_argument("--skip-version-check", action="store_true",
                        help="let an example that wants a newer diffusers run anyway (patches check_min_version)")
    parser.add_argument("--json", type=Path, help="also write every curve and the tables here")
    args = parser.parse_args(argv)
    args.trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    args.concepts = [tuple(c.split()) for c in args.concepts.split(",") if c.strip()]
    args.num_vectors = [int(n) for n in args.num_vectors.split(",")]
    if unknown := set(args.trainers) - set(bench.TRAINERS):
        parser.error(f"unknown trainers {sorted(unknown)}")
    if "example" in args.trainers and not args.example:
        parser.error("--example PATH is needed to run the diffusers example (or pass --trainers ours)")
    if any(len(c) != 2 for c in args.concepts):
        parser.error("each concept is a colour and a shape, e.g. 'green star'")
    if args.steps % args.every:
        parser.error("--steps must be a multiple of --every")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from invokeai_ti.world import WORLD_MODEL
    from invokeai_ti.world.photos import write_photos

    model = (args.model_dir or WORLD_MODEL).expanduser().resolve()
    work = Path(tempfile.mkdtemp(prefix="invokeai-ti-learning-"))
    shim = None
    if "example" in args.trainers:
        args.example = args.example.expanduser().resolve()
        bench.check_example(args.example)
        shim = bench.write_shim(work / "shim")
    print(f"Machine: {bench.machine()}", flush=True)
    print(f"Model {model}", flush=True)
    results = []
    try:
        for num_vectors in args.num_vectors:
            judging = Judging(model, args.trigger, num_vectors, args.prompt, args.pictures, args.sample_seed)
            start = judging.sampler.word(args.initializer)
            for colour, shape in args.concepts:
                photos = write_photos(work / f"photos-{colour}-{shape}", colour, shape, args.photos,
                                      size=args.photo_size)
                initial = judging.share(start, colour, shape)
                print(f"{colour} {shape}, {num_vectors} vector(s): initializer alone {initial:.0%}", flush=True)
                result = {"concept": f"{colour} {shape}", "num_vectors": num_vectors,
                          "initializer_share": initial, "trainers": {}}
                for repeat in range(args.repeats):
                    for trainer in args.trainers:
                        spec = {
                            "model": str(model), "images": str(photos[0].parent),
                            "example": str(args.example) if args.example else None,
                            "resolution": args.resolution, "batch": args.batch, "accumulation": 1,
                            "compile": None, "deterministic": False, "total_steps": args.steps, "warmup": 1,
                            "lr": args.lr, "seed": args.seed + repeat, "gradient_checkpointing": False,
                            "xformers": False, "validation_steps": 0, "validation_images": 1,
                            "skip_version_check": args.skip_version_check, "precision": "no", "repeat": repeat,
                            "placeholder": args.trigger, "initializer": args.initializer,
                            "num_vectors": num_vectors, "learnable_property": args.learnable_property,
                            "save_steps": args.every,
                        }
                        logs = work / "logs" / f"{colour}-{shape}-{num_vectors}"
                        logs.mkdir(parents=True, exist_ok=True)
                        run = bench.run_one(trainer, spec, work, shim, logs, keep=True)
                        output = Path(run["output"])
                        curve = []
                        for step in range(args.every, args.steps + 1, args.every):
                            share = judging.share(snapshot_vectors(output, step), colour, shape)
                            curve.append({"step": step, "seconds": run["elapsed_s"][step - 1],
                                          "cpu_seconds": run["cpu_s"][step - 1], "share": share})
                        shutil.rmtree(output.parent, ignore_errors=True)
                        result["trainers"].setdefault(trainer, []).append({
                            "repeat": repeat, "median_step_s": run["median_step_s"],
                            "first_step_s": run["first_step_s"], "total_s": run["total_s"],
                            "load_before": run["load_before"], "curve": curve,
                        })
                        shares = " ".join(f"{p['share']:.0%}" for p in curve)
                        print(f"  [{repeat + 1}/{args.repeats}] {TRAINER_NAMES[trainer]:17s} "
                              f"{run['median_step_s']:.3f} s/step, {run['total_s']:.0f} s in all, "
                              f"load before {run['load_before']:.2f}; judged: {shares}", flush=True)
                results.append(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = summary_rows(results)
    curves = curve_rows(results)
    print()
    print(f"{len(args.concepts)} concepts from {args.photos} photos each, {args.resolution} px, batch {args.batch}, "
          f"learning rate {args.lr}, {args.steps} steps, {args.pictures} pictures judged per snapshot "
          f"of '{args.prompt.format(args.trigger)}', initializer '{args.initializer}', "
          f"learnable property {args.learnable_property}, {args.repeats} repeat(s)")
    print("\n".join(table))
    print()
    print("\n".join(curves))
    report = {"machine": bench.machine(), "argv": sys.argv[1:] if argv is None else list(argv),
              "results": results, "table": "\n".join(table), "curves": "\n".join(curves),
              "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
