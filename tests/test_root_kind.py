"""Which InvokeAI a root belongs to: each version's own files decide it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from invokeai_ti.root_kind import RootKind, detect_root_kind, invokeai_setting


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_an_empty_folder_is_a_new_root(tmp_path):
    assert detect_root_kind(tmp_path) is RootKind.NEW


def test_a_models_yaml_without_metadata_is_an_invokeai_2_3_root(tmp_path):
    write(tmp_path / "configs" / "models.yaml", "stable-diffusion-1.5:\n  path: models/sd15\n  format: diffusers\n")
    assert detect_root_kind(tmp_path) is RootKind.INVOKEAI_2_3


def test_an_invokeai_init_alone_is_an_invokeai_2_3_root(tmp_path):
    write(tmp_path / "invokeai.init", "--outdir=outputs\n")
    assert detect_root_kind(tmp_path) is RootKind.INVOKEAI_2_3


def test_invokeai_yaml_with_sections_and_a_models_yaml_with_metadata_is_an_invokeai_3_root(tmp_path):
    write(tmp_path / "invokeai.yaml", "InvokeAI:\n  Paths:\n    models_dir: my-models\n    autoimport_dir: imports\n")
    write(tmp_path / "configs" / "models.yaml", "__metadata__:\n  version: 3.0.0\n")
    assert detect_root_kind(tmp_path) is RootKind.INVOKEAI_3
    assert invokeai_setting(tmp_path, "models_dir") == "my-models"
    assert invokeai_setting(tmp_path, "autoimport_dir") == "imports"


def test_a_models_yaml_with_metadata_alone_is_an_invokeai_3_root(tmp_path):
    write(tmp_path / "configs" / "models.yaml", "__metadata__:\n  version: 3.0.0\n")
    assert detect_root_kind(tmp_path) is RootKind.INVOKEAI_3


def test_a_database_makes_an_invokeai_4_plus_root_even_beside_old_files(tmp_path):
    write(tmp_path / "invokeai.yaml", "InvokeAI:\n  Paths:\n    models_dir: models\n")
    write(tmp_path / "configs" / "models.yaml", "__metadata__:\n  version: 3.0.0\n")
    (tmp_path / "databases").mkdir()
    sqlite3.connect(tmp_path / "databases" / "invokeai.db").close()
    assert detect_root_kind(tmp_path) is RootKind.INVOKEAI_4_PLUS


def test_invokeai_yaml_with_a_schema_version_is_an_invokeai_4_plus_root_before_its_first_start(tmp_path):
    write(tmp_path / "invokeai.yaml", "# Internal metadata - do not edit:\nschema_version: 4.0.2\n\nmodels_dir: /data/models\n")
    assert detect_root_kind(tmp_path) is RootKind.INVOKEAI_4_PLUS
    assert invokeai_setting(tmp_path, "models_dir") == "/data/models"
    assert invokeai_setting(tmp_path, "autoimport_dir") is None


def test_an_unreadable_invokeai_yaml_gives_no_settings(tmp_path):
    write(tmp_path / "invokeai.yaml", "models_dir: [unclosed\n")
    assert invokeai_setting(tmp_path, "models_dir") is None
    assert detect_root_kind(tmp_path) is RootKind.INVOKEAI_3
