"""Signing in to an InvokeAI with ``multiuser`` on (an option in 6.14, the default in 7.0).

One real multiuser InvokeAI 6.14.2 server runs for this module, with its first administrator
made (tests/invokeai_server.py); its model routes answer 401 without a token.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from invokeai_ti.cli import main
from invokeai_ti.demo import draw_sample_photos
from invokeai_ti.errors import UserError
from invokeai_ti.invokeai_api import InvokeAIClient, SignInNeeded
from invokeai_ti.registration import register_with_server, signed_in_client
from invokeai_ti.settings import PASSWORD_VARIABLE, TOKEN_VARIABLE, TrainingSettings
from tests.invokeai_server import ADMIN_EMAIL, ADMIN_PASSWORD, invokeai_multiuser_server  # noqa: F401
from tools.pipelines import build_tiny_pipeline

pytestmark = pytest.mark.slow

FAST = ["--resolution=64", "--train_batch_size=2", "--gradient_accumulation_steps=1", "--mixed_precision=no",
        "--validation_prompt=none", "--max_train_steps=2"]


@pytest.fixture(scope="module")
def sd1_model(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd1", token_dim=768)


def command(server, model: Path, trigger: str, *extra: str) -> list[str]:
    draw_sample_photos(server.root / "text-inversion-training-data" / trigger, count=2, size=64)
    return [f"--root={server.root}", f"--model={model}", f"--placeholder_token={trigger}",
            f"--invokeai_url={server.url}", *FAST, *extra]


def embedding_folder(root: Path, trigger: str) -> Path:
    folder = root / "embeddings" / trigger
    folder.mkdir(parents=True)
    torch.save({f"<{trigger}>": torch.randn(768)}, folder / "learned_embeds.bin")
    return folder


def names(server) -> list[str]:
    return [m["name"] for m in server.models("embedding")]


def test_without_a_sign_in_the_run_is_refused_before_training_saying_how_to_sign_in(
        invokeai_multiuser_server, sd1_model, capsys):
    server = invokeai_multiuser_server

    assert main(command(server, sd1_model, "lockedfox")) == 2

    err = capsys.readouterr().err
    assert f"InvokeAI at {server.url} asks to sign in" in err and "--invokeai_token" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (server.root / "text-inversion-output" / "lockedfox").exists()


def test_signed_in_by_email_with_the_password_from_the_environment_the_run_registers_and_never_writes_it(
        invokeai_multiuser_server, sd1_model, capsys, monkeypatch):
    server = invokeai_multiuser_server
    monkeypatch.setenv(PASSWORD_VARIABLE, ADMIN_PASSWORD)

    assert main(command(server, sd1_model, "keyfox", f"--invokeai_email={ADMIN_EMAIL}")) == 0

    out, err = capsys.readouterr()
    assert "registered it as sd-1 embedding keyfox" in out
    assert "keyfox" in names(server)
    assert ADMIN_PASSWORD not in out + err
    written = [p for p in (server.root / "text-inversion-output").rglob("*") if p.is_file()]
    assert written and not any(ADMIN_PASSWORD.encode() in p.read_bytes() for p in written)


def test_a_token_from_the_environment_signs_in(invokeai_multiuser_server, tmp_path, monkeypatch):
    server = invokeai_multiuser_server
    monkeypatch.setenv(TOKEN_VARIABLE, server.token)
    folder = embedding_folder(tmp_path, "tokenfox")

    message = register_with_server(TrainingSettings(placeholder_token="tokenfox", invokeai_url=server.url),
                                   "sd-1", folder)

    assert message.startswith(f"InvokeAI at {server.url} registered it as sd-1 embedding tokenfox")
    assert "tokenfox" in names(server)


def test_a_wrong_password_is_one_sentence_that_never_repeats_it(invokeai_multiuser_server):
    wrong = "Not-The-Password-42!"
    settings = TrainingSettings(invokeai_url=invokeai_multiuser_server.url, invokeai_email=ADMIN_EMAIL,
                                invokeai_password=wrong)

    with pytest.raises(SignInNeeded) as refused:
        signed_in_client(settings)

    text = str(refused.value)
    assert text.startswith(f"InvokeAI at {invokeai_multiuser_server.url} refused the email {ADMIN_EMAIL}")
    assert wrong not in text and "\n" not in text


def test_a_refused_token_says_how_to_sign_in(invokeai_multiuser_server):
    with pytest.raises(SignInNeeded) as refused:
        InvokeAIClient(invokeai_multiuser_server.url, token="not-a-token").embeddings_named("x")
    assert "refused the sign-in token" in str(refused.value) and "--invokeai_email" in str(refused.value)


def test_an_email_without_a_password_says_where_the_password_goes(invokeai_multiuser_server, monkeypatch):
    monkeypatch.delenv(PASSWORD_VARIABLE, raising=False)
    settings = TrainingSettings(invokeai_url=invokeai_multiuser_server.url, invokeai_email=ADMIN_EMAIL)
    with pytest.raises(UserError, match=PASSWORD_VARIABLE):
        signed_in_client(settings)
