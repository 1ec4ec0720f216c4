"""``invokeai-ti --demo``: the whole flow on a fresh machine, with no model to download, and a
concept that visibly arrives.

It makes (once) an InvokeAI root holding the world model shipped with the package (a small
SD-1-shaped model that draws coloured shapes from captions such as "a photo of a green star")
and a few photos of one colour and shape, drawn the way a user's camera would and never named
in any caption. It teaches them to a made-up trigger that starts as the ordinary word "toy", with
previews every few steps and the report, and installs the embedding exactly as a real run would.
The first previews show what "toy" means to the model (some shape in some colour), the last ones
the photos' concept, and the world model's judge says so under each preview.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

from .outputs.layout import OutputLayout
from .outputs.preview_png import read_previews
from .paths import DEMO_ROOT, RootLayout
from .settings import TrainingSettings

DEMO_MODEL = "world-of-shapes-sd1"
DEMO_TRIGGER = "blicket"
DEMO_INITIALIZER = "toy"
DEMO_CONCEPT = ("blue", "triangle")
DEMO_PHOTOS = 6
DEMO_MODEL_FOLDER = Path("models") / "sd-1" / "main" / DEMO_MODEL
# What the form shows under the model list; one line at 80 columns.
DEMO_MODEL_DESCRIPTION = "Knows a small world of coloured shapes (32 px); try 'a photo of a green star'."


def draw_sample_photos(folder: Path, count: int = DEMO_PHOTOS, size: int = 128, seed: int = 7) -> list[Path]:
    """Photos of the demo's concept, drawn as a user's camera would see it, not as the world does."""
    from .world.photos import write_photos

    return write_photos(folder, *DEMO_CONCEPT, count, seed=seed, size=size)


def make_demo_root(root: Path) -> RootLayout:
    """Create the demo root's model, models.yaml and photos; leave what already exists alone."""
    from .world import WORLD_MODEL

    layout = RootLayout(root)
    model_folder = root / DEMO_MODEL_FOLDER
    if not (model_folder / "model_index.json").exists():
        partial = model_folder.with_name(model_folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(WORLD_MODEL, partial)
        shutil.rmtree(model_folder, ignore_errors=True)
        partial.rename(model_folder)
    if not layout.models_yaml.exists():
        layout.models_yaml.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            DEMO_MODEL: {
                "description": DEMO_MODEL_DESCRIPTION,
                "format": "diffusers",
                "path": str(DEMO_MODEL_FOLDER),
                "default": True,
            }
        }
        layout.models_yaml.write_text(yaml.safe_dump(entry, sort_keys=False), encoding="utf-8")
    data = layout.data_dir(DEMO_TRIGGER)
    if not data.is_dir() or not any(data.iterdir()):
        draw_sample_photos(data)
    return layout


def demo_settings(root: Path) -> TrainingSettings:
    """A run well under a minute on a laptop CPU, otherwise the normal defaults."""
    return TrainingSettings(
        root=root,
        model=DEMO_MODEL,
        placeholder_token=DEMO_TRIGGER,
        initializer_token=DEMO_INITIALIZER,
        max_train_steps=100,
        train_batch_size=4,
        gradient_accumulation_steps=1,
        checkpointing_steps=100,
        save_steps=20,
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


def run_demo(root: Path | None) -> int:
    from .workflow import end_lines, header_line, plan_run, run_plan

    root = (root or DEMO_ROOT).expanduser().resolve()
    colour, shape = DEMO_CONCEPT
    what = f"the world-of-shapes model and {DEMO_PHOTOS} photos of a {colour} {shape}"
    if (root / DEMO_MODEL_FOLDER / "model_index.json").exists():
        print(f"Using the demo root {root}, made earlier ({what}).")
    else:
        print(f"Preparing the demo root {root} ({what})...")
    layout = make_demo_root(root)
    plan = plan_run(demo_settings(root))
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
