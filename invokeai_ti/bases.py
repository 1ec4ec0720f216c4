"""The names of the model bases and formats, shared by discovery (``models``) and the single-file
checkpoint reader (``single_file``), which sits below it and must not import it."""

from __future__ import annotations

BASE_SD1, BASE_SD2, BASE_SDXL, BASE_UNKNOWN = "SD-1", "SD-2", "SDXL", "unknown"
BASE_SDXL_REFINER = "SDXL-refiner"
FORMAT_DIFFUSERS, FORMAT_CHECKPOINT = "diffusers", "checkpoint"
