"""The contract with every tool that loads the embedding files this trainer writes.

Each reader below applies one tool's own loading rule, as REFERENCE.md ("Embedding files: who loads
what") records it from that tool's code, to the files a real training writes, and checks the trigger
the tool registers, how many vectors it reads and their width. diffusers is not imitated: its own
``load_textual_inversion`` runs on every file. A row missing from a tool's table is a file docs/files.md
does not send that tool's users to.

The readers load with ``weights_only=True``, as InvokeAI 4+ does on current torch: stricter than
InvokeAI 2.3, so a file that passes here loads there too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import build_root, isolate
from safetensors.torch import load_file, save_file
from test_training import typical_command

from invokeai_ti.cli import main
from invokeai_ti.outputs.embeddings import Embedding, install_embedding, load_embedding, save_embedding_files

INSTALLED = "embeddings/psychedelic/learned_embeds.bin"
OUT = "text-inversion-output/psychedelic/"
# The diffusers example's files, {token: tensor[n, dim]}: the vectors every other file must hold.
FINAL = OUT + "learned_embeds.safetensors"
SNAPSHOT = OUT + "learned_embeds-steps-2.safetensors"

# File -> the trigger InvokeAI 2.3 registers from it (a prompt uses it as written).
INVOKEAI_23 = {
    INSTALLED: "<psychedelic>",
    OUT + "learned_embeds.bin": "<psychedelic>",
    OUT + "psychedelic.safetensors": "psychedelic",
    OUT + "learned_embeds-steps-2.bin": "<psychedelic>",
    OUT + "psychedelic-steps-2.safetensors": "psychedelic-steps-2",
}
# What is imported into InvokeAI 3.x+ (the installed embedding: its folder) -> the trigger.
INVOKEAI_3_AND_LATER = {
    "embeddings/psychedelic": "<psychedelic>",
    OUT + "psychedelic.safetensors": "<psychedelic>",
    OUT + "psychedelic-steps-2.safetensors": "<psychedelic-steps-2>",
}
# File copied into AUTOMATIC1111's or ComfyUI's embeddings folder -> the trigger (kohya: the same).
A1111_COMFYUI_KOHYA = {
    OUT + "psychedelic.safetensors": "psychedelic",
    OUT + "psychedelic-steps-2.safetensors": "psychedelic-steps-2",
}
# File -> the token= diffusers must be given (None: the file names the token itself).
DIFFUSERS = {
    INSTALLED: None,
    OUT + "learned_embeds.bin": None,
    FINAL: None,
    OUT + "psychedelic.safetensors": "<psychedelic>",
    OUT + "learned_embeds-steps-2.bin": None,
    SNAPSHOT: None,
    OUT + "psychedelic-steps-2.safetensors": "<psychedelic>",
}
INVOKEAI_BASES = {768: "sd-1", 1024: "sd-2", 1280: "sdxl"}


@dataclass(frozen=True)
class Reading:
    """What a tool makes of a file: the trigger it registers and the vectors it injects."""

    trigger: str
    count: int
    width: int
    vectors: torch.Tensor


def read_any(path: Path) -> dict:
    """InvokeAI 2.3's rule, shared by the others: .pt/.ckpt/.bin are torch files, the rest safetensors."""
    if path.suffix in (".pt", ".ckpt", ".bin"):
        return torch.load(path, map_location="cpu", weights_only=True)
    return load_file(str(path))


def first(values: dict) -> torch.Tensor:
    return next(iter(values.values()))


