"""benchmarks/gpu_check.sh is proven on a CPU before a GPU is lent: its dry run brings back every field.

A lent GPU comes for minutes, by chance; a check that breaks there wastes the loan. The dry run
runs every part of the check (install, probe, tests, learning tests, SIGKILL and resume, the timed
comparisons) with the tiny models on this CPU, and the results file must hold every figure the
GPU table is made from. The diffusers examples and the wheels are carried in ``.whl/``
(``gpu_check.sh --make-wheels``); where that folder is missing, as in CI, those parts must say so
instead of failing.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_benchmark_script import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
EXAMPLES = REPO / ".whl" / "examples"


def learning_tests() -> int:
    """The tests the check's learning part runs: each test function of the two learning files (none
    is parametrized), counted here so that adding a learning test does not break this check."""
    files = (REPO / "tests" / "test_learning.py", REPO / "tests" / "test_learning_sdxl.py")
    return sum(isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
               for file in files for node in ast.parse(file.read_text(encoding="utf-8")).body)
TIMED = ("sd15_ours", "sd15_example", "sdxl_ours_fp16", "sdxl_example_bf16", "cat_toy_ours")
LEFT_OUT_OF_A_DRY_RUN = ("sdxl_ours_bf16", "sdxl_example_fp16", "sd15_ours_checkpointing")
# What docs/benchmarks.md's GPU table is made of, part by part.
FIGURES = {
    "machine": ("gpu", "driver", "cuda", "torch", "cpu", "packages"),
    "probe": ("sdpa_efficient", "xformers", "batch_sd1", "batch_sdxl", "reason_sd1"),
    "tests": ("passed", "failed", "errors", "timeouts", "failures", "finished"),
    "learning": ("collected", "passed", "failed", "finished"),
    "resume": ("killed_at_step", "resumed_from_step", "bit_identical", "max_abs_diff"),
    **{name: ("median_step_s", "first_step_s", "peak_rss_bytes", "cuda_peak_allocated", "precision", "batch")
       for name in TIMED + LEFT_OUT_OF_A_DRY_RUN},
}


def gpu_check():
    return load_script(REPO / "benchmarks" / "gpu_check.py", "invokeai_ti_gpu_check")


def gpu_report():
    return load_script(REPO / "benchmarks" / "gpu_report.py", "invokeai_ti_gpu_report")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[dict, str]:
    folder = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--out", str(folder / "out"), "--work", str(folder / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=2400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((folder / "out" / "gpu_check.json").read_text()), done.stdout


@pytest.mark.slow
def test_the_dry_run_brings_back_every_field_of_every_part(dry_run):
    results, _ = dry_run
    assert results["mode"] == "dry-run"
    assert set(results["parts"]) == set(gpu_check().FIELDS)
    for name, fields in gpu_check().FIELDS.items():
        assert set(fields) <= set(results["parts"][name]), name
    for name, fields in FIGURES.items():
        assert set(fields) <= set(results["parts"][name]), name


@pytest.mark.slow
def test_every_part_of_the_dry_run_ran_or_says_why_not(dry_run):
    results, _ = dry_run
    parts = results["parts"]
    carried = (REPO / ".whl").is_dir()
    for name, part in parts.items():
        if name in LEFT_OUT_OF_A_DRY_RUN or (name == "install" and not carried) or (
                "example" in name and not EXAMPLES.is_dir()):
            assert part["status"] == "skipped" and part["reason"], name
        else:
            assert part["status"] == "ok", f"{name}: {part.get('reason')}\n{part.get('log_tail')}"
    for name in TIMED:
        part = parts[name]
        if part["status"] == "ok":
            assert part["median_step_s"] > 0 and part["first_step_s"] > 0 and part["peak_rss_bytes"] > 50 * 2**20
            assert part["device"] == "CPU" and part["cuda_peak_allocated"] is None
    assert parts["cat_toy_ours"]["batch"] == 1 and parts["cat_toy_ours"]["accumulation"] == 4
    assert parts["resume"]["killed_at_step"] < parts["resume"]["steps"]
    assert parts["resume"]["resumed_from_step"] < parts["resume"]["killed_at_step"]
    assert parts["resume"]["bit_identical"] is True, "a CPU resumes bit for bit"
    assert parts["tests"]["passed"] > 0 and parts["tests"]["failed"] == 0 and parts["tests"]["finished"]
    assert parts["learning"]["collected"] == learning_tests(), "every learning test is found (a dry run only collects them)"
    assert parts["probe"]["batch_sd1"] == 3 and parts["probe"]["sdpa_efficient"] is False
    if carried:
        # The wheels' own diffusers, installed beside (never into) this machine's environment.
        assert parts["install"]["versions"]["diffusers"]["from"].startswith(parts["install"]["target"])


@pytest.mark.slow
def test_the_report_writes_the_dry_runs_figures_between_the_markers_only_when_asked(dry_run, tmp_path):
    results, printed = dry_run
    report = gpu_report()
    assert report.BEGIN in printed and report.END in printed
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(results))
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"before\n{report.BEGIN}\nold table\n{report.END}\nafter\n")
    with pytest.raises(SystemExit, match="dry run"):
        report.main([str(path), "--docs", str(docs)])
    assert report.main([str(path), "--docs", str(docs), "--allow-dry-run"]) == 0
    text = docs.read_text()
    assert "old table" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert "Dry run on a CPU" in text and "| the CUDA-relevant tests | " in text


def blank_results(tmp_path: Path) -> dict:
    """What the check reports when no part left anything: every part "not run"."""
    out = tmp_path / "blank.json"
    gpu_check().main(["collect", "--parts", str(tmp_path), "--out", str(out), "--mode", "gpu", "--budget", "510",
                      "--started", "0"])
    return json.loads(out.read_text())


def timed(step_s: float, cuda: float, rss: float, **more) -> dict:
    return {"status": "ok", "median_step_s": step_s, "steps_per_s": 1 / step_s, "first_step_s": 20.0,
            "cuda_peak_allocated": cuda, "peak_rss_bytes": rss, "precision": "fp16", "batch": 8, "resolution": 512,
            **more}


def test_a_part_that_never_ran_is_reported_as_not_measured(tmp_path):
    results = blank_results(tmp_path)
    assert {part["status"] for part in results["parts"].values()} == {"not run"}
    section, judged = gpu_report().report(results)
    assert set(judged.values()) == {None}
    assert "**met**" not in section and "**missed**" not in section


def test_the_report_judges_each_ratio_against_its_target(tmp_path):
    report = gpu_report()
    results = blank_results(tmp_path)
    gb = 10**9
    results["parts"].update(
        sd15_ours=timed(0.1, 6 * gb, 3 * gb), sd15_example=timed(0.35, 8 * gb, 3.5 * gb),
        sdxl_ours_fp16=timed(0.5, 20 * gb, 8 * gb, batch=4), sdxl_example_bf16=timed(0.9, 22 * gb, 9 * gb, batch=4),
        cat_toy_ours=timed(0.05, 3 * gb, 3 * gb, batch=1),
    )
    _, judged = report.report(results)
    sd15 = "SD-1.5 512 px fp16 batch 8"
    assert judged[f"{sd15}: steps/s >= 3x"] is True  # 0.35 / 0.1 = 3.5x
    assert judged[f"{sd15}: peak CUDA <= 0.85x"] is True and judged[f"{sd15}: peak CUDA <= 8 GB"] is True
    assert judged[f"{sd15}: peak RSS <= 1x"] is True
    xl = "SDXL 512 px batch 4, ours fp16 vs example bf16"
    assert judged[f"{xl}: steps/s >= 2x"] is False  # 1.8x
    assert judged[f"{xl}: peak CUDA <= 0.85x"] is False  # 0.91x
    assert judged["cat-toy projected <= 180 s"] is True  # 20 s + 3000 x 0.05 s = 170 s
    assert report.cat_toy_projection(results["parts"]["cat_toy_ours"]) == pytest.approx(170.0)
