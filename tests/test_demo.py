"""`invokeai-ti --demo` runs the whole flow on a fresh machine with no model to download."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from invokeai_ti.cli import main
from invokeai_ti.demo import DEMO_MODEL, DEMO_TRIGGER


def test_demo_makes_a_root_trains_and_installs_an_embedding(tmp_path, capsys):
    root = tmp_path / "demo"
    assert main(["--demo", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    installed = root / "embeddings" / DEMO_TRIGGER / "learned_embeds.bin"
    assert torch.load(installed, weights_only=True)[f"<{DEMO_TRIGGER}>"].shape == (32,)
    assert f"invokeai-ti --gui --root {root}" in out
    assert "random weights" in out
    output = root / "text-inversion-output" / DEMO_TRIGGER
    assert out.count(str(output / "report.html")) == 1, "the report's path is said once"
    assert out.startswith(f"Preparing the demo root {root} ")
    assert f"Training <{DEMO_TRIGGER}> on {DEMO_MODEL} with the images in " in out
    assert f"The embedding is installed at {root / 'embeddings' / DEMO_TRIGGER / 'learned_embeds.bin'}; type " in out
    assert sorted(p.name for p in (output / "samples").iterdir()) == [
        "step-000000.png", "step-000020.png", "step-000040.png", "step-000060.png"]

    entry = yaml.safe_load((root / "configs" / "models.yaml").read_text())[DEMO_MODEL]
    assert entry["format"] == "diffusers" and "noise" in entry["description"]
    assert len(list((root / "text-inversion-training-data" / DEMO_TRIGGER).glob("*.jpg"))) == 5

    assert main(["--list-models", "--root", str(root)]) == 0
    table = capsys.readouterr().out
    assert DEMO_MODEL in table and "SD-1" in table and "32" in table


def test_list_models_on_an_empty_root_says_how_to_get_one(tmp_path, capsys):
    assert main(["--list-models", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "invokeai-ti --demo" in out and "InvokeAI's model manager" in out and "Getting a model" in out


def test_list_models_without_a_root_after_the_demo_points_at_the_demo_root(capsys):
    """The usual next command after `invokeai-ti --demo` has no --root and looks in ~/invokeai."""
    from invokeai_ti.demo import make_demo_root
    from invokeai_ti.paths import DEMO_ROOT

    demo = DEMO_ROOT.expanduser()
    make_demo_root(demo)
    assert main(["--list-models"]) == 1
    out = capsys.readouterr().out
    assert f"No diffusers model was found under {Path.home() / 'invokeai'}" in out
    assert f"the demo root {demo} has one: add --root {demo}" in out
    assert main(["--list-models", "--root", str(demo)]) == 0


def test_the_demo_on_a_root_made_earlier_says_it_uses_it(tmp_path, capsys, monkeypatch):
    import dataclasses

    from invokeai_ti import demo

    root = tmp_path / "demo"
    demo.make_demo_root(root)
    short = demo.demo_settings
    monkeypatch.setattr(demo, "demo_settings", lambda at: dataclasses.replace(
        short(at), max_train_steps=2, validation_prompt="none"))
    assert main(["--demo", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Using the demo root {root}, made earlier") and "Preparing" not in out
