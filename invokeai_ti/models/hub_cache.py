"""The Hugging Face caches: where they are (the root's own, then the user's), which SD pipelines
they hold, and which snapshot a repo id names at a revision, found as huggingface_hub finds them
offline.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from ..paths import RootLayout
from .describe import _is_sd_pipeline
from .record import SOURCE_HUB, SOURCE_YAML, ModelInfo

HUB_REPO_PREFIX = "models--"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_caches(layout: RootLayout) -> list[Path]:
    """The root's own caches first (InvokeAI 2.3 downloads repo_ids to models/hub, its early
    releases to models/diffusers), then the user's.

    The user's cache is located exactly as huggingface_hub does, but from the environment at call
    time: huggingface_hub reads it once at import, which would miss later changes.
    """
    env = os.environ
    if explicit := env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        user_cache = Path(explicit)
    elif home := env.get("HF_HOME"):
        user_cache = Path(home) / "hub"
    else:
        user_cache = Path(env.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface" / "hub"
    caches = [layout.models / "hub", layout.models / "diffusers", user_cache.expanduser()]
    return list(dict.fromkeys(caches))


def _cached_pipelines(caches: list[Path]) -> Iterator[tuple[str, Path]]:
    for cache in caches:
        if not cache.is_dir():
            continue
        for repo in sorted(cache.glob(HUB_REPO_PREFIX + "*")):
            snapshot = _snapshot_of(repo)
            if snapshot is not None and _is_sd_pipeline(snapshot):
                yield repo.name[len(HUB_REPO_PREFIX):].replace("--", "/", 1), snapshot


def _cached_snapshot(repo_id: str, caches: list[Path]) -> Path | None:
    folder_name = HUB_REPO_PREFIX + repo_id.replace("/", "--")
    return next(
        (snapshot for cache in caches if (snapshot := _snapshot_of(cache / folder_name)) is not None),
        None,
    )


def _hub_repo(model: ModelInfo) -> str | None:
    """The repo id behind ``model`` when it comes from a Hugging Face cache (a hub id, or a
    models.yaml ``repo_id``), else None: a folder has only the version it holds."""
    in_cache = model.path is None or (
        model.path.parent.name == "snapshots" and model.path.parent.parent.name.startswith(HUB_REPO_PREFIX)
    )
    if model.source in (SOURCE_HUB, SOURCE_YAML) and in_cache and HUB_ID.match(model.location):
        return model.location
    return None


def _revision_snapshot(repo_id: str, revision: str, caches: list[Path]) -> Path | None:
    """The cached snapshot of a branch or tag (``refs/<revision>``) or of a full commit hash."""
    folder_name = HUB_REPO_PREFIX + repo_id.replace("/", "--")
    for cache in caches:
        repo = cache / folder_name
        try:
            commit = (repo / "refs" / revision).read_text(encoding="utf-8").strip()
        except OSError:
            commit = revision
        snapshot = repo / "snapshots" / commit
        if commit and "/" not in commit and (snapshot / "model_index.json").is_file():
            return snapshot.resolve()
    return None


def _snapshot_of(repo: Path) -> Path | None:
    """The revision ``refs/main`` names, as huggingface_hub would load offline, else the newest."""
    snapshots = repo / "snapshots"
    try:
        main = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        main = ""
    if main and (snapshots / main / "model_index.json").is_file():
        return (snapshots / main).resolve()
    if not snapshots.is_dir():
        return None
    complete = [s for s in snapshots.iterdir() if (s / "model_index.json").is_file()]
    return max(complete, key=lambda s: s.stat().st_mtime).resolve() if complete else None
