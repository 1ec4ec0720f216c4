"""Our reading of a database that the real InvokeAI wrote, not one written by hand.

tests/fixtures/invokeai_db/make_fixture.py installed a tiny SD-1 diffusers model (moved by
InvokeAI into ``models/<key>/``), a tiny single-file checkpoint and an embedding (both in place)
through InvokeAI 6.14.2's model manager; ``invokeai.db`` is the database it left and
``installed.json`` what its REST API answered. The first tests read that committed file on every
run; the last does the same against a running server, whose newest rows are still in its WAL.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from invokeai_ti.cli import main
from invokeai_ti.invokeai_db import read_model_records
from invokeai_ti.models import BASE_BY_INVOKEAI3_KEY, FORMAT_CHECKPOINT, FORMAT_DIFFUSERS, find_model, scan_models
from invokeai_ti.paths import RootLayout
from invokeai_ti.root_kind import RootKind
from tests.fixtures.invokeai_db.make_fixture import (
    DIFFUSERS_NAME,
    FIXTURE_DATABASE,
    MANIFEST,
    SD1_WIDTH,
    install_tiny_models,
)
from tests.invokeai_server import invokeai_server  # noqa: F401  (a fixture)
from tools.pipelines import build_tiny_pipeline


@pytest.fixture(scope="module")
def installed() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("template") / "tiny-sd", token_dim=SD1_WIDTH)


@pytest.fixture
def root(tmp_path, installed, template) -> Path:
    """A root holding InvokeAI's database, with the folder it moved into ``models/<key>/`` made
    again (the weights were never committed); models installed in place keep their paths."""
    root = tmp_path / "invokeai"
    (root / "databases").mkdir(parents=True)
    shutil.copyfile(FIXTURE_DATABASE, RootLayout(root).database)
    for model in installed["models"]:
        if model["type"] == "main" and not Path(model["path"]).is_absolute():
            shutil.copytree(template, root / "models" / model["path"])
    return root


def main_models(installed: dict) -> list[dict]:
    return [model for model in installed["models"] if model["type"] == "main"]


def expected_path(root: Path, model: dict) -> Path:
    stored = Path(model["path"])
    return (stored if stored.is_absolute() else root / "models" / stored).resolve()


def check_listing(root: Path, installed: dict) -> None:
    """What InvokeAI's API said it installed is what we list: names, bases, formats, paths."""
    layout = RootLayout(root)
    scan = scan_models(layout)
    assert scan.kind is RootKind.INVOKEAI_4_PLUS
    listed = {model.name: model for model in scan.models}
    expected = main_models(installed)
    assert sorted(listed) == sorted(model["name"] for model in expected), "its main models by its names, no embedding"
    for model in expected:
        ours = listed[model["name"]]
        assert ours.base == BASE_BY_INVOKEAI3_KEY[model["base"]]
        assert ours.format == model["format"]
        assert ours.path == expected_path(root, model)
        assert ours.token_dim == SD1_WIDTH
        assert scan.lookup(model["key"]) is ours, "the key names the model too"
    assert {model["format"] for model in expected} == {FORMAT_DIFFUSERS, FORMAT_CHECKPOINT}
    diffusers = next(model for model in expected if model["format"] == FORMAT_DIFFUSERS)
    assert diffusers["name"] == DIFFUSERS_NAME and not Path(diffusers["path"]).is_absolute(), \
        "InvokeAI 6.9+ moved the folder into models/<key>/"
    assert find_model(DIFFUSERS_NAME, layout).path == expected_path(root, diffusers)
    assert find_model(diffusers["key"], layout).name == DIFFUSERS_NAME


def test_the_committed_database_was_written_by_invokeai_itself(installed):
    """Not a hand-made file: InvokeAI's own migrations table and its model records' fields."""
    connection = sqlite3.connect(f"{FIXTURE_DATABASE.as_uri()}?mode=ro", uri=True)
    try:
        migrations = connection.execute("SELECT COUNT(*) FROM migrations").fetchone()[0]
        configs = [json.loads(text) for (text,) in connection.execute("SELECT config FROM models")]
    finally:
        connection.close()
    assert installed["invokeai_version"] == "6.14.2" and migrations > 20
    assert all(config["hash"].startswith("blake3:") and "source_type" in config for config in configs)
    assert sorted(config["key"] for config in configs) == sorted(model["key"] for model in installed["models"])


def test_every_record_of_invokeais_database_is_read_as_its_api_answered(root, installed):
    read = read_model_records(root)
    assert read.notes == []
    ours = sorted((r.key, r.name, r.base, r.type, r.format, r.path) for r in read.records)
    assert ours == sorted(
        (m["key"], m["name"], m["base"], m["type"], m["format"], expected_path(root, m)) for m in installed["models"]
    )


def test_invokeais_main_models_are_listed_under_its_names_with_base_format_and_path(root, installed):
    check_listing(root, installed)


def test_list_models_on_invokeais_database_names_the_root_kind_and_the_models(root, installed, capsys):
    assert main(["--list-models", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Found an InvokeAI 4.x-7.x root at {root}.")
    for model in main_models(installed):
        assert model["name"] in out


@pytest.mark.slow
def test_a_running_invokeai_server_s_models_are_listed_from_its_wal_as_its_api_answers(invokeai_server, tmp_path):  # noqa: F811
    """The same install on a live server, read while it runs: its new rows are still in the WAL
    (a reader that ignores the WAL sees none of them), and we list them all."""
    installed = install_tiny_models(invokeai_server, tmp_path)
    database = RootLayout(invokeai_server.root).database
    ignoring_wal = sqlite3.connect(f"{database.as_uri()}?immutable=1", uri=True)
    try:
        in_main_file = {key for (key,) in ignoring_wal.execute("SELECT id FROM models")}
    finally:
        ignoring_wal.close()
    keys = {model["key"] for model in installed["models"]}
    assert keys - in_main_file, "every new row had already left the WAL, so this run proves nothing about it"
    check_listing(invokeai_server.root, installed)
    assert invokeai_server.models() and database.with_name("invokeai.db-wal").exists(), "the server goes on"
