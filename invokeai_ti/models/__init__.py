"""Which Stable Diffusion models can be trained, found where InvokeAI users already keep them.

Users come with an InvokeAI root (2.3 or 3.x ``configs/models.yaml``, 4.x-7.x's database, a
``models/`` folder) and often a Hugging Face cache; they expect ``--model`` to accept the names
InvokeAI shows them.
Discovery only reads folders and small JSON/YAML files: listing models must be instant, must work
offline, and must never start a multi-gigabyte download or load a weight.

Each module owns one concern, each importing only those before it: ``record`` (``ModelInfo`` and
``ModelScan``), ``describe`` (one model from its files), ``hub_cache`` (the Hugging Face caches),
``problems`` (why a model cannot be trained), ``registered`` (models.yaml entries and database
rows), ``scan`` (every model of a root) and ``choice`` (the model for a run, and the
``--list-models`` table). This module gathers the names the rest of invokeai-ti imports.
"""

from __future__ import annotations

from ..bases import BASE_SD1, BASE_SD2, BASE_SDXL, FORMAT_CHECKPOINT, FORMAT_DIFFUSERS
from .choice import default_model, find_model, format_model_table, no_model_message
from .describe import BASE_BY_TOKEN_WIDTH, describe_checkpoint, describe_model
from .hub_cache import hub_caches
from .problems import pipeline_problem
from .record import SOURCE_DATABASE, SOURCE_FOLDER, SOURCE_GIVEN, SOURCE_HUB, SOURCE_YAML, ModelInfo, ModelScan
from .registered import BASE_BY_INVOKEAI3_KEY
from .scan import discover_models, scan_models

__all__ = [
    "BASE_BY_INVOKEAI3_KEY", "BASE_BY_TOKEN_WIDTH", "BASE_SD1", "BASE_SD2", "BASE_SDXL", "FORMAT_CHECKPOINT",
    "FORMAT_DIFFUSERS", "SOURCE_DATABASE", "SOURCE_FOLDER", "SOURCE_GIVEN", "SOURCE_HUB", "SOURCE_YAML",
    "ModelInfo", "ModelScan", "default_model", "describe_checkpoint", "describe_model", "discover_models",
    "find_model", "format_model_table", "hub_caches", "no_model_message", "pipeline_problem", "scan_models",
]
