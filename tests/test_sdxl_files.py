"""SDXL embedding files: every tool reads the set as meant, and --initial_embedding reads it back.

The consumer functions below are each tool's loading rule as /work/shared/REFERENCE.md records it
("Embedding files: who loads what"), applied to the bytes this package writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from invokeai_ti.errors import UserError
from invokeai_ti.outputs.sdxl_files import (
    SDXLVectors,
    read_initial_vectors,
    save_sdxl_embeddings,
    sdxl_files,
    sdxl_trigger_problem,
)
from invokeai_ti.quiet import quiet_imports, quiet_library_progress

TOKEN = "<psychedelic>"
SET_NAMES = {"learned_embeds.bin", "psychedelic.safetensors", "learned_embeds.safetensors",
             "learned_embeds_2.safetensors"}
SDXL_PAGE = Path(__file__).resolve().parents[1] / "docs" / "sdxl.md"


def read_any(path: Path) -> dict:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def invokeai_loader(data: dict) -> dict[str, torch.Tensor]:
    """InvokeAI 3.x+ backend/textual_inversion.py: which tensors it takes from a file."""
    if "string_to_param" in data:
        return {"single": next(iter(data["string_to_param"].values()))}
    if "emb_params" in data:
        return {"single": data["emb_params"]}
    if "clip_g" in data and "clip_l" in data:
        return {"clip_l": data["clip_l"], "clip_g": data["clip_g"]}
    first = next(iter(data.values()))
    return {"single": first.unsqueeze(0) if first.dim() == 1 else first}


def invokeai_probe(data: dict) -> str:
    """InvokeAI 4.x-6.x configs/textual_inversion.py: the base a file is imported for."""
    if "string_to_param" in data:
        width = next(iter(data["string_to_param"].values())).shape[-1]
    elif "emb_params" in data:
        width = data["emb_params"].shape[-1]
    elif "clip_g" in data:
        width = data["clip_g"].shape[-1]
    else:
        width = next(iter(data.values())).shape[0]
    return {768: "sd-1", 1024: "sd-2", 1280: "sdxl"}.get(width, "unrecognized token dimension")


def invokeai_trigger(path: Path) -> str:
    """The model's name (file stem, or folder name for learned_embeds.bin) in angle brackets."""
    return f"<{path.parent.name if path.name == 'learned_embeds.bin' else path.stem}>"


def a1111_reader(data: dict) -> dict[str, torch.Tensor] | None:
    """AUTOMATIC1111: string_to_param, clip_g + clip_l, or a single-key dict; else not an embedding."""
    if "string_to_param" in data:
        return {"single": next(iter(data["string_to_param"].values()))}
    if "clip_g" in data and "clip_l" in data:
        return {"clip_l": data["clip_l"], "clip_g": data["clip_g"]}
    if len(data) == 1:
        return {"single": next(iter(data.values()))}
    return None


def comfyui_reader(data: dict, encoder: str, width: int) -> torch.Tensor | None:
    """ComfyUI sd1_clip.load_embed for one encoder: None when it skips a vector of the wrong width."""
    if "string_to_param" in data:
        tensor = next(iter(data["string_to_param"].values()))
    elif encoder in data:
        tensor = data[encoder]
    else:
        tensor = next(iter(data.values()))
    return tensor if tensor.shape[-1] == width else None


def random_vectors(widths: tuple[int, int], count: int = 2, seed: int = 0) -> SDXLVectors:
    generator = torch.Generator().manual_seed(seed)
    return SDXLVectors(torch.randn(count, widths[0], generator=generator),
                       torch.randn(count, widths[1], generator=generator))


@pytest.fixture(scope="module")
def sdxl_pipe_factory(tiny_sdxl_model):
    def load():
        with quiet_imports():
            from diffusers import StableDiffusionXLPipeline
        with quiet_library_progress():
            pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl_model))
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return load


def model_widths(pipe) -> tuple[int, int]:
    return (pipe.text_encoder.get_input_embeddings().embedding_dim,
            pipe.text_encoder_2.get_input_embeddings().embedding_dim)


def test_an_output_folder_gets_exactly_the_four_files_and_no_temporary_ones(tmp_path):
    files = save_sdxl_embeddings(tmp_path, TOKEN, random_vectors((32, 48)))
    assert {path.name for path in tmp_path.iterdir()} == SET_NAMES
    assert {path.name for path in files.paths()} == SET_NAMES


