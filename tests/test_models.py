"""Model discovery: models.yaml (2.3 and 3.x), the models/ folder, the Hugging Face cache."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from invokeai_ti.errors import UserError
from invokeai_ti.models import (
    ModelInfo,
    default_model,
    discover_models,
    find_model,
    format_model_table,
    pipeline_problem,
    scan_models,
)
from invokeai_ti.paths import RootLayout
from tools.pipelines import build_tiny_pipeline


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """One tiny SD-1-shaped pipeline (token width 32, 64-pixel native size) to copy from."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("template") / "tiny-sd")


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "invokeai"
    folder.mkdir()
    return folder


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def copy_pipeline(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


def cache_repo(cache: Path, repo_id: str, template: Path, revision: str = "abc", main: bool = True) -> Path:
    """Lay out ``repo_id`` the way huggingface_hub stores a download."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = copy_pipeline(template, repo / "snapshots" / revision)
    if main:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot


def write_models_yaml(root: Path, entries: object) -> None:
    config = root / "configs" / "models.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")


def edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


def names(root: Path) -> list[str]:
    return [model.name for model in discover_models(RootLayout(root))]


def test_invokeai23_yaml_path_entry_is_listed_with_its_settings_and_ckpt_is_ignored(root, template):
    folder = copy_pipeline(template, root / "models" / "diffusers" / "sd15")
    write_models_yaml(root, {
        "old-ckpt": {"weights": "models/ldm/v1-5.ckpt", "config": "configs/v1.yaml", "format": "ckpt"},
        "stable-diffusion-1.5": {"description": "my model", "path": "models/diffusers/sd15",
                                 "format": "diffusers", "default": True},
    })
    scan = scan_models(RootLayout(root))
    assert [m.name for m in scan.models] == ["stable-diffusion-1.5"]
    model = scan.models[0]
    assert (model.source, model.location) == ("models.yaml", "models/diffusers/sd15")
    assert model.path == folder.resolve()
    assert model.is_default and model.description == "my model"
    assert scan.notes == []


def test_yaml_repo_id_resolves_to_the_snapshot_refs_main_names(root, template, hub_cache):
    chosen = cache_repo(hub_cache, "org/name", template, revision="abc")
    stale = copy_pipeline(template, hub_cache / "models--org--name" / "snapshots" / "old")
    future = chosen.stat().st_mtime + 1000
    os.utime(stale, (future, future))
    write_models_yaml(root, {"mine": {"repo_id": "org/name", "format": "diffusers"}})
    models = discover_models(RootLayout(root))
    assert [(m.name, m.location, m.source) for m in models] == [("mine", "org/name", "models.yaml")]
    assert models[0].path == chosen.resolve()
    assert find_model("org/name", RootLayout(root)).name == "mine"


def test_yaml_repo_id_in_the_roots_own_hub_folder_is_found(root, template):
    snapshot = cache_repo(root / "models" / "hub", "org/name", template)
    write_models_yaml(root, {"mine": {"repo_id": "org/name", "format": "diffusers"}})
    assert find_model("mine", RootLayout(root)).path == snapshot.resolve()


def test_yaml_repo_id_not_downloaded_is_listed_but_find_model_says_how_to_download(root, hub_cache):
    write_models_yaml(root, {"sd15": {"repo_id": "runwayml/stable-diffusion-v1-5", "format": "diffusers"}})
    [model] = discover_models(RootLayout(root))
    assert model.path is None and model.token_dim is None
    assert "not in the local Hugging Face cache" in format_model_table([model])
    with pytest.raises(UserError, match="hf download runwayml/stable-diffusion-v1-5"):
        find_model("sd15", RootLayout(root))


def test_invokeai3_yaml_shows_short_names_and_accepts_full_keys(root, template):
    folder = copy_pipeline(template, root / "models" / "sd-1" / "main" / "My-Model")
    write_models_yaml(root, {
        "__metadata__": {"version": "3.0.0"},
        "sd-1/main/My-Model": {"path": "sd-1/main/My-Model", "format": "diffusers", "variant": "normal"},
        "sd-1/lora/some-lora": {"path": "sd-1/lora/some-lora.safetensors", "format": "lycoris"},
        "sd-1/vae/ft-mse": {"path": "sd-1/vae/ft-mse", "format": "diffusers"},
        "sd-1/main/a-checkpoint": {"path": "sd-1/main/a.safetensors", "format": "checkpoint"},
    })
    layout = RootLayout(root)
    scan = scan_models(layout)
    assert [(m.name, m.source) for m in scan.models] == [("My-Model", "models.yaml")]
    assert scan.notes == []
    assert find_model("sd-1/main/My-Model", layout).path == folder.resolve()
    assert find_model("my-model", layout).name == "My-Model"


def test_models_folder_is_scanned_four_levels_deep_for_sd_pipelines_only(root, template):
    copy_pipeline(template, root / "models" / "shallow")
    copy_pipeline(template, root / "models" / "sd-1" / "main" / "deep")
    copy_pipeline(template, root / "models" / "a" / "b" / "c" / "d" / "too-deep")
    copy_pipeline(template, root / "models" / "a" / "b" / "c" / "deepest")
    other = copy_pipeline(template, root / "models" / "kandinsky")
    edit_json(other / "model_index.json", _class_name="KandinskyPipeline")
    found = {m.name: m for m in discover_models(RootLayout(root))}
    assert sorted(found) == ["deep", "deepest", "shallow"]
    assert found["deep"].source == "models folder"
    assert found["deep"].path == (root / "models" / "sd-1" / "main" / "deep").resolve()


def test_same_name_in_two_models_folders_gets_its_relative_path_as_name(root, template):
    copy_pipeline(template, root / "models" / "sd-1" / "main" / "twin")
    copy_pipeline(template, root / "models" / "sd-2" / "main" / "twin")
    layout = RootLayout(root)
    assert names(root) == ["twin", "sd-2/main/twin"]
    assert find_model("sd-2/main/twin", layout).path == (root / "models" / "sd-2" / "main" / "twin").resolve()


def test_hub_cache_lists_sd_snapshots_by_repo_id_without_network(root, template, hub_cache, monkeypatch):
    snapshot = cache_repo(hub_cache, "org/sd-model", template, main=False)
    flux = cache_repo(hub_cache, "org/flux", template)
    edit_json(flux / "model_index.json", _class_name="FluxPipeline")
    (hub_cache / "models--org--text-only" / "snapshots" / "r1").mkdir(parents=True)

    def no_network(*args, **kwargs):
        raise AssertionError("discovery tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    models = discover_models(RootLayout(root))
    assert [(m.name, m.location, m.source, m.path) for m in models] == [
        ("org/sd-model", "org/sd-model", "hub cache", snapshot.resolve())
    ]


def test_hub_cache_falls_back_to_hf_home(root, template, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    cache_repo(tmp_path / "hf-home" / "hub", "org/sd-model", template)
    assert names(root) == ["org/sd-model"]


def test_duplicates_keep_the_first_source(root, template, hub_cache):
    copy_pipeline(template, root / "models" / "diffusers" / "folder-name")
    snapshot = cache_repo(hub_cache, "org/name", template)
    write_models_yaml(root, {
        "favourite": {"path": "models/diffusers/folder-name", "format": "diffusers"},
        "cached": {"path": str(snapshot), "format": "diffusers"},
    })
    models = discover_models(RootLayout(root))
    assert [(m.name, m.source) for m in models] == [("favourite", "models.yaml"), ("cached", "models.yaml")]


def make_info(name: str, is_default: bool = False) -> ModelInfo:
    return ModelInfo(name, name, Path(name), "models.yaml", "SD-1", 768, 512, "epsilon", is_default)


def test_default_model_prefers_last_used_then_default_marked_then_first():
    first, marked, last = make_info("first"), make_info("marked", is_default=True), make_info("last")
    models = [first, marked, last]
    assert default_model(models, last_used="last") is last
    assert default_model(models, last_used="gone") is marked
    assert default_model(models) is marked
    assert default_model([first, last]) is first
    assert default_model([]) is None


def test_find_model_without_a_name_uses_the_default_marked_entry(root, template):
    copy_pipeline(template, root / "models" / "diffusers" / "a")
    copy_pipeline(template, root / "models" / "diffusers" / "b")
    write_models_yaml(root, {
        "a": {"path": "models/diffusers/a", "format": "diffusers"},
        "b": {"path": "models/diffusers/b", "format": "diffusers", "default": True},
    })
    assert find_model(None, RootLayout(root)).name == "b"


def test_find_model_with_an_empty_root_says_how_to_get_a_model(root):
    with pytest.raises(UserError, match=r"No diffusers model was found under .*invokeai-ti --demo"):
        find_model(None, RootLayout(root))


def test_tiny_sd1_shaped_model_is_detected_from_its_configs(root, template):
    model = find_model(str(template), RootLayout(root))
    assert (model.source, model.name, model.path) == ("given", "tiny-sd", template.resolve())
    assert (model.base, model.token_dim, model.native_resolution, model.prediction_type) == (
        "SD-1", 32, 64, "epsilon"
    )


def test_sd2_is_detected_by_token_width_with_v_prediction_and_768_pixels(root, template, tmp_path):
    folder = copy_pipeline(template, tmp_path / "sd2")
    edit_json(folder / "text_encoder" / "config.json", hidden_size=1024)
    edit_json(folder / "scheduler" / "scheduler_config.json", prediction_type="v_prediction")
    edit_json(folder / "unet" / "config.json", sample_size=96)
    model = find_model(str(folder), RootLayout(root))
    assert (model.base, model.token_dim, model.native_resolution, model.prediction_type) == (
        "SD-2", 1024, 768, "v_prediction"
    )


def sdxl_copy(tiny_sdxl_model: Path, target: Path) -> Path:
    """The tiny SDXL pipeline with the configs of a real one: token widths 768 and 1280, 1024 px."""
    folder = copy_pipeline(tiny_sdxl_model, target)
    edit_json(folder / "text_encoder" / "config.json", hidden_size=768)
    edit_json(folder / "text_encoder_2" / "config.json", hidden_size=1280)
    edit_json(folder / "unet" / "config.json", sample_size=128)
    return folder


def refiner_copy(tiny_sdxl_model: Path, target: Path) -> Path:
    """Shaped like stable-diffusion-xl-refiner-1.0: only the second text encoder and tokenizer."""
    folder = copy_pipeline(tiny_sdxl_model, target)
    shutil.rmtree(folder / "text_encoder")
    shutil.rmtree(folder / "tokenizer")
    edit_json(folder / "model_index.json", _class_name="StableDiffusionXLImg2ImgPipeline",
              text_encoder=[None, None], tokenizer=[None, None], requires_aesthetics_score=True)
    edit_json(folder / "text_encoder_2" / "config.json", hidden_size=1280)
    return folder


def test_sdxl_folder_is_sdxl_with_both_token_widths_and_1024_pixels(root, tiny_sdxl_model, tmp_path):
    folder = sdxl_copy(tiny_sdxl_model, tmp_path / "sdxl")
    model = find_model(str(folder), RootLayout(root))
    assert (model.base, model.token_dim, model.token_dim_2) == ("SDXL", 768, 1280)
    assert model.token_dims == (768, 1280)
    assert (model.native_resolution, model.trainable) == (1024, True)


def test_tiny_sdxl_model_is_sdxl_with_its_own_widths(root, tiny_sdxl_model):
    model = find_model(str(tiny_sdxl_model), RootLayout(root))
    assert (model.base, model.token_dims, model.native_resolution) == ("SDXL", (32, 48), 64)


def test_sdxl_from_every_source_is_listed_with_base_widths_and_resolution(root, tiny_sdxl_model, hub_cache):
    sdxl_copy(tiny_sdxl_model, root / "models" / "sdxl" / "main" / "juggernaut-xl")
    sdxl_copy(tiny_sdxl_model, root / "models" / "sdxl" / "main" / "scanned-xl")
    cached = cache_repo(hub_cache, "stabilityai/stable-diffusion-xl-base-1.0", tiny_sdxl_model)
    edit_json(cached / "text_encoder" / "config.json", hidden_size=768)
    edit_json(cached / "text_encoder_2" / "config.json", hidden_size=1280)
    write_models_yaml(root, {
        "__metadata__": {"version": "3.0.0"},
        "sdxl/main/juggernaut-xl": {"path": "sdxl/main/juggernaut-xl", "format": "diffusers", "variant": "normal"},
    })
    scan = scan_models(RootLayout(root))
    assert scan.notes == []
    assert [(m.name, m.source, m.base, m.token_dims) for m in scan.models] == [
        ("juggernaut-xl", "models.yaml", "SDXL", (768, 1280)),
        ("scanned-xl", "models folder", "SDXL", (768, 1280)),
        ("stabilityai/stable-diffusion-xl-base-1.0", "hub cache", "SDXL", (768, 1280)),
    ]
    table = format_model_table(scan.models).splitlines()
    assert table[1].split() == ["*", "juggernaut-xl", "SDXL", "diffusers", "768+1280", "1024", "sdxl/main/juggernaut-xl"]
    assert find_model("sdxl/main/juggernaut-xl", RootLayout(root)).name == "juggernaut-xl"


def test_sdxl_refiner_is_listed_as_not_trainable_with_the_reason(root, template, tiny_sdxl_model):
    refiner_copy(tiny_sdxl_model, root / "models" / "sdxl-refiner" / "main" / "refiner")
    copy_pipeline(template, root / "models" / "sd-1" / "main" / "sd15")
    layout = RootLayout(root)
    scan = scan_models(layout)
    refiner = scan.lookup("refiner")
    assert (refiner.base, refiner.token_dims, refiner.trainable) == ("SDXL-refiner", (1280,), False)
    [note] = scan.notes
    assert note.startswith("refiner (") and "is an SDXL refiner, which cannot be trained" in note
    row = next(line for line in format_model_table(scan.models).splitlines() if line.split()[0] == "refiner")
    assert row.split()[:4] == ["refiner", "SDXL-refiner", "diffusers", "1280"] and row.endswith("(cannot be trained)")
    assert default_model(scan.models).name == "sd15"
    with pytest.raises(UserError) as caught:
        find_model("refiner", layout)
    message = str(caught.value)
    assert "is an SDXL refiner, which cannot be trained" in message
    assert message.endswith("; train on an SDXL base model instead.")


def test_invokeai3_refiner_entry_is_refused_as_a_refiner_even_before_download(root, hub_cache):
    write_models_yaml(root, {
        "__metadata__": {"version": "3.0.0"},
        "sdxl-refiner/main/sdxl-refiner-1.0": {"repo_id": "stabilityai/stable-diffusion-xl-refiner-1.0",
                                               "format": "diffusers"},
    })
    layout = RootLayout(root)
    scan = scan_models(layout)
    [model] = scan.models
    assert (model.base, model.path, model.native_resolution) == ("SDXL-refiner", None, 1024)
    assert not model.trainable
    assert scan.notes == [
        "The models.yaml entry sdxl-refiner/main/sdxl-refiner-1.0 cannot be used: the model sdxl-refiner-1.0 is an "
        "SDXL refiner, which cannot be trained: it has only the second of SDXL's two text encoders and "
        "only refines images an SDXL base model made."
    ]
    with pytest.raises(UserError, match="^The model sdxl-refiner-1.0 is an SDXL refiner.*train on an SDXL base model instead"):
        find_model("sdxl-refiner-1.0", layout)


@pytest.mark.parametrize(
    ("removed", "expected"),
    [
        ("tokenizer_2", "is missing its tokenizer_2 (tokenizer_2/vocab.json and tokenizer_2/merges.txt"),
        ("text_encoder_2/config.json", "is missing its text_encoder_2 (text_encoder_2/config.json)"),
        ("text_encoder_2/model.safetensors", "is missing the weights of its text_encoder_2"),
    ],
)
def test_sdxl_folder_missing_part_of_its_second_encoder_names_it(
    root, tiny_sdxl_model, tmp_path, removed, expected
):
    folder = copy_pipeline(tiny_sdxl_model, tmp_path / "broken-xl")
    remove(folder / removed)
    with pytest.raises(UserError) as caught:
        find_model(str(folder), RootLayout(root))
    assert expected in str(caught.value)


def test_resolution_falls_back_to_the_base_when_the_unet_does_not_say(root, template, tmp_path):
    folder = copy_pipeline(template, tmp_path / "sd1")
    edit_json(folder / "text_encoder" / "config.json", hidden_size=768)
    config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    del config["sample_size"]
    (folder / "unet" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    model = find_model(str(folder), RootLayout(root))
    assert (model.base, model.token_dim, model.native_resolution) == ("SD-1", 768, 512)


def test_unknown_name_lists_the_known_names(root, template):
    copy_pipeline(template, root / "models" / "alpha")
    copy_pipeline(template, root / "models" / "beta")
    with pytest.raises(UserError) as caught:
        find_model("gamma", RootLayout(root))
    message = str(caught.value)
    assert message.startswith("Unknown model 'gamma'. Known models: alpha, beta.")
    assert "invokeai-ti --list-models" in message


def test_hub_id_not_in_the_cache_says_how_to_download_it(root, hub_cache):
    with pytest.raises(UserError) as caught:
        find_model("stabilityai/stable-diffusion-2-1", RootLayout(root))
    message = str(caught.value)
    assert "not in the local Hugging Face cache" in message
    assert "hf download stabilityai/stable-diffusion-2-1" in message


def test_hub_id_in_the_cache_is_found_even_when_not_listed(root, template, hub_cache):
    snapshot = cache_repo(hub_cache, "org/custom", template)
    edit_json(snapshot / "model_index.json", _class_name="CustomPipeline")
    model = find_model("org/custom", RootLayout(root))
    assert (model.source, model.path) == ("hub cache", snapshot.resolve())


MAIN_COMMIT, V2_COMMIT = "a" * 40, "b" * 40


def two_revisions(hub_cache: Path, template: Path) -> tuple[Path, Path]:
    """``org/name`` cached at two commits: ``refs/main`` names one, the tag ``refs/v2`` the other.

    The v2 commit's text encoder maps the initializer ``*`` to a row of 0.5s, so a run can tell
    which commit it trained on.
    """
    from transformers import CLIPTextModel, CLIPTokenizer

    main_snapshot = cache_repo(hub_cache, "org/name", template, revision=MAIN_COMMIT)
    v2_snapshot = copy_pipeline(template, hub_cache / "models--org--name" / "snapshots" / V2_COMMIT)
    (hub_cache / "models--org--name" / "refs" / "v2").write_text(V2_COMMIT, encoding="utf-8")
    star = CLIPTokenizer.from_pretrained(str(v2_snapshot / "tokenizer")).convert_tokens_to_ids("*</w>")
    encoder = CLIPTextModel.from_pretrained(str(v2_snapshot / "text_encoder"))
    encoder.get_input_embeddings().weight.data[star] = 0.5
    encoder.save_pretrained(str(v2_snapshot / "text_encoder"))
    return main_snapshot.resolve(), v2_snapshot.resolve()


def test_revision_picks_the_cached_snapshot_of_a_tag_or_commit_instead_of_main(root, template, hub_cache):
    main_snapshot, v2_snapshot = two_revisions(hub_cache, template)
    write_models_yaml(root, {"mine": {"repo_id": "org/name", "format": "diffusers"}})
    layout = RootLayout(root)
    assert find_model("org/name", layout).path == main_snapshot
    assert find_model("org/name", layout, "v2").path == v2_snapshot
    assert find_model("org/name", layout, V2_COMMIT).path == v2_snapshot
    assert find_model("org/name", layout, "main").path == main_snapshot
    assert find_model("mine", layout, "v2").path == v2_snapshot, "a models.yaml repo_id entry too"
    with pytest.raises(UserError) as caught:
        find_model("org/name", layout, "v3")
    assert "Revision v3 of org/name is not in the local Hugging Face cache" in str(caught.value)
    assert "hf download org/name --revision v3" in str(caught.value)


def test_revision_of_a_folder_is_refused_since_a_folder_holds_one_version(root, template):
    folder = copy_pipeline(template, root / "models" / "diffusers" / "sd15")
    with pytest.raises(UserError) as caught:
        find_model(str(folder), RootLayout(root), "v2")
    assert str(caught.value).startswith(f"--revision v2 picks a version of a Hugging Face repo id, but sd15 is the folder {folder}")
    assert str(caught.value).endswith("leave --revision out.")


def test_training_with_revision_trains_on_that_commits_weights(root, template, hub_cache, tmp_path):
    """--revision used to reach only from_pretrained, which ignores it for the refs/main folder
    find_model had already chosen: the run trained on main whatever was asked."""
    import torch

    from invokeai_ti.cli import main
    from invokeai_ti.demo import draw_sample_photos

    two_revisions(hub_cache, template)
    data = draw_sample_photos(tmp_path / "photos", count=2, size=64)[0].parent
    common = [f"--root={root}", "--model=org/name", "--placeholder_token=rev", f"--train_data_dir={data}",
              "--resolution=64", "--train_batch_size=1", "--gradient_accumulation_steps=1",
              "--max_train_steps=1", "--learning_rate=1e-6", "--no-scale_lr", "--validation_prompt=none",
              "--seed=1"]
    for revision, row in ((["--revision=v2"], 0.5), ([], None)):
        assert main([*common, f"--output_dir={tmp_path / 'out' / str(row)}", *revision]) == 0
        vector = torch.load(root / "embeddings" / "rev" / "learned_embeds.bin", weights_only=True)["<rev>"]
        # One AdamW step moves each element by about the learning rate (1e-6) from the initializer's row.
        assert torch.allclose(vector, torch.full_like(vector, 0.5), atol=1e-4) == (row == 0.5)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


@pytest.mark.parametrize(
    ("removed", "expected"),
    [
        ("unet/config.json", "is missing its unet (unet/config.json)"),
        ("scheduler", "is missing its scheduler (scheduler/scheduler_config.json)"),
        ("tokenizer", "is missing its tokenizer (tokenizer/vocab.json and tokenizer/merges.txt"),
        ("text_encoder/model.safetensors", "is missing the weights of its text_encoder"),
        ("vae/diffusion_pytorch_model.safetensors", "is missing the weights of its vae"),
        ("model_index.json", "is not a diffusers pipeline: it has no model_index.json"),
    ],
)
def test_incomplete_folder_names_the_missing_part(root, template, tmp_path, removed, expected):
    folder = copy_pipeline(template, tmp_path / "broken")
    remove(folder / removed)
    assert expected in pipeline_problem(folder)
    with pytest.raises(UserError) as caught:
        find_model(str(folder), RootLayout(root))
    message = str(caught.value)
    assert message.startswith("The folder") and expected in message and message.endswith(".")


def test_complete_folder_has_no_problem(template):
    assert pipeline_problem(template) is None


def test_folder_holding_only_a_checkpoint_points_at_the_file(root, tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="only the single-file checkpoint model.safetensors; pass the file .*itself"):
        find_model(str(folder), RootLayout(root))
    with pytest.raises(UserError, match="could not be read as a checkpoint"):
        find_model(str(folder / "model.safetensors"), RootLayout(root))


def test_missing_folder_says_it_does_not_exist(root, tmp_path):
    assert pipeline_problem(tmp_path / "nowhere") == f"the folder {tmp_path / 'nowhere'} does not exist"
    with pytest.raises(UserError, match="does not exist"):
        find_model(str(tmp_path / "nowhere"), RootLayout(root))


def test_yaml_entry_pointing_nowhere_is_noted_and_refused_by_name(root):
    write_models_yaml(root, {"ghost": {"path": "models/diffusers/ghost", "format": "diffusers"}})
    layout = RootLayout(root)
    scan = scan_models(layout)
    assert any("ghost" in note and "does not exist" in note for note in scan.notes)
    with pytest.raises(UserError, match="ghost does not exist"):
        find_model("ghost", layout)


@pytest.mark.parametrize(
    "text",
    ["sd15: {path: [unclosed\n", "- just\n- a list\n", "sd15: not-a-mapping\nbroken: {format: diffusers}\n"],
)
def test_malformed_models_yaml_is_skipped_and_other_sources_still_work(root, template, text):
    copy_pipeline(template, root / "models" / "scanned")
    (root / "configs").mkdir()
    (root / "configs" / "models.yaml").write_text(text, encoding="utf-8")
    layout = RootLayout(root)
    scan = scan_models(layout)
    assert [m.name for m in scan.models] == ["scanned"]
    assert scan.notes
    assert find_model(None, layout).name == "scanned"


def test_model_table_shows_name_base_format_width_resolution_location_and_marks_the_default(root, template):
    copy_pipeline(template, root / "models" / "diffusers" / "tiny")
    sd2 = copy_pipeline(template, root / "models" / "diffusers" / "big")
    edit_json(sd2 / "text_encoder" / "config.json", hidden_size=1024)
    write_models_yaml(root, {
        "tiny": {"path": "models/diffusers/tiny", "format": "diffusers"},
        "big": {"path": "models/diffusers/big", "format": "diffusers", "default": True},
    })
    table = format_model_table(discover_models(RootLayout(root))).splitlines()
    assert table[0].split() == ["NAME", "BASE", "FORMAT", "TOKEN", "WIDTH", "RESOLUTION", "LOCATION"]
    assert table[1].split() == ["tiny", "SD-1", "diffusers", "32", "64", "models/diffusers/tiny"]
    assert table[2].split() == ["*", "big", "SD-2", "diffusers", "1024", "64", "models/diffusers/big"]
    assert table[-1].startswith("* ")
