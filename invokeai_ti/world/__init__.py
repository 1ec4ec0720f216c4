"""A small world of coloured shapes, a text-to-image model that has learned it, and a judge.

Two models of the same world ship inside the package, so the demo, the learning tests and CI can
watch textual inversion teach a concept to either family without downloading or pretraining
anything: ``WORLD_MODEL`` in the SD-1 diffusers layout (one text encoder) and ``WORLD_MODEL_SDXL``
in the SDXL one (two text encoders, the pooled text and the time ids). The judge, the same for
both, says which colour and shape a picture shows.
"""

from __future__ import annotations

import json
from pathlib import Path

WORLD_MODEL: Path = Path(__file__).resolve().parent / "model"
WORLD_MODEL_SDXL: Path = Path(__file__).resolve().parent / "model_sdxl"
MARKER = "world.json"
MARKER_KIND = "invokeai-ti world"
JUDGE_WEIGHTS = "judge.safetensors"


def is_world_model(path: Path | str) -> bool:
    """Whether ``path`` is a world model folder: its ``world.json`` marker says so."""
    marker = Path(path) / MARKER
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("kind") == MARKER_KIND
    except (OSError, ValueError, AttributeError):
        return False