def invokeai_23_read(path: Path) -> Reading:
    """InvokeAI 2.3's v1-v4 parsing, chosen by the keys present."""
    data = read_any(path)
    if all(key in data for key in ("string_to_token", "string_to_param", "name", "step")):
        assert {"sd_checkpoint", "sd_checkpoint_name"} <= data.keys(), "v1 reads both; a missing key crashes it"
        vectors = first(data["string_to_param"])
        return Reading(data["name"], vectors.size()[0], vectors.size()[1], vectors)
    if "string_to_token" in data and "string_to_param" in data:
        token = next(iter(data["string_to_token"]))
        vectors = data["string_to_param"][token]
        return Reading(path.stem if token == "*" else token, vectors.size()[0], vectors.size()[1], vectors)
    if "emb_params" in data:
        vectors = data["emb_params"]
        return Reading(path.stem, vectors.size()[0], vectors.size()[1], vectors)
    token, vector = list(data.items())[-1]
    # v4 takes every value as one 1-D vector: a [1, 768] tensor reads as width 1.
    return Reading(token, 1, vector.size()[0], vector.reshape(1, -1) if vector.dim() == 1 else vector)


def invokeai_23_startup(embeddings: Path, model_width: int) -> tuple[dict[str, Reading], list[str]]:
    """InvokeAI 2.3 starting: every file under ``embeddings/``, the triggers and the notices."""
    triggers: dict[str, Reading] = {}
    notices: list[str] = []
    for folder, _, names in os.walk(embeddings):
        for name in sorted(names):
            path = Path(folder) / name
            try:
                reading = invokeai_23_read(path)
            except Exception as error:
                notices.append(f"unrecognized embedding file format: {path}: {error}")
                continue
            if reading.width != model_width:
                notices.append(f"{path} incompatible token dimension: {model_width} vs {reading.width}")
                continue
            trigger = reading.trigger
            if trigger in triggers:
                trigger = path.parent.name if name == "learned_embeds.bin" else path.stem
                notices.append(f"{path}: trigger {reading.trigger} is already claimed; use {trigger}")
            triggers[trigger] = reading
    return triggers, notices


def invokeai_3_and_later_import(path: Path) -> Reading:
    """The model probe's width rule and the loader's vectors; the trigger is the model's name."""
    file = path / "learned_embeds.bin" if path.is_dir() else path
    data = read_any(file)
    if "string_to_token" in data:
        width = first(data["string_to_param"]).shape[-1]
    elif "emb_params" in data:
        width = data["emb_params"].shape[-1]
    else:
        width = first(data).shape[0]
    if "string_to_param" in data:
        vectors = first(data["string_to_param"])
    elif "emb_params" in data:
        vectors = data["emb_params"]
    else:
        vectors = first(data)
        vectors = vectors.unsqueeze(0) if vectors.dim() == 1 else vectors
    name = path.name if path.is_dir() else path.stem
    return Reading(f"<{name}>", vectors.shape[0], width, vectors)


def invokeai_base_model(width: int) -> str:
    return INVOKEAI_BASES.get(width, f"unrecognized token dimension {width}")


def a1111_comfyui_read(path: Path) -> Reading:
    """string_to_param, else a single-key dict (A1111 refuses several; ComfyUI takes the first).

    Their clip_l / clip_g branches are for SDXL, whose files tests/test_sdxl_files.py checks.
    """
    data = read_any(path)
    if "string_to_param" in data:
        vectors = first(data["string_to_param"])
    else:
        assert len(data) == 1, "AUTOMATIC1111 refuses a file with several terms"
        vectors = first(data)
    vectors = vectors.unsqueeze(0) if vectors.dim() == 1 else vectors
    return Reading(path.stem, vectors.shape[0], vectors.shape[-1], vectors)


def kohya_read(path: Path) -> Reading:
    """emb_params from a .safetensors, string_to_param from an A1111 .pt; the trigger is the file name."""
    data = read_any(path)
    vectors = data["emb_params"] if path.suffix == ".safetensors" else data["string_to_param"]["*"]
    return Reading(path.stem, vectors.shape[0], vectors.shape[-1], vectors)


