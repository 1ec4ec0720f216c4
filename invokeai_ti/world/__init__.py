"""A small world of coloured shapes, a text-to-image model that has learned it, and a judge.

The model ships inside the package (``WORLD_MODEL``, the SD-1 diffusers layout, under 10 MB) so the
demo, the learning tests and CI can watch textual inversion teach it a concept without
downloading or pretraining anything; the judge says which colour and shape a picture shows.
"""

from __future__ import annotations

import json
from pathlib import Path

WORLD_MODEL: Path = Path(__file__).resolve().parent / "model"
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
