"""Which InvokeAI an InvokeAI root belongs to, told from the files each version leaves there.

The versions keep their models and load embeddings in different ways (2.3 and 3.x a models.yaml,
4.x and later a database; 2.3 watches ``embeddings/``, 3.x imports an autoimport folder at
start-up, 4.x and later only what its model manager registered), so model discovery and the
install step both start by asking which kind of root they are looking at.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from .paths import RootLayout
from .yaml_file import YamlFileError, read_yaml


class RootKind(Enum):
    """The label is what the CLI and the form print after "Found"."""

    INVOKEAI_2_3 = "an InvokeAI 2.3 root"
    INVOKEAI_3 = "an InvokeAI 3.x root"
    INVOKEAI_4_PLUS = "an InvokeAI 4.x-7.x root"
    NEW = "a new root (no InvokeAI files yet)"


# 4.x and later start invokeai.yaml with this key; 3.x nests everything under "InvokeAI".
SCHEMA_VERSION_KEY = "schema_version"
INVOKEAI3_SECTION = "InvokeAI"
METADATA_KEY = "__metadata__"


def detect_root_kind(root: Path) -> RootKind:
    """The database decides first: a 3.x root migrated to 4.x keeps its old files beside it."""
    layout = RootLayout(root)
    if layout.database.is_file():
        return RootKind.INVOKEAI_4_PLUS
    if layout.invokeai_yaml.is_file():
        config = _read_or_none(layout.invokeai_yaml)
        if isinstance(config, dict) and SCHEMA_VERSION_KEY in config:
            return RootKind.INVOKEAI_4_PLUS
        return RootKind.INVOKEAI_3
    if layout.models_yaml.is_file():
        models = _read_or_none(layout.models_yaml)
        if isinstance(models, dict) and METADATA_KEY in models:
            return RootKind.INVOKEAI_3
        return RootKind.INVOKEAI_2_3
    if (root / "invokeai.init").is_file():
        return RootKind.INVOKEAI_2_3
    return RootKind.NEW


def found_line(root: Path, kind: RootKind | None = None) -> str:
    """What ``--list-models``, a training run and the form say first, so a user sees which
    InvokeAI was read (``kind`` when the caller has already detected it)."""
    return f"Found {(kind or detect_root_kind(root)).value} at {root}."


def invokeai_setting(root: Path, name: str) -> Any:
    """One setting of ``invokeai.yaml`` (``models_dir``, ``autoimport_dir``, ``multiuser`` ...).

    4.x and later keep settings at the top level; 3.x nests them one level down in sections
    under ``InvokeAI`` (``InvokeAI: Paths: models_dir``). None when the file or the setting is
    absent or the file cannot be read: every caller has InvokeAI's own default to fall back on.
    """
    config = _read_or_none(RootLayout(root).invokeai_yaml)
    if not isinstance(config, dict):
        return None
    if name in config:
        return config[name]
    sections = config.get(INVOKEAI3_SECTION)
    if isinstance(sections, dict):
        for section in sections.values():
            if isinstance(section, dict) and name in section:
                return section[name]
    return None


def _read_or_none(path: Path) -> Any:
    try:
        return read_yaml(path)
    except YamlFileError:
        return None
