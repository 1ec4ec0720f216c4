"""InvokeAI 4.x-7.x roots: models come from `databases/invokeai.db`, read without disturbing it.

The databases here are small hand-made ones in the shape InvokeAI writes (table `models`, a JSON
`config` per row); tests/test_invokeai_fixture.py checks the same reading on a database that
InvokeAI's own model manager wrote.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from invokeai_ti.cli import main
from invokeai_ti.errors import UserError
from invokeai_ti.invokeai_db import models_dir, read_model_records
from invokeai_ti.models import find_model, format_model_table, scan_models
from invokeai_ti.paths import RootLayout
from invokeai_ti.root_kind import RootKind
from tools.pipelines import build_tiny_pipeline

# The columns InvokeAI 4.x-7.x give the table; only `id` and `config` are stored, the rest are
# generated from the JSON, as in InvokeAI's own schema.
MODELS_TABLE = """
CREATE TABLE models (
    id TEXT NOT NULL PRIMARY KEY,
    base TEXT GENERATED ALWAYS as (json_extract(config, '$.base')) VIRTUAL NOT NULL,
    type TEXT GENERATED ALWAYS as (json_extract(config, '$.type')) VIRTUAL NOT NULL,
    path TEXT GENERATED ALWAYS as (json_extract(config, '$.path')) VIRTUAL NOT NULL,
    format TEXT GENERATED ALWAYS as (json_extract(config, '$.format')) VIRTUAL NOT NULL,
    name TEXT GENERATED ALWAYS as (json_extract(config, '$.name')) VIRTUAL NOT NULL,
    config TEXT NOT NULL
)
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("template") / "tiny-sd", token_dim=768)


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "invokeai"
    (folder / "databases").mkdir(parents=True)
    return folder


def key_for(name: str) -> str:
    """A key shaped like InvokeAI's (a hex digest), different for each name."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def record(name: str, path: str, *, base: str = "sd-1", type: str = "main", format: str = "diffusers",
           **extra: object) -> dict[str, object]:
    return {"key": key_for(name), "name": name, "base": base, "type": type, "format": format,
            "path": path, "description": f"{name} as InvokeAI describes it", **extra}


def write_database(root: Path, *records: dict[str, object], journal: str = "wal") -> Path:
    database = RootLayout(root).database
    with sqlite3.connect(database) as connection:
        connection.execute(f"PRAGMA journal_mode = {journal}")
        connection.execute(MODELS_TABLE)
        for entry in records:
            connection.execute("INSERT INTO models (id, config) VALUES (?, ?)", (entry["key"], json.dumps(entry)))
    connection.close()
    return database


def install(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


def write_checkpoint_file(target: Path) -> Path:
    """Listing never opens a checkpoint: InvokeAI's record already says its base."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"listing must not read this")
    return target


def test_main_models_are_listed_under_invokeais_names_with_base_and_format(root, template):
    sd15 = record("Stable Diffusion v1.5", "", variant="normal", prediction_type="epsilon")
    sd15["path"] = f"{sd15['key']}"
    install(template, root / "models" / str(sd15["key"]))
    sd2 = record("SD 2.1 768", "", base="sd-2", format="checkpoint", prediction_type="v_prediction")
    sd2["path"] = f"{sd2['key']}/v2-1_768.safetensors"
    checkpoint = write_checkpoint_file(root / "models" / str(sd2["path"]))
    xl = record("Juggernaut XL", "", base="sdxl", format="checkpoint")
    xl["path"] = f"{xl['key']}/juggernaut.safetensors"
    write_checkpoint_file(root / "models" / str(xl["path"]))
    write_database(
        root, sd15, sd2, xl,
        record("detail-lora", "lora/detail.safetensors", type="lora", format="lycoris"),
        record("ft-mse", "vae/ft-mse", type="vae"),
        record("psychedelic", "embeddings/psychedelic", type="embedding", format="embedding_folder"),
        record("canny", "controlnet/canny", type="controlnet"),
    )
    scan = scan_models(RootLayout(root))
    assert scan.kind is RootKind.INVOKEAI_4_PLUS
    assert [(m.name, m.base, m.format, m.token_dims, m.native_resolution) for m in scan.models] == [
        ("Stable Diffusion v1.5", "SD-1", "diffusers", (768,), 64),
        ("SD 2.1 768", "SD-2", "checkpoint", (1024,), 768),
        ("Juggernaut XL", "SDXL", "checkpoint", (768, 1280), 1024),
    ]
    assert scan.notes == []
    assert scan.models[0].path == (root / "models" / str(sd15["key"])).resolve()
    assert scan.models[0].description == "Stable Diffusion v1.5 as InvokeAI describes it"
    assert scan.models[1].path == checkpoint.resolve()
    row = format_model_table(scan.models).splitlines()[1]
    assert row.startswith("*  Stable Diffusion v1.5  SD-1  diffusers"), "InvokeAI's name, never the hash folder's"


