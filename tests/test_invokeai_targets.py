"""What each kind of InvokeAI root gets after training, and the rules of the InvokeAI target,
without a server: the 3.x autoimport copy, the advice when no 4.x+ server answers, InvokeAI's
trigger names, and sign-in secrets that no file, flag or child command line ever holds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from invokeai_ti.cli import build_parser, settings_from_args
from invokeai_ti.form.preferences import save_preferences
from invokeai_ti.paths import RootLayout
from invokeai_ti.registration import after_install, register_with_server
from invokeai_ti.root_kind import found_line
from invokeai_ti.settings import (
    PASSWORD_VARIABLE,
    TOKEN_VARIABLE,
    TrainingSettings,
    invokeai_trigger_problem,
    secret_environment,
    settings_to_argv,
)
from tests.invokeai_server import free_port


def installed_file(root: Path, trigger: str) -> Path:
    file = root / "embeddings" / trigger / "learned_embeds.bin"
    file.parent.mkdir(parents=True)
    file.write_bytes(b"trained vectors")
    return file


def invokeai3_root(root: Path, autoimport_dir: str | None = None) -> Path:
    paths = {"models_dir": "models"} | ({"autoimport_dir": autoimport_dir} if autoimport_dir else {})
    root.mkdir(parents=True, exist_ok=True)
    (root / "invokeai.yaml").write_text(yaml.safe_dump({"InvokeAI": {"Paths": paths}}), encoding="utf-8")
    return root


@pytest.mark.parametrize("autoimport_dir, expected", [(None, "autoimport"), ("incoming/models", "incoming/models")])
def test_a_3x_root_gets_a_copy_in_its_autoimport_folder_and_is_told_to_restart_invokeai(
        tmp_path, autoimport_dir, expected):
    root = invokeai3_root(tmp_path / "root", autoimport_dir)
    installed = installed_file(root, "glassfox")

    [note] = after_install(TrainingSettings(placeholder_token="glassfox"), RootLayout(root), "SD-1", installed)

    copy = root / expected / "embedding" / "glassfox" / "learned_embeds.bin"
    assert copy.read_bytes() == b"trained vectors"
    assert note == (f"InvokeAI 3.x imports it from {copy.parent} when it starts: restart InvokeAI, then "
                    "type <glassfox> in your prompts.")


def test_a_2_3_root_needs_nothing_beyond_its_embeddings_folder(tmp_path):
    root = tmp_path / "root"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "models.yaml").write_text("sd-1.5: {format: diffusers}\n", encoding="utf-8")
    installed = installed_file(root, "glassfox")

    assert after_install(TrainingSettings(placeholder_token="glassfox"), RootLayout(root), "SD-1", installed) == []
    assert sorted(p.name for p in root.iterdir()) == ["configs", "embeddings"]


@pytest.mark.parametrize("files, kind", [
    ({"configs/models.yaml": "sd-1.5: {format: diffusers}\n"}, "an InvokeAI 2.3 root"),
    ({"invokeai.yaml": "InvokeAI: {Paths: {models_dir: models}}\n"}, "an InvokeAI 3.x root"),
    ({"invokeai.yaml": "schema_version: 4.0.2\n"}, "an InvokeAI 4.x-7.x root"),
    ({}, "a new root (no InvokeAI files yet)"),
])
def test_the_front_ends_say_which_kind_of_root_was_found(tmp_path, files, kind):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert found_line(tmp_path) == f"Found {kind} at {tmp_path}."


def test_with_no_server_answering_one_sentence_names_the_folder_to_scan_in_place(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    folder = installed_file(tmp_path, "glassfox").parent

    message = register_with_server(TrainingSettings(placeholder_token="glassfox", invokeai_url=url), "sd-1", folder)

    assert message.startswith(f"Nothing answers at {url}, so InvokeAI has not registered the embedding yet")
    assert f"paste {folder} into Scan Folder, tick \"In place\"" in message
    assert message.count(". ") == 0 and message.endswith(".")
    assert (folder / "learned_embeds.bin").is_file()


@pytest.mark.parametrize("trigger", ["glass-fox", "glass_fox.v2", "<glassfox>", "glass fox", "a,b"])
def test_invokeai_uses_triggers_of_letters_digits_dot_comma_space_underscore_and_hyphen(trigger):
    assert invokeai_trigger_problem(trigger) is None


@pytest.mark.parametrize("trigger, fixed", [("glass/fox", "glass_fox"), ("café", "caf"), ("fox!", "fox")])
def test_a_trigger_invokeai_cannot_match_in_a_prompt_is_refused_with_a_fixed_one(trigger, fixed):
    problem = invokeai_trigger_problem(trigger)
    assert problem is not None and problem.field == "placeholder_token"
    assert "its prompts match only letters, digits" in problem.text and problem.text.endswith(f"use '{fixed}' instead")


def test_the_invokeai_address_must_be_a_web_address():
    [problem] = [p for p in TrainingSettings(placeholder_token="x", invokeai_url="localhost:9090").problems()]
    assert problem.field == "invokeai_url" and "http://127.0.0.1:9090" in problem.text


SECRETS = {"invokeai_token": "tok-123-secret", "invokeai_password": "Pa55-word-secret"}


def test_sign_in_secrets_are_never_written_to_a_settings_file_nor_read_from_one(tmp_path):
    settings = TrainingSettings(placeholder_token="glassfox", invokeai_email="me@example.com", **SECRETS)
    saved = save_preferences(RootLayout(tmp_path), settings).read_text(encoding="utf-8")

    assert "me@example.com" in saved
    for secret in SECRETS.values():
        assert secret not in saved and secret not in str(settings.to_dict()) and secret not in repr(settings)
    assert TrainingSettings.from_dict(dict(SECRETS)) == TrainingSettings()


def test_secrets_reach_a_child_run_through_its_environment_never_its_command_line():
    settings = TrainingSettings(placeholder_token="glassfox", **SECRETS)
    argv = settings_to_argv(settings)
    assert not any(secret in " ".join(argv) for secret in SECRETS.values())
    assert secret_environment(settings) == {TOKEN_VARIABLE: SECRETS["invokeai_token"],
                                            PASSWORD_VARIABLE: SECRETS["invokeai_password"]}
    child = settings_from_args(build_parser().parse_args(argv))
    assert child == dataclasses.replace(settings, invokeai_token=None, invokeai_password=None)


def test_there_is_no_password_flag_to_leave_in_a_shell_history():
    options = [option for action in build_parser()._actions for option in action.option_strings]
    assert "--invokeai_token" in options and "--invokeai_email" in options
    assert not any("password" in option for option in options)