def test_snapshots_along_the_way_use_the_diffusers_examples_step_names(tmp_path):
    save_sdxl_embeddings(tmp_path, TOKEN, random_vectors((32, 48)), step=500)
    assert {path.name for path in tmp_path.iterdir()} == {
        "learned_embeds-steps-500.bin", "psychedelic-steps-500.safetensors",
        "learned_embeds-steps-500.safetensors", "learned_embeds_2-steps-500.safetensors",
    }


def test_invokeai_reads_both_vectors_from_learned_embeds_bin_and_the_trigger_file(tmp_path):
    vectors = random_vectors((32, 48))
    files = save_sdxl_embeddings(tmp_path / "psychedelic", TOKEN, vectors)
    for path in (files.invokeai, files.single_file):
        loaded = invokeai_loader(read_any(path))
        assert torch.equal(loaded["clip_l"], vectors.clip_l) and torch.equal(loaded["clip_g"], vectors.clip_g)
        assert invokeai_trigger(path) == "<psychedelic>"


def test_invokeai_probes_the_files_with_real_widths_as_sdxl(tmp_path):
    files = save_sdxl_embeddings(tmp_path, TOKEN, random_vectors((768, 1280)))
    assert invokeai_probe(read_any(files.invokeai)) == "sdxl"
    assert invokeai_probe(read_any(files.single_file)) == "sdxl"


def test_a1111_and_comfyui_take_clip_l_and_clip_g_from_the_trigger_file(tmp_path):
    vectors = random_vectors((32, 48))
    files = save_sdxl_embeddings(tmp_path, TOKEN, vectors)
    for path in (files.single_file, files.invokeai):
        data = read_any(path)
        a1111 = a1111_reader(data)
        assert torch.equal(a1111["clip_l"], vectors.clip_l) and torch.equal(a1111["clip_g"], vectors.clip_g)
        assert torch.equal(comfyui_reader(data, "clip_l", 32), vectors.clip_l)
        assert torch.equal(comfyui_reader(data, "clip_g", 48), vectors.clip_g)
    assert files.single_file.stem == "psychedelic"


def test_the_diffusers_pair_holds_one_encoder_each_under_the_token(tmp_path):
    vectors = random_vectors((32, 48))
    files = save_sdxl_embeddings(tmp_path, TOKEN, vectors)
    first, second = read_any(files.diffusers_first), read_any(files.diffusers_second)
    assert list(first) == [TOKEN] and torch.equal(first[TOKEN], vectors.clip_l)
    assert list(second) == [TOKEN] and torch.equal(second[TOKEN], vectors.clip_g)
    assert comfyui_reader(second, "clip_l", 32) is None


def token_rows(tokenizer, text_encoder, count: int) -> torch.Tensor:
    tokens = [TOKEN] + [f"{TOKEN}_{i}" for i in range(1, count)]
    ids = tokenizer.convert_tokens_to_ids(tokens)
    return text_encoder.get_input_embeddings().weight[ids].detach()


def assert_loaded_into_the_right_encoders(pipe, vectors: SDXLVectors, original: tuple[torch.Tensor, ...]):
    count = vectors.clip_l.shape[0]
    assert torch.equal(token_rows(pipe.tokenizer, pipe.text_encoder, count), vectors.clip_l)
    assert torch.equal(token_rows(pipe.tokenizer_2, pipe.text_encoder_2, count), vectors.clip_g)
    for encoder, before in zip((pipe.text_encoder, pipe.text_encoder_2), original):
        assert torch.equal(encoder.get_input_embeddings().weight[: len(before)].detach(), before)


def original_rows(pipe) -> tuple[torch.Tensor, torch.Tensor]:
    return (pipe.text_encoder.get_input_embeddings().weight.detach().clone(),
            pipe.text_encoder_2.get_input_embeddings().weight.detach().clone())