def test_find_model_accepts_the_invokeai_name_and_the_key(root, template):
    entry = record("Stable Diffusion v1.5", "sd-1/main/Stable Diffusion v1.5")
    folder = install(template, root / "models" / "sd-1" / "main" / "Stable Diffusion v1.5")
    write_database(root, entry)
    layout = RootLayout(root)
    assert find_model("Stable Diffusion v1.5", layout).path == folder.resolve()
    assert find_model("stable diffusion v1.5", layout).path == folder.resolve()
    assert find_model(str(entry["key"]), layout).name == "Stable Diffusion v1.5"


def test_models_installed_in_place_outside_the_models_folder_are_listed(root, template, tmp_path):
    elsewhere = install(template, tmp_path / "my-models" / "dreamy")
    write_database(root, record("dreamy", str(elsewhere)))
    [model] = scan_models(RootLayout(root)).models
    assert (model.name, model.path) == ("dreamy", elsewhere.resolve())


@pytest.mark.parametrize("setting", ["relative", "absolute"])
def test_models_dir_of_invokeai_yaml_is_where_relative_paths_start(root, template, tmp_path, setting):
    folder = root / "big-disk" if setting == "relative" else tmp_path / "big-disk"
    value = "big-disk" if setting == "relative" else str(folder)
    (root / "invokeai.yaml").write_text(f"schema_version: 4.0.2\nmodels_dir: {value}\n", encoding="utf-8")
    install(template, folder / "abc123")
    write_database(root, record("on the big disk", "abc123"))
    assert models_dir(root) == folder
    [model] = scan_models(RootLayout(root)).models
    assert (model.name, model.path) == ("on the big disk", (folder / "abc123").resolve())


def test_a_model_folder_under_models_that_the_database_names_is_listed_once_by_that_name(root, template):
    """The folder scan also finds ``models/<key>/``; the database's name wins over the hash."""
    entry = record("Stable Diffusion v1.5", "")
    entry["path"] = str(entry["key"])
    install(template, root / "models" / str(entry["key"]))
    install(template, root / "models" / "dropped-in-by-hand")
    write_database(root, entry)
    assert [m.name for m in scan_models(RootLayout(root)).models] == ["Stable Diffusion v1.5", "dropped-in-by-hand"]


def test_refiners_and_bases_that_cannot_be_trained_are_shown_as_such_with_the_reason(root, template):
    write_database(
        root,
        record("sd15", "sd15"),
        record("flux-dev", "flux-dev.safetensors", base="flux", format="checkpoint"),
        record("sd3-medium", "sd3", base="sd-3"),
        record("xl-refiner", "refiner.safetensors", base="sdxl-refiner", format="checkpoint"),
        record("sd15-inpainting", "sd15-inpainting.safetensors", format="checkpoint", variant="inpaint"),
        record("sd15-nf4", "sd15-nf4", format="bnb_quantized_nf4"),
    )
    install(template, root / "models" / "sd15")
    layout = RootLayout(root)
    scan = scan_models(layout)
    assert [(m.name, m.base, m.trainable) for m in scan.models] == [
        ("sd15", "SD-1", True), ("flux-dev", "flux", False), ("sd3-medium", "sd-3", False),
        ("xl-refiner", "SDXL-refiner", False), ("sd15-inpainting", "SD-1", False), ("sd15-nf4", "SD-1", False),
    ]
    notes = "\n".join(scan.notes)
    assert ("flux-dev cannot be used: the model flux-dev has the base flux, and textual inversion "
            "here trains SD-1, SD-2 and SDXL models only") in notes
    assert "sd3-medium has the base sd-3" in notes
    assert "xl-refiner is an SDXL refiner" in notes
    assert "sd15-inpainting is an inpainting model" in notes
    assert "sd15-nf4 is stored as bnb_quantized_nf4" in notes
    rows = format_model_table(scan.models).splitlines()
    assert sum(row.endswith("(cannot be trained)") for row in rows) == 5
    assert find_model(None, layout).name == "sd15"
    with pytest.raises(UserError, match=r"flux-dev has the base flux.*; train on an SD-1, SD-2 or SDXL model instead"):
        find_model("flux-dev", layout)
    with pytest.raises(UserError, match=r"xl-refiner is an SDXL refiner.*; train on an SDXL base model instead"):
        find_model("xl-refiner", layout)


def test_two_models_of_one_name_are_both_listed_the_second_by_its_key(root, template):
    """Since 6.9 InvokeAI accepts a second model of a name; each must stay reachable."""
    first, second = record("twin", "one"), record("twin", "two", base="sd-2")
    second["key"] = key_for("other twin")
    install(template, root / "models" / "one")
    install(template, root / "models" / "two")
    write_database(root, first, second)
    layout = RootLayout(root)
    assert [m.name for m in scan_models(layout).models] == ["twin", second["key"]]
    assert find_model(str(second["key"]), layout).path == (root / "models" / "two").resolve()


def test_a_models_yaml_left_beside_the_database_is_not_read(root, template):
    """4.0 migrated models.yaml into the database; InvokeAI never reads it again, nor do we."""
    install(template, root / "models" / "sd-1" / "main" / "old")
    (root / "configs").mkdir()
    (root / "configs" / "models.yaml").write_text(
        "__metadata__: {version: 3.0.0}\nsd-1/main/stale-name: {path: sd-1/main/old, format: diffusers}\n",
        encoding="utf-8",
    )
    write_database(root, record("current name", "sd-1/main/old"))
    assert [m.name for m in scan_models(RootLayout(root)).models] == ["current name"]


