#!/usr/bin/env python
"""The GPU table of docs/benchmarks.md, made from one results file of benchmarks/gpu_check.sh.

Prints the section (every figure the check brought, each ratio against its target, and whether it
was met); with ``--docs FILE`` it also rewrites the part of FILE between the two ``gpu-check``
markers. A dry run's results (a CPU, the tiny models) are printed with a warning and never written
into the docs: they prove the script, not the GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN = "<!-- gpu-check:begin (written by benchmarks/gpu_report.py from gpu_check.sh's results) -->"
END = "<!-- gpu-check:end -->"

# The targets of the GPU issue (docs/gpu.md, "Running the GPU check").
SPEED_SD15 = 3.0  # batch 8 steps/s, as a multiple of the example's
MEMORY_RATIO = 0.85  # peak CUDA memory, as a fraction of the example's
MEMORY_LIMIT = 8 * 10**9  # peak CUDA memory at batch 8, bytes
RSS_RATIO = 1.0  # peak host memory, as a fraction of the example's
SPEED_SDXL = 2.0  # SDXL batch 4 steps/s, as a multiple of the example's bf16
CAT_TOY_STEPS = 3000  # the seed's cat-toy run: 3000 steps of batch 1 x accumulation 4
CAT_TOY_LIMIT = 180.0  # seconds


def gib(value: float | None) -> str:
    return "not measured" if value is None else f"{value / 2**30:.2f} GiB"


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**missed**")


def measured(part: dict) -> bool:
    return part.get("status") == "ok" and part.get("median_step_s") is not None


def why_not(part: dict) -> str:
    return f"not measured ({part.get('status')}{': ' + part['reason'] if part.get('reason') else ''})"


def speed(part: dict) -> str:
    if not measured(part):
        return why_not(part)
    return f"{part['steps_per_s']:.2f} steps/s ({part['median_step_s']:.3f} s/step)"


def ratio(ours: dict, theirs: dict, key: str, invert: bool = False) -> float | None:
    if not (measured(ours) and measured(theirs)) or not ours.get(key) or not theirs.get(key):
        return None
    return theirs[key] / ours[key] if invert else ours[key] / theirs[key]


def shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def judge(judged: dict, name: str, value: float | None, passes) -> str:
    judged[name] = None if value is None else bool(passes(value))
    return verdict(judged[name])


def comparison(
    ours: dict, theirs: dict, label: str, *, speed_at_least: float | None = None,
    memory_at_most: float | None = None, memory_limit: int | None = None, rss_at_most: float | None = None,
) -> tuple[list[str], dict]:
    """Rows for the steps/s, peak CUDA memory and peak host RSS of two runs; each ratio that has a
    target is judged (a ratio over 1 is ours faster; under 1, ours smaller)."""
    judged: dict[str, bool | None] = {}

    def figure(part: dict, key: str) -> float | None:
        return part.get(key) if measured(part) else None

    faster = ratio(ours, theirs, "median_step_s", invert=True)
    target = verdicts = ""
    if speed_at_least is not None:
        target = f">= {speed_at_least:g}x"
        verdicts = judge(judged, f"{label}: steps/s {target}", faster, lambda v: v >= speed_at_least)
    rows = [f"| {label}: steps/s | {speed(ours)} | {speed(theirs)} | {shown(faster)} | {target} | {verdicts} |"]

    memory = ratio(ours, theirs, "cuda_peak_allocated")
    targets, found = [], []
    if memory_at_most is not None:
        targets.append(f"<= {memory_at_most:g}x")
        found.append(judge(judged, f"{label}: peak CUDA {targets[-1]}", memory, lambda v: v <= memory_at_most))
    if memory_limit is not None:
        targets.append(f"<= {memory_limit / 10**9:g} GB")
        found.append(judge(judged, f"{label}: peak CUDA {targets[-1]}", figure(ours, "cuda_peak_allocated"),
                           lambda v: v <= memory_limit))
    rows.append(f"| {label}: peak CUDA allocated | {gib(figure(ours, 'cuda_peak_allocated'))} | "
                f"{gib(figure(theirs, 'cuda_peak_allocated'))} | {shown(memory)} | {' and '.join(targets)} | "
                f"{', '.join(found)} |")

    rss = ratio(ours, theirs, "peak_rss_bytes")
    target = verdicts = ""
    if rss_at_most is not None:
        target = f"<= {rss_at_most:g}x"
        verdicts = judge(judged, f"{label}: peak RSS {target}", rss, lambda v: v <= rss_at_most)
    rows.append(f"| {label}: peak host RSS | {gib(figure(ours, 'peak_rss_bytes'))} | "
                f"{gib(figure(theirs, 'peak_rss_bytes'))} | {shown(rss)} | {target} | {verdicts} |")
    return rows, judged


def cat_toy_projection(part: dict) -> float | None:
    """Seconds for the cat-toy run: the time to the first step, then 3000 steps at the measured pace."""
    if not measured(part):
        return None
    return part["first_step_s"] + CAT_TOY_STEPS * part["median_step_s"]


def tests_line(part: dict) -> tuple[str, bool | None]:
    if part.get("passed") is None and part.get("status") not in ("ok", "failed", "timeout"):
        return why_not(part), None
    text = (f"{part['passed']} passed, {part['failed']} failed, {part['errors']} errors, "
            f"{part['timeouts']} timed out, {part['skipped']} skipped")
    if part.get("collected") is not None:
        text += f" of {part['collected']} collected"
    if not part.get("finished"):
        text += f"; the run did not finish ({part.get('status')})"
    failures = [f["nodeid"] for f in part.get("failures") or []]
    if failures:
        text += ": " + ", ".join(f"`{name}`" for name in failures[:6]) + (" ..." if len(failures) > 6 else "")
    if not (part["passed"] or part["failed"] or part["errors"] or part["timeouts"]):
        return text + " (none ran)", None
    green = bool(part.get("finished")) and not (part["failed"] or part["errors"] or part["timeouts"])
    return text, green


def setting(parts: list[dict], planned: dict) -> dict:
    """The resolution, batch and precision the runs used: the measured ones', else what the check plans."""
    return {key: next((part[key] for part in parts if part.get(key) is not None), value) for key, value in planned.items()}


