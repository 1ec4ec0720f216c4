"""``invokeai-ti --demo``: the whole flow on a fresh machine, with no model to download, and a
concept that visibly arrives.

It makes (once) an InvokeAI root holding the two world models shipped with the package (small
SD-1 and SDXL shaped models that draw coloured shapes from captions such as "a photo of a green
star"; the SD-1 one is the default) and a few photos of one colour and shape, drawn the way a
user's camera would and never named in any caption. It teaches them to a made-up trigger that
starts as the ordinary word "toy", with previews every few steps and the report, and installs the
embedding exactly as a real run would. The first previews show what "toy" means to the model
(some shape in some colour), the last ones the photos' concept, and the world model's judge says
so under each preview. ``--model world-of-shapes-sdxl`` runs the same demo on SDXL, under its
own trigger so both embeddings can be installed side by side.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import UserError
from .files import atomic_write
from .outputs.layout import OutputLayout
from .outputs.preview_png import read_previews
from .paths import DEMO_ROOT, RootLayout
from .settings import TrainingSettings
from .world import WORLD_MODEL, WORLD_MODEL_SDXL
from .yaml_file import YamlFileError, read_yaml


@dataclass(frozen=True)
class DemoModel:
    """A world model as the demo root holds it: where it is installed, under which name and what
    the form says of it (one line at 80 columns), the trigger its demo teaches and how long.

    The SD-1 demo previews and scores the evaluation batch every 10 steps for 80 steps: its score
    settles by step 70 with step 50 the best, so the report shows the step to pick, where every 20
    steps for 100 it had not settled by the end (docs/world.md). The SDXL demo trains 200 steps at
    batch 8: at 100 steps at batch 4 it showed the blue triangle in 3 of 8 final pictures, and 2-6
    of 8 over four other seeds, while 200 steps at batch 8 showed it in 7-8 of 8 over three seeds,
    in under a minute (docs/world.md)."""

    name: str
    source: Path
    folder: Path
    description: str
    trigger: str
    steps: int
    batch: int
    preview_every: int


DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("world-of-shapes-sd1", WORLD_MODEL, Path("models") / "sd-1" / "main" / "world-of-shapes-sd1",
              "Knows a small world of coloured shapes (32 px); try 'a photo of a green star'.", "blicket",
              steps=80, batch=4, preview_every=10),
    DemoModel("world-of-shapes-sdxl", WORLD_MODEL_SDXL,
              Path("models") / "sdxl" / "main" / "world-of-shapes-sdxl",
              "The same world in SDXL's layout: two text encoders, pooled text, time ids.", "dax",
              steps=200, batch=8, preview_every=40),
)
DEMO_MODEL = DEMO_MODELS[0].name
DEMO_TRIGGER = DEMO_MODELS[0].trigger
DEMO_INITIALIZER = "toy"
DEMO_CONCEPT = ("blue", "triangle")
DEMO_PHOTOS = 6
DEMO_MODEL_FOLDER = DEMO_MODELS[0].folder
DEMO_MODEL_DESCRIPTION = DEMO_MODELS[0].description


def draw_sample_photos(folder: Path, count: int = DEMO_PHOTOS, size: int = 128, seed: int = 7) -> list[Path]:
    """Photos of the demo's concept, drawn as a user's camera would see it, not as the world does."""
    from .world.photos import write_photos

    return write_photos(folder, *DEMO_CONCEPT, count, seed=seed, size=size)


def demo_model(name: str | None) -> DemoModel:
    """The demo model called ``name`` (the SD-1 one when None); any other model is refused."""
    for model in DEMO_MODELS:
        if name in (None, model.name):
            return model
    names = " or ".join(model.name for model in DEMO_MODELS)
    raise UserError(f"The demo trains one of its own models, {names}, not {name}; "
                    "drop --demo to train on another model.")


def make_demo_root(root: Path) -> RootLayout:
    """Create the demo root's models, models.yaml entries and photos; leave what exists alone.

    A root made by an earlier version gains the models it lacks, and only those entries are added
    to its models.yaml, so the user's own entries and edits stay.
    """
    layout = RootLayout(root)
    for model in DEMO_MODELS:
        _install_model(model.source, root / model.folder)
    try:
        entries = read_yaml(layout.models_yaml) if layout.models_yaml.exists() else None
    except YamlFileError as error:
        raise UserError(f"{error}; fix or remove it, and run invokeai-ti --demo again") from error
    if entries is not None and not isinstance(entries, dict):
        raise UserError(f"{layout.models_yaml} is not a list of named models; fix or remove it, and run "
                        "invokeai-ti --demo again")
    entries = entries or {}
    missing = {
        model.name: {"description": model.description, "format": "diffusers", "path": str(model.folder),
                     **({"default": True} if model.name == DEMO_MODEL and not entries else {})}
        for model in DEMO_MODELS if model.name not in entries
    }
    if missing:
        text = yaml.safe_dump({**entries, **missing}, sort_keys=False)
        atomic_write(layout.models_yaml, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    for model in DEMO_MODELS:
        data = layout.data_dir(model.trigger)
        if not data.is_dir() or not any(data.iterdir()):
            draw_sample_photos(data)
    return layout


def _install_model(source: Path, folder: Path) -> None:
    """Copied whole or not at all: an interrupted copy never looks like a model. A copy an earlier
    version installed (its ``world.json``, which records how the model was pretrained, differs)
    is replaced by the model this version ships, so the demo shows what this version's docs say."""
    if (folder / "model_index.json").exists() and _same_file(folder / "world.json", source / "world.json"):
        return
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def _same_file(first: Path, second: Path) -> bool:
    return first.is_file() and first.read_bytes() == second.read_bytes()