def test_rows_still_in_the_wal_of_a_running_server_are_read_without_touching_the_database(root, template):
    """A running InvokeAI keeps its newest rows in invokeai.db-wal; reading must see them, write
    nothing, checkpoint nothing, and leave the writer free to go on writing."""
    install(template, root / "models" / "fresh")
    database = write_database(root)
    server = sqlite3.connect(database)
    try:
        server.execute("PRAGMA wal_autocheckpoint = 0")
        server.execute("INSERT INTO models (id, config) VALUES (?, ?)",
                       (key_for("fresh"), json.dumps(record("just installed", "fresh"))))
        server.commit()
        wal = database.with_name(database.name + "-wal")
        before = (database.read_bytes(), wal.read_bytes())
        assert [m.name for m in scan_models(RootLayout(root)).models] == ["just installed"]
        assert (database.read_bytes(), wal.read_bytes()) == before
        server.execute("INSERT INTO models (id, config) VALUES (?, ?)",
                       (key_for("later"), json.dumps(record("later", "later"))))
        server.commit()
    finally:
        server.close()


def test_a_locked_database_gives_a_note_and_other_sources_still_list(root, template):
    database = write_database(root, record("sd15", "sd15"), journal="delete")
    install(template, root / "models" / "by-hand")
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        scan = scan_models(RootLayout(root))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [m.name for m in scan.models] == ["by-hand"]
    [note] = scan.notes
    assert "is locked by another program" in note and note.endswith("or try again in a moment.")


@pytest.mark.parametrize("content, expected", [
    (b"this is not a database at all, just some bytes" * 100, "could not be read (file is not a database)"),
    (None, "has no table of models in the shape InvokeAI 4.0 and later write"),
])
def test_a_damaged_or_foreign_database_gives_a_note_never_a_traceback(root, content, expected):
    database = RootLayout(root).database
    if content is None:
        with sqlite3.connect(database) as connection:
            connection.execute("CREATE TABLE images (id TEXT)")
        connection.close()
    else:
        database.write_bytes(content)
    read = read_model_records(root)
    assert read.records == []
    [note] = read.notes
    assert expected in note and note.endswith("pass a model's folder or file to --model instead.")
    assert main(["--list-models", "--root", str(root)]) == 1


def test_a_row_that_is_not_a_model_record_is_skipped_with_a_note(root, template):
    install(template, root / "models" / "good")
    database = write_database(root, record("good", "good"))
    odd = [record("numbered", "numbered", base=1), record("", "nameless")]
    with sqlite3.connect(database) as connection:
        for entry in odd:
            connection.execute("INSERT INTO models (id, config) VALUES (?, ?)", (entry["key"], json.dumps(entry)))
    connection.close()
    read = read_model_records(root)
    assert [r.name for r in read.records] == ["good"]
    assert len(read.notes) == 2 and all("so it was skipped" in note for note in read.notes)


def test_a_database_row_whose_files_are_gone_is_listed_with_a_note(root):
    write_database(root, record("deleted by hand", "gone"))
    scan = scan_models(RootLayout(root))
    assert [m.name for m in scan.models] == ["deleted by hand"]
    [note] = scan.notes
    assert "deleted by hand cannot be used" in note and "does not exist" in note


def test_list_models_says_which_kind_of_root_it_found(root, template, tmp_path, capsys):
    install(template, root / "models" / "sd15")
    write_database(root, record("sd15", "sd15"))
    assert main(["--list-models", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"Found an InvokeAI 4.x-7.x root at {root}."
    assert "sd15" in out
    assert main(["--list-models", "--root", str(tmp_path / "empty")]) == 1
    assert capsys.readouterr().out.startswith(f"Found a new root (no InvokeAI files yet) at {tmp_path / 'empty'}.")


def test_the_forms_model_list_shows_invokeais_names_with_checkpoints_and_untrainable_ones_marked(root, template):
    from invokeai_ti.device import DeviceCaps
    from invokeai_ti.form.state import FormState

    install(template, root / "models" / "sd15")
    write_checkpoint_file(root / "models" / "xl.safetensors")
    write_database(root, record("Stable Diffusion v1.5", "sd15"),
                   record("Juggernaut XL", "xl.safetensors", base="sdxl", format="checkpoint"),
                   record("flux-dev", "flux.safetensors", base="flux", format="checkpoint"))
    layout = RootLayout(root)
    caps = DeviceCaps("cpu", "CPU", 1, fp16=False, bf16=True, xformers=False, xformers_reason="none")
    state = FormState.build({}, layout=layout, caps=caps, models=scan_models(layout).models, saved={})
    assert state.choice_labels("model") == [
        "Stable Diffusion v1.5 (SD-1)", "Juggernaut XL (SDXL checkpoint)", "flux-dev (flux checkpoint) (cannot be trained)",
    ]
    assert state.values["model"] == "Stable Diffusion v1.5"