@pytest.mark.parametrize("layout", ["learned_embeds.bin", "psychedelic.safetensors"])
def test_diffusers_puts_clip_l_and_clip_g_into_their_own_encoders(tmp_path, sdxl_pipe_factory, layout):
    pipe = sdxl_pipe_factory()
    vectors = random_vectors(model_widths(pipe), count=3)
    save_sdxl_embeddings(tmp_path, TOKEN, vectors)
    original = original_rows(pipe)
    state = read_any(tmp_path / layout)
    pipe.load_textual_inversion(state["clip_l"], token=TOKEN, text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(state["clip_g"], token=TOKEN, text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    assert_loaded_into_the_right_encoders(pipe, vectors, original)
    result = pipe(f"a {TOKEN} painting", num_inference_steps=1, height=64, width=64, output_type="latent")
    assert torch.isfinite(result.images).all()


def test_diffusers_loads_the_pair_by_path_one_file_per_encoder(tmp_path, sdxl_pipe_factory):
    pipe = sdxl_pipe_factory()
    vectors = random_vectors(model_widths(pipe))
    files = save_sdxl_embeddings(tmp_path, TOKEN, vectors)
    original = original_rows(pipe)
    pipe.load_textual_inversion(str(files.diffusers_first), text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(str(files.diffusers_second), text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    assert_loaded_into_the_right_encoders(pipe, vectors, original)


def test_the_sdxl_page_snippet_loads_an_sdxl_embedding(tmp_path, sdxl_pipe_factory, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", SDXL_PAGE.read_text(encoding="utf-8"), re.S)
    [snippet] = [block for block in blocks if "text_encoder_2" in block]
    pipe = sdxl_pipe_factory()
    vectors = random_vectors(model_widths(pipe))
    save_sdxl_embeddings(tmp_path, TOKEN, vectors)
    original = original_rows(pipe)
    monkeypatch.chdir(tmp_path)
    exec(snippet, {"pipe": pipe})
    assert_loaded_into_the_right_encoders(pipe, vectors, original)


def test_writing_nan_is_refused_before_any_file_changes(tmp_path):
    save_sdxl_embeddings(tmp_path, TOKEN, random_vectors((32, 48)))
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    broken = random_vectors((32, 48), seed=1)
    broken.clip_g[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        save_sdxl_embeddings(tmp_path, TOKEN, broken)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_vectors_of_unequal_count_are_not_an_sdxl_embedding():
    with pytest.raises(ValueError, match="clip_l has 2 vectors but clip_g has 3"):
        SDXLVectors(torch.zeros(2, 32), torch.zeros(3, 48))


@pytest.mark.parametrize("trigger", ["learned_embeds", "learned_embeds_2"])
def test_a_trigger_named_like_the_diffusers_pair_is_refused(trigger):
    problem = sdxl_trigger_problem(trigger)
    assert problem.field == "placeholder_token" and "choose another trigger term" in problem.text
    assert sdxl_trigger_problem("psychedelic") is None


def test_install_puts_the_sdxl_file_alone_in_the_folder_and_keeps_the_earlier_one_outside(tmp_path):
    """The same install as SD's: InvokeAI reads the folder, so nothing else may stay in it."""
    from invokeai_ti.outputs.embeddings import install_embedding

    output = tmp_path / "output"
    vectors = random_vectors((768, 1280))
    save_sdxl_embeddings(output, TOKEN, vectors)
    folder = tmp_path / "embeddings" / "psychedelic"
    folder.mkdir(parents=True)
    (folder / "learned_embeds.bin").write_bytes(b"earlier sdxl")
    (folder / "learned_embeds.safetensors").write_bytes(b"earlier sd-1")
    installed = install_embedding(output, folder)
    assert installed == folder / "learned_embeds.bin"
    assert [path.name for path in folder.iterdir()] == ["learned_embeds.bin"]
    assert (output / "learned_embeds.bin.previous").read_bytes() == b"earlier sdxl"
    data = read_any(installed)
    assert invokeai_probe(data) == "sdxl" and invokeai_trigger(installed) == "<psychedelic>"
    assert torch.equal(invokeai_loader(data)["clip_g"], vectors.clip_g)


@pytest.mark.parametrize("given", sorted(SET_NAMES))
def test_every_written_file_reads_back_as_initial_vectors_for_an_sdxl_run(tmp_path, given):
    vectors = random_vectors((32, 48), count=3)
    save_sdxl_embeddings(tmp_path, TOKEN, vectors)
    clip_l, clip_g = read_initial_vectors(tmp_path / given, (32, 48), "tiny-sdxl")
    assert torch.equal(clip_l, vectors.clip_l) and torch.equal(clip_g, vectors.clip_g)


def test_a_step_snapshot_of_the_pair_reads_back_with_its_own_partner(tmp_path):
    final, snapshot = random_vectors((32, 48), seed=1), random_vectors((32, 48), seed=2)
    save_sdxl_embeddings(tmp_path, TOKEN, final)
    save_sdxl_embeddings(tmp_path, TOKEN, snapshot, step=500)
    clip_l, clip_g = read_initial_vectors(tmp_path / "learned_embeds_2-steps-500.safetensors", (32, 48), "m")
    assert torch.equal(clip_l, snapshot.clip_l) and torch.equal(clip_g, snapshot.clip_g)


def test_kohya_style_file_with_one_dimensional_vectors_reads_as_one_vector(tmp_path):
    path = tmp_path / "kohya.safetensors"
    save_file({"clip_g": torch.ones(48), "clip_l": torch.zeros(32)}, str(path))
    clip_l, clip_g = read_initial_vectors(path, (32, 48), "tiny-sdxl")
    assert (clip_l.shape, clip_g.shape) == ((1, 32), (1, 48))


def test_an_sd1_file_given_to_an_sdxl_run_is_refused_naming_both_widths(tmp_path):
    path = tmp_path / "sd15-style.safetensors"
    save_file({TOKEN: torch.zeros(2, 768)}, str(path))
    with pytest.raises(UserError) as caught:
        read_initial_vectors(path, (768, 1280), "sdxl-base")
    message = str(caught.value)
    assert message.startswith(
        "The embedding sd15-style.safetensors was trained on an SD-1 model (token width 768), but sdxl-base is an SDXL "
        "model (token widths 768 and 1280); pass an SDXL embedding ("
    )
    assert ". " not in message and message.endswith(", or leave out --initial_embedding.")


def test_an_sdxl_file_given_to_an_sd2_run_is_refused_naming_both_widths(tmp_path):
    save_sdxl_embeddings(tmp_path, TOKEN, random_vectors((768, 1280)))
    with pytest.raises(UserError, match=(
        r"^The embedding psychedelic.safetensors was trained on an SDXL model \(token widths 768 and 1280\), but sd-2.1 is "
        r"an SD-2 model \(token width 1024\); pass one trained on a model like it, or leave out "
        r"--initial_embedding\.$"
    )):
        read_initial_vectors(tmp_path / "psychedelic.safetensors", (1024,), "sd-2.1")


def test_an_sdxl_file_of_other_widths_is_refused(tmp_path):
    save_sdxl_embeddings(tmp_path, TOKEN, random_vectors((32, 48)))
    with pytest.raises(UserError, match=r"token widths 32 and 48\), but sdxl-base is an SDXL model \(token "
                                        r"widths 768 and 1280\)"):
        read_initial_vectors(tmp_path / "learned_embeds.bin", (768, 1280), "sdxl-base")


def test_one_encoder_files_still_read_for_one_encoder_runs(tmp_path):
    path = tmp_path / "learned_embeds.safetensors"
    save_file({TOKEN: torch.ones(2, 32)}, str(path))
    [vectors] = read_initial_vectors(path, (32,), "tiny-sd")
    assert torch.equal(vectors, torch.ones(2, 32))
    with pytest.raises(UserError, match="token dimension 32, but the current model has token dimension 768"):
        read_initial_vectors(path, (768,), "sd-1.5")


def test_a_pair_half_without_its_partner_is_read_as_one_encoder_and_refused_for_sdxl(tmp_path):
    path = tmp_path / "learned_embeds_2.safetensors"
    save_file({TOKEN: torch.ones(2, 48)}, str(path))
    with pytest.raises(UserError, match="learned_embeds.safetensors with learned_embeds_2.safetensors beside it"):
        read_initial_vectors(path, (32, 48), "tiny-sdxl")


def test_an_sdxl_file_with_unequal_vector_counts_is_refused(tmp_path):
    path = tmp_path / "odd.safetensors"
    save_file({"clip_l": torch.ones(2, 32), "clip_g": torch.ones(3, 48)}, str(path))
    with pytest.raises(UserError, match="holds 2 vectors for the first text encoder but 3 for the second"):
        read_initial_vectors(path, (32, 48), "tiny-sdxl")


def test_sdxl_files_names_follow_the_trigger_without_angle_brackets(tmp_path):
    files = sdxl_files(tmp_path, "<cat-toy>")
    assert files.single_file.name == "cat-toy.safetensors"