def diffusers_read(pipe, path: Path, token: str | None) -> Reading:
    """diffusers' own loader, then what it added to the tokenizer and the text encoder."""
    tokenizer = pipe.tokenizer
    before = set(tokenizer.added_tokens_encoder)
    pipe.load_textual_inversion(str(path), **({"token": token} if token else {}))
    try:
        added = sorted((i, t) for t, i in tokenizer.added_tokens_encoder.items() if t not in before)
        ids = [i for i, _ in added]
        vectors = pipe.text_encoder.get_input_embeddings().weight[ids].detach().clone()
        return Reading(added[0][1], len(ids), vectors.shape[1], vectors)
    finally:
        pipe.unload_textual_inversion()


def token_width(model: Path) -> int:
    return json.loads((model / "text_encoder" / "config.json").read_text())["hidden_size"]


@dataclass(frozen=True)
class Trained:
    root: Path
    count: int
    width: int

    def vectors_of(self, file: str) -> torch.Tensor:
        reference = SNAPSHOT if "-steps-2" in file else FINAL
        return load_file(str(self.root / reference))["<psychedelic>"]

    def check(self, reading: Reading, file: str, trigger: str) -> None:
        assert (reading.trigger, reading.count, reading.width) == (trigger, self.count, self.width)
        assert torch.equal(reading.vectors.reshape(self.count, self.width), self.vectors_of(file))


@pytest.fixture(scope="module", params=[1, 3], ids=["one-vector", "three-vectors"])
def trained(request, tmp_path_factory, tiny_model) -> Trained:
    """A root trained through the CLI with a snapshot and a checkpoint at step 2 of 4."""
    count = request.param
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, tmp_path_factory)
        root = build_root(tmp_path_factory.mktemp(f"vectors-{count}") / "invokeai", tiny_model)
        argv = typical_command(root, f"--num_vectors={count}", "--save_steps=2", "--checkpointing_steps=2")
        assert main(argv) == 0
    return Trained(root, count, token_width(tiny_model))


@pytest.fixture(scope="module")
def pipeline(tiny_model):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(str(tiny_model))


@pytest.mark.parametrize("file, trigger", INVOKEAI_23.items())
def test_invokeai_23_reads_the_trigger_every_vector_and_the_width(trained, file, trigger):
    trained.check(invokeai_23_read(trained.root / file), file, trigger)


def test_invokeai_23_starts_with_the_trigger_registered_once_and_no_notice(trained):
    triggers, notices = invokeai_23_startup(trained.root / "embeddings", trained.width)
    assert notices == []
    assert list(triggers) == ["<psychedelic>"]
    trained.check(triggers["<psychedelic>"], INSTALLED, "<psychedelic>")


def test_the_trigger_folder_holds_only_the_installed_file(trained):
    embeddings = trained.root / "embeddings"
    assert sorted(embeddings.rglob("*")) == [embeddings / "psychedelic", trained.root / INSTALLED]
    assert (trained.root / INSTALLED).read_bytes() == (trained.root / OUT / "learned_embeds.bin").read_bytes()


@pytest.mark.parametrize("imported, trigger", INVOKEAI_3_AND_LATER.items())
def test_invokeai_3_and_later_import_the_trigger_every_vector_and_the_width(trained, imported, trigger):
    reading = invokeai_3_and_later_import(trained.root / imported)
    file = INSTALLED if imported == "embeddings/psychedelic" else imported
    trained.check(reading, file, trigger)


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("width", [768, 1024])
def test_invokeai_3_and_later_tell_the_base_model_from_the_width(tmp_path, width, count):
    """The tiny test model is 32 wide; real SD-1 and SD-2 widths go through the same writer."""
    folder = tmp_path / "psychedelic"
    files = save_embedding_files(folder, Embedding("<psychedelic>", torch.randn(count, width), 100, "sd"))
    for imported in (folder, files.single_file):
        reading = invokeai_3_and_later_import(imported)
        assert invokeai_base_model(reading.width) == INVOKEAI_BASES[width]
        assert reading.vectors.shape == (count, width)
    assert invokeai_23_read(files.invokeai).width == width


@pytest.mark.parametrize("file, trigger", A1111_COMFYUI_KOHYA.items())
def test_automatic1111_comfyui_and_kohya_read_the_file_named_after_the_trigger(trained, file, trigger):
    trained.check(a1111_comfyui_read(trained.root / file), file, trigger)
    trained.check(kohya_read(trained.root / file), file, trigger)


