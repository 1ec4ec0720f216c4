"""Discovery: every model of one root, its registered ones first (the database or models.yaml),
then the SD pipelines under its ``models/`` folder and in the Hugging Face caches, gathered into
one ``ModelScan`` with a note for each model that cannot be used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..invokeai_db import models_dir
from ..paths import RootLayout
from ..root_kind import RootKind, detect_root_kind
from .describe import _is_sd_pipeline, describe_model
from .hub_cache import HUB_REPO_PREFIX, _cached_pipelines, hub_caches
from .problems import _model_problem
from .record import SOURCE_FOLDER, SOURCE_HUB, ModelInfo, ModelScan
from .registered import _database_entries, _models_yaml_entries

# InvokeAI 3.x puts pipelines in models/<base>/<type>/<name>; one level more is slack for
# hand-made layouts, while stopping well before a deep tree of unrelated files gets walked.
MODELS_SCAN_DEPTH = 4


def discover_models(layout: RootLayout) -> list[ModelInfo]:
    return scan_models(layout).models


def scan_models(layout: RootLayout) -> ModelScan:
    """The root's registered models first (InvokeAI 4.x and later: its database; 2.3 and 3.x:
    models.yaml), so the names and default the user chose win over what the folder scans find.

    A 4.x root never reads the models.yaml a migration from 3.x left beside its database, so
    neither do we: its entries may be long deleted.
    """
    scan = ModelScan(kind=detect_root_kind(layout.root))
    caches = hub_caches(layout)
    if scan.kind is RootKind.INVOKEAI_4_PLUS:
        for model, key in _database_entries(layout, scan.notes):
            listed = scan.add(model, key)
            if listed is not None and (not listed.trainable or not _exists(listed.path)):
                if (problem := _model_problem(listed)) is not None:
                    scan.notes.append(f"InvokeAI's model {listed.name} cannot be used: {problem[0]}.")
    else:
        for model, key in _models_yaml_entries(layout, caches, scan.notes):
            scan.add(model, key)
            if (problem := _model_problem(model)) is not None:
                scan.notes.append(f"The models.yaml entry {key} cannot be used: {problem[0]}.")
    folder = models_dir(layout.root)
    found = [
        (describe_model(pipeline.name, str(pipeline), pipeline, SOURCE_FOLDER),
         Path(os.path.relpath(pipeline, folder.resolve())).as_posix())
        for pipeline in _pipeline_folders(folder, MODELS_SCAN_DEPTH)
    ]
    found += [
        (describe_model(repo_id, repo_id, snapshot, SOURCE_HUB), repo_id)
        for repo_id, snapshot in _cached_pipelines(caches)
    ]
    for model, alternative_name in found:
        # Only refiners get a note here: a scanned folder that is merely incomplete is refused
        # with its reason when chosen, while a refiner is complete and would look trainable.
        listed = scan.add(model, alternative_name)
        if listed is not None and not listed.trainable and (problem := _model_problem(listed)):
            scan.notes.append(f"{listed.name} ({listed.location}) cannot be used: {problem[0]}.")
    return scan


def _exists(path: Path | None) -> bool:
    return path is not None and path.exists()


def _pipeline_folders(folder: Path, depth: int) -> Iterator[Path]:
    """SD pipeline folders below ``folder``, not descending into pipelines or hub caches."""
    try:
        children = sorted(child for child in folder.iterdir() if child.is_dir())
    except OSError:
        return
    for child in children:
        if child.name.startswith((".", HUB_REPO_PREFIX)):
            continue
        if (child / "model_index.json").is_file():
            if _is_sd_pipeline(child):
                yield child.resolve()
        elif depth > 1:
            yield from _pipeline_folders(child, depth - 1)
