"""Shared fixtures: tiny random SD and SDXL pipelines built once, and InvokeAI roots around them."""

from __future__ import annotations

import os

# Tests compare runs bit for bit, and the number of threads rounds float sums differently, so
# every test process computes with one thread, fixed (a trainer then never follows the load), and
# so does every training it starts, which inherits it. Set before torch is imported (below,
# through invokeai_ti). The machine's idle cores are used by running that many test processes
# side by side instead: `pytest -n auto` asks pytest_xdist_auto_num_workers, the trainer's rule.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
from pathlib import Path

import pytest
import yaml

from invokeai_ti.cpu_threads import threads_now
from invokeai_ti.demo import draw_sample_photos
from tools.pipelines import build_tiny_pipeline, build_tiny_sdxl_pipeline


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One test process per core that other programs leave idle (invokeai_ti.cpu_threads)."""
    return threads_now()


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test may read the developer's ~/invokeai, their Hugging Face cache or the network."""
    monkeypatch.delenv("INVOKEAI_ROOT", raising=False)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hub-cache")))
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path_factory):
    isolate(monkeypatch, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A complete diffusers SD-1-shaped folder with random weights (64-pixel native size)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_sdxl_model(tmp_path_factory) -> Path:
    """A complete diffusers SDXL-base-shaped folder with random weights: text encoders 32 and 48
    wide (clip_l, clip_g), 64-pixel native size."""
    return build_tiny_sdxl_pipeline(tmp_path_factory.mktemp("models") / "tiny-sdxl")


def build_root(
    root: Path, model: Path, name: str = "stable-diffusion-1.5", trigger: str | None = "psychedelic", images: int = 3
) -> Path:
    """An InvokeAI root at ``root`` with ``model`` registered under ``name`` and sample photos."""
    target = root / "models" / "diffusers" / name
    shutil.copytree(model, target)
    config = root / "configs" / "models.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    entry = {name: {"description": "tiny test model", "format": "diffusers",
                    "path": str(target.relative_to(root)), "default": True}}
    config.write_text(yaml.safe_dump(entry), encoding="utf-8")
    if trigger:
        draw_sample_photos(root / "text-inversion-training-data" / trigger, count=images, size=64)
    return root


@pytest.fixture
def make_root(tmp_path, tiny_model):
    """Build an InvokeAI root with the tiny model registered under ``name`` and sample photos."""

    def build(name: str = "stable-diffusion-1.5", trigger: str | None = "psychedelic", images: int = 3) -> Path:
        return build_root(tmp_path / "invokeai", tiny_model, name, trigger, images)

    return build