def demo_settings(root: Path, model: str | None = None) -> TrainingSettings:
    """A run well under a minute on a laptop CPU, otherwise the normal defaults."""
    chosen = demo_model(model)
    return TrainingSettings(
        root=root,
        model=chosen.name,
        placeholder_token=chosen.trigger,
        initializer_token=DEMO_INITIALIZER,
        max_train_steps=chosen.steps,
        train_batch_size=chosen.batch,
        gradient_accumulation_steps=1,
        checkpointing_steps=chosen.steps,
        save_steps=chosen.preview_every,
        num_validation_images=8,
        learning_rate=5e-3,
        scale_lr=False,
        seed=1234,
        mixed_precision="no",
    )


def command_name() -> str:
    """The command as the user can type it: the full path when its environment is not active."""
    installed = Path(sys.executable).parent / "invokeai-ti"
    if installed.exists() and shutil.which("invokeai-ti") != str(installed):
        return str(installed)
    return "invokeai-ti"


def run_demo(root: Path | None, model: str | None = None) -> int:
    from .workflow import end_lines, header_line, plan_run, run_plan

    chosen = demo_model(model)
    root = (root or DEMO_ROOT).expanduser().resolve()
    colour, shape = DEMO_CONCEPT
    what = f"the world-of-shapes models and {DEMO_PHOTOS} photos of a {colour} {shape}"
    if (root / chosen.folder / "model_index.json").exists():
        print(f"Using the demo root {root}, made earlier ({what}).")
    else:
        print(f"Preparing the demo root {root} ({what})...")
    layout = make_demo_root(root)
    plan = plan_run(demo_settings(root, chosen.name))
    print(header_line(plan))
    for line in end_lines(plan, run_plan(plan)):
        print(line)
    previews = read_previews(OutputLayout(plan.output_dir, plan.settings.trigger))
    judged = [preview for preview in previews if preview.judgement is not None]
    if judged:
        first, last = judged[0], judged[-1]
        print(f"Before training, {first.judgement.verdict}; after {last.step} steps, {last.judgement.verdict}.")
    print(f"Open the form on this root with:  {command_name()} --gui --root {layout.root}")
    return 0