def machine_line(results: dict) -> str:
    parts = results["parts"]
    machine = parts["machine"]
    if machine.get("status") != "ok":
        return f"Measured by `benchmarks/gpu_check.sh` on {results['started']}; the machine: {why_not(machine)}."
    packages = machine.get("packages") or {}
    diffusers = ((parts["install"].get("versions") or {}).get("diffusers") or {}).get("version") or packages.get("diffusers")
    revision = (parts["install"].get("examples") or {}).get("diffusers_revision") or "-"
    return (
        f"Measured by `benchmarks/gpu_check.sh` on {results['started']}: GPU **{machine.get('gpu') or 'none'}**"
        f" ({gib(machine.get('gpu_memory_bytes'))}), driver {machine.get('driver') or '-'}, CUDA "
        f"{machine.get('cuda') or '-'}; {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('ram_gib')} GiB;"
        f" Python {machine.get('python')}, torch {machine.get('torch')}, transformers {packages.get('transformers')},"
        f" diffusers {diffusers}; the examples from huggingface/diffusers at {revision}."
        f" The whole check took {results['wall_s']:.0f} s of its {results['budget_s']} s."
    )


def report(results: dict) -> tuple[str, dict]:
    parts = results["parts"]
    lines = [BEGIN]
    if results["mode"] != "gpu":
        lines += ["", "> **Dry run on a CPU with the tiny models: these figures prove the script, not the GPU.**"]
    lines += [
        "",
        machine_line(results),
        "",
        "| what | invokeai-ti | diffusers example | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    judged: dict[str, bool | None] = {}
    sd15 = setting([parts["sd15_ours"], parts["sd15_example"]], {"resolution": 512, "precision": "fp16", "batch": 8})
    label = f"SD-1.5 {sd15['resolution']} px {sd15['precision']} batch {sd15['batch']}"
    rows, found = comparison(parts["sd15_ours"], parts["sd15_example"], label, speed_at_least=SPEED_SD15,
                             memory_at_most=MEMORY_RATIO, memory_limit=MEMORY_LIMIT, rss_at_most=RSS_RATIO)
    lines += rows
    judged.update(found)
    checkpointed = parts["sd15_ours_checkpointing"]
    lines.append(f"| the same, `--gradient_checkpointing` | {speed(checkpointed)}, "
                 f"{gib(checkpointed.get('cuda_peak_allocated') if measured(checkpointed) else None)} CUDA | | | | |")
    xl_ours, xl_example = parts["sdxl_ours_fp16"], parts["sdxl_example_bf16"]
    xl = setting([xl_ours, xl_example], {"resolution": 1024, "batch": 4})
    xl_fp16 = setting([xl_ours, parts["sdxl_example_fp16"]], {"precision": "fp16"})["precision"]
    xl_label = f"SDXL {xl['resolution']} px batch {xl['batch']}"
    rows, found = comparison(xl_ours, xl_example, f"{xl_label}, ours {xl_fp16} vs example bf16",
                             speed_at_least=SPEED_SDXL, memory_at_most=MEMORY_RATIO)
    lines += rows
    judged.update(found)
    rows, _ = comparison(parts["sdxl_ours_bf16"], xl_example, f"{xl_label}, bf16 vs bf16")
    lines += rows
    rows, _ = comparison(xl_ours, parts["sdxl_example_fp16"], f"{xl_label}, {xl_fp16} vs {xl_fp16}")
    lines += rows
    cat = parts["cat_toy_ours"]
    projected = cat_toy_projection(cat)
    judged[f"cat-toy projected <= {CAT_TOY_LIMIT:.0f} s"] = None if projected is None else projected <= CAT_TOY_LIMIT
    lines.append(
        f"| cat-toy ({CAT_TOY_STEPS} steps of batch 1 x accumulation 4), projected: first step + {CAT_TOY_STEPS} x "
        f"s/step, uncompiled | "
        + (f"{projected:.0f} s ({cat['first_step_s']:.1f} s + {CAT_TOY_STEPS} x {cat['median_step_s']:.4f} s)"
           if projected is not None else why_not(cat))
        + f" | | | <= {CAT_TOY_LIMIT:.0f} s | {verdict(judged[f'cat-toy projected <= {CAT_TOY_LIMIT:.0f} s'])} |"
    )
    resume = parts["resume"]
    identical = resume.get("bit_identical") if resume.get("status") == "ok" else None
    judged["--deterministic resume after SIGKILL bit-identical"] = identical
    if identical is None:
        text = why_not(resume)
    else:
        text = (f"killed at step {resume['killed_at_step']} of {resume['steps']}, resumed from step "
                f"{resume['resumed_from_step']}: " + ("bit-identical" if identical else
                                                      f"differs, max abs difference {resume['max_abs_diff']:.3g}"))
    lines.append(f"| `--deterministic` {resume.get('precision') or ''} run, SIGKILL and resume, against a run left "
                 f"alone | {text} | | | bit-identical | {verdict(identical)} |")
    for name, label in (("tests", "the CUDA-relevant tests"), ("learning", "the learning tests (SD-1 and SDXL)")):
        text, green = tests_line(parts[name])
        judged[f"{label} green"] = green
        lines.append(f"| {label} | {text} | | | green | {verdict(green)} |")
    probe = parts["probe"]
    if probe.get("status") == "ok":
        backends = ", ".join(f"{k.lower()} {v.split(':')[0]}" for k, v in (probe.get("backends") or {}).items())
        text = (f"memory-efficient attention: {'works' if probe['sdpa_efficient'] else 'does not work'}"
                f"{' (' + backends + ')' if backends else ''}; xFormers: {probe['xformers_reason']}; "
                f"batch {probe['batch_sd1']} for SD-1 ({probe['reason_sd1']}), {probe['batch_sdxl']} for SDXL")
    else:
        text = why_not(probe)
    lines.append(f"| the batch the form and the CLI pick here | {text} | | | | |")
    lines += ["", "Targets: " + "; ".join(f"{name}: {verdict(ok)}" for name, ok in judged.items()) + ".", "", END]
    return "\n".join(lines), judged


def rewrite(docs: Path, section: str) -> None:
    text = docs.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{docs} has no {BEGIN} ... {END} pair to write the table between.")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    docs.write_text(head + section + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="gpu_check.json written by benchmarks/gpu_check.sh")
    parser.add_argument("--docs", type=Path, help="rewrite the table between the gpu-check markers of this file")
    parser.add_argument("--allow-dry-run", action="store_true", help="write a dry run's figures too (for testing)")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    section, _ = report(results)
    print(section)
    if args.docs:
        if results["mode"] != "gpu" and not args.allow_dry_run:
            raise SystemExit("these are a dry run's figures (a CPU, the tiny models): not written into the docs")
        rewrite(args.docs, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
