"""The InvokeAI root is found the way InvokeAI finds it, and its folders follow the trigger."""

from __future__ import annotations

from pathlib import Path

from invokeai_ti.paths import RootLayout, resolve_root


def test_root_flag_wins_over_everything(monkeypatch, tmp_path):
    monkeypatch.setenv("INVOKEAI_ROOT", str(tmp_path / "env"))
    assert resolve_root(tmp_path / "flag") == (tmp_path / "flag").resolve()


def test_invokeai_root_variable_comes_next(monkeypatch, tmp_path):
    monkeypatch.setenv("INVOKEAI_ROOT", str(tmp_path / "env"))
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / "venv-root" / ".venv"))
    assert resolve_root(None) == (tmp_path / "env").resolve()


def test_an_invokeai_virtual_environments_parent_is_the_root(monkeypatch, tmp_path):
    for marker in ("invokeai.yaml", "invokeai.init"):
        root = tmp_path / marker.replace(".", "-")
        (root / ".venv").mkdir(parents=True)
        (root / marker).write_text("")
        monkeypatch.setenv("VIRTUAL_ENV", str(root / ".venv"))
        assert resolve_root(None) == root.resolve()


def test_a_venv_without_invokeai_files_does_not_count(monkeypatch, tmp_path):
    (tmp_path / "project" / ".venv").mkdir(parents=True)
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / "project" / ".venv"))
    assert resolve_root(None) == (Path.home() / "invokeai").resolve()


def test_default_is_invokeai_in_the_home_folder():
    assert resolve_root(None) == (Path.home() / "invokeai").resolve()


def test_layout_follows_invokeai_and_the_trigger(tmp_path):
    layout = RootLayout(tmp_path)
    assert layout.models_yaml == tmp_path / "configs" / "models.yaml"
    assert layout.data_dir("cat") == tmp_path / "text-inversion-training-data" / "cat"
    assert layout.output_dir("cat") == tmp_path / "text-inversion-output" / "cat"
    assert layout.embedding_dir("cat") == tmp_path / "embeddings" / "cat"
    assert layout.preferences == tmp_path / "text-inversion-output" / "preferences.conf"
    assert not any(tmp_path.iterdir()), "nothing is created until something is written"