@pytest.mark.parametrize("file, token", DIFFUSERS.items())
def test_diffusers_loads_every_file(trained, pipeline, file, token):
    trained.check(diffusers_read(pipeline, trained.root / file, token), file, "<psychedelic>")


@pytest.mark.parametrize("file", DIFFUSERS)
def test_initial_embedding_reads_every_file_written(trained, file):
    _, vectors = load_embedding(trained.root / file)
    assert torch.equal(vectors, trained.vectors_of(file))


def test_training_continues_from_the_installed_file(trained, make_root):
    root = make_root()
    start = trained.root / INSTALLED
    argv = typical_command(root, f"--initial_embedding={start}", "--learning_rate=1e-9", "--max_train_steps=1")
    assert main(argv) == 0
    continued = load_file(str(root / FINAL))["<psychedelic>"]
    assert torch.allclose(continued, trained.vectors_of(INSTALLED), atol=1e-4)


def test_reinstalling_keeps_the_replaced_embedding_where_no_tool_loads_it(make_root, tiny_model):
    root = make_root()
    installed = root / INSTALLED
    assert main(typical_command(root)) == 0
    first_install = installed.read_bytes()
    assert main(typical_command(root, "--seed=8")) == 0
    assert installed.read_bytes() != first_install
    assert (root / OUT / "learned_embeds.bin.previous").read_bytes() == first_install
    assert sorted((root / "embeddings").rglob("*")) == [installed.parent, installed]
    triggers, notices = invokeai_23_startup(root / "embeddings", token_width(tiny_model))
    assert notices == [] and list(triggers) == ["<psychedelic>"]
    assert torch.equal(triggers["<psychedelic>"].vectors, load_file(str(root / FINAL))["<psychedelic>"])


def test_installing_over_an_earlier_versions_files_leaves_one_file(tmp_path):
    """Versions before this one installed a .safetensors copy and *.previous backups beside the .bin."""
    embeddings = tmp_path / "embeddings"
    folder = embeddings / "psychedelic"
    folder.mkdir(parents=True)
    old = torch.randn(1, 32)
    torch.save({"<psychedelic>": old}, folder / "learned_embeds.bin")
    torch.save({"<psychedelic>": old}, folder / "learned_embeds.bin.previous")
    save_file({"<psychedelic>": old}, str(folder / "learned_embeds.safetensors"))
    save_file({"<psychedelic>": old}, str(folder / "learned_embeds.safetensors.previous"))
    _, notices = invokeai_23_startup(embeddings, 32)
    assert len(notices) == 4, "every one of the old files made InvokeAI 2.3 print a notice"

    output = tmp_path / "output"
    new = torch.randn(1, 32)
    save_embedding_files(output, Embedding("<psychedelic>", new, 10, "stable-diffusion-1.5"))
    old_install = (folder / "learned_embeds.bin").read_bytes()
    install_embedding(output, folder)
    assert sorted(embeddings.rglob("*")) == [folder, folder / "learned_embeds.bin"]
    triggers, notices = invokeai_23_startup(embeddings, 32)
    assert notices == [] and torch.equal(triggers["<psychedelic>"].vectors, new)
    assert (output / "learned_embeds.bin.previous").read_bytes() == old_install


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_every_file_written_is_as_readable_as_the_umask_allows(make_root, umask):
    root = make_root()
    previous = os.umask(umask)
    try:
        assert main(typical_command(root, "--save_steps=1", "--checkpointing_steps=1")) == 0
    finally:
        os.umask(previous)
    written = [p for p in (root / OUT).rglob("*") if p.is_file()] + [root / INSTALLED]
    assert len(written) > 10
    wrong = {str(p.relative_to(root)): oct(p.stat().st_mode & 0o777) for p in written
             if p.stat().st_mode & 0o777 != 0o666 & ~umask}
    assert wrong == {}
