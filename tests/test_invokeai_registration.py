"""Today's InvokeAI (4.x-7.x) registers what invokeai-ti trains: proven against the real server.

One single-user InvokeAI 6.14.2 server runs for this module (tests/invokeai_server.py); a tiny SD-1
shaped model (token width 768, so InvokeAI reads its embeddings as sd-1) is trained on its root,
and InvokeAI's own API and prompt code say what it made of the result. The multiuser server's
tests are in test_invokeai_sign_in.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from invokeai_ti.cli import main
from invokeai_ti.demo import draw_sample_photos
from invokeai_ti.invokeai_api import InvokeAIClient, InvokeAIError
from invokeai_ti.registration import register_embedding, register_with_server
from invokeai_ti.settings import TrainingSettings
from tests.invokeai_server import InvokeAIServer, invokeai_server, run_invokeai_script  # noqa: F401
from tools.pipelines import build_tiny_pipeline

pytestmark = pytest.mark.slow

TRIGGER = "glassfox"
FAST = ["--resolution=64", "--train_batch_size=2", "--gradient_accumulation_steps=1", "--mixed_precision=no",
        "--validation_prompt=none", "--max_train_steps=2", "--learning_rate=0.05"]


@pytest.fixture(scope="module")
def sd1_model(tmp_path_factory) -> Path:
    """Token width 768: what InvokeAI's probe reads as an SD-1 embedding."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd1", token_dim=768)


def train(server: InvokeAIServer, model: Path, trigger: str, seed: int, capsys, *extra: str) -> str:
    """Train ``trigger`` on the server's own root, as a user of that InvokeAI would; the output."""
    draw_sample_photos(server.root / "text-inversion-training-data" / trigger, count=2, size=64)
    code = main([f"--root={server.root}", f"--model={model}", f"--placeholder_token={trigger}",
                 f"--invokeai_url={server.url}", f"--seed={seed}", *FAST, *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def embeddings(server: InvokeAIServer, name: str) -> list[dict]:
    return [m for m in server.models("embedding") if m["name"] == name]


def trained_vector(server: InvokeAIServer, trigger: str) -> torch.Tensor:
    file = server.root / "text-inversion-output" / trigger / "learned_embeds.bin"
    return torch.load(file, weights_only=True)[f"<{trigger}>"]


def prompt_rows(server: InvokeAIServer, model: Path, prompt: str) -> dict:
    return json.loads(run_invokeai_script("prompt_vectors.py", server.root, "sd-1", model, prompt))


def test_the_root_is_told_as_4x_and_the_trained_embedding_is_registered_in_place_as_its_trigger(
        invokeai_server, sd1_model, capsys):
    out = train(invokeai_server, sd1_model, TRIGGER, seed=1, capsys=capsys)

    assert f"Found an InvokeAI 4.x-7.x root at {invokeai_server.root}." in out
    assert f"registered it as sd-1 embedding {TRIGGER}" in out
    [record] = embeddings(invokeai_server, TRIGGER)
    folder = invokeai_server.root / "embeddings" / TRIGGER
    assert (record["base"], record["type"], record["format"]) == ("sd-1", "embedding", "embedding_folder")
    assert Path(record["path"]) == folder and (folder / "learned_embeds.bin").is_file()


def test_a_second_run_replaces_the_first_with_one_record_that_prompts_read_as_the_new_vectors(
        invokeai_server, sd1_model, capsys):
    train(invokeai_server, sd1_model, "twicefox", seed=1, capsys=capsys)
    [first] = embeddings(invokeai_server, "twicefox")
    first_vector = trained_vector(invokeai_server, "twicefox")

    out = train(invokeai_server, sd1_model, "twicefox", seed=2, capsys=capsys)

    assert "in place of the one registered before" in out
    [second] = embeddings(invokeai_server, "twicefox")
    assert second["key"] != first["key"]
    new_vector = trained_vector(invokeai_server, "twicefox")
    assert not torch.equal(new_vector, first_vector)
    seen = prompt_rows(invokeai_server, sd1_model, "a photo of <twicefox> on a table")
    assert seen["records"] == {"twicefox": 1}
    # InvokeAI copies the float32 vector into the float32 text encoder: exactly the new one.
    assert torch.equal(torch.tensor(seen["rows"]), new_vector.unsqueeze(0))


def test_installing_an_earlier_step_registers_that_step_in_place_of_the_final_one(
        invokeai_server, sd1_model, capsys):
    train(invokeai_server, sd1_model, "stepfox", 3, capsys, "--save_steps=1")
    output = invokeai_server.root / "text-inversion-output" / "stepfox"
    snapshot = torch.load(output / "learned_embeds-steps-1.bin", weights_only=True)["<stepfox>"]
    assert not torch.equal(snapshot, trained_vector(invokeai_server, "stepfox"))

    code = main([f"--root={invokeai_server.root}", "--placeholder_token=stepfox",
                 f"--invokeai_url={invokeai_server.url}", "--install-step=1"])

    assert code == 0 and "in place of the one registered before" in capsys.readouterr().out
    seen = prompt_rows(invokeai_server, sd1_model, "<stepfox>")
    assert seen["records"] == {"stepfox": 1}
    assert torch.equal(torch.tensor(seen["rows"]), snapshot.unsqueeze(0))


def test_an_embedding_of_that_name_and_base_registered_elsewhere_is_replaced_not_duplicated(
        invokeai_server, tmp_path):
    other = tmp_path / "somewhere" / "copyfox"
    other.mkdir(parents=True)
    torch.save({"<copyfox>": torch.randn(768)}, other / "learned_embeds.bin")
    assert invokeai_server.install(other)["status"] == "completed"
    ours = invokeai_server.root / "embeddings" / "copyfox"
    ours.mkdir(parents=True)
    torch.save({"<copyfox>": torch.randn(768)}, ours / "learned_embeds.bin")

    done = register_embedding(InvokeAIClient(invokeai_server.url), ours, "copyfox", "sd-1")

    assert [Path(m["path"]) for m in done.replaced] == [other]
    assert [Path(m["path"]) for m in embeddings(invokeai_server, "copyfox")] == [ours]
    assert (other / "learned_embeds.bin").is_file(), "unregistering must not delete the user's file"


def test_a_file_invokeai_reads_as_an_unknown_model_is_unregistered_and_said_in_one_sentence(
        invokeai_server, tmp_path):
    folder = tmp_path / "narrowfox"
    folder.mkdir()
    torch.save({"<narrowfox>": torch.randn(32)}, folder / "learned_embeds.bin")
    settings = TrainingSettings(placeholder_token="narrowfox", invokeai_url=invokeai_server.url)

    message = register_with_server(settings, "sd-1", folder)

    assert message.startswith(f"InvokeAI could not read {folder.resolve()} as an sd-1 embedding")
    assert message.count(". ") == 1 and message.endswith(f"The embedding stays in {folder}.")
    assert embeddings(invokeai_server, "narrowfox") == []


def test_a_server_error_is_one_sentence_naming_what_was_asked(invokeai_server, tmp_path):
    client = InvokeAIClient(invokeai_server.url)
    with pytest.raises(InvokeAIError) as refused:
        client.install(tmp_path / "no-such-folder", "ghost")
    text = str(refused.value)
    assert text.startswith(f"InvokeAI at {invokeai_server.url} refused the install of {tmp_path / 'no-such-folder'}")
    assert "\n" not in text and text.endswith(".")


def test_the_probe_tells_invokeai_by_its_version(invokeai_server):
    assert InvokeAIClient(invokeai_server.url + "/").version() == "6.14.2"
