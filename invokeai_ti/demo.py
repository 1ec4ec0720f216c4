"""``invokeai-ti --demo``: the whole flow on a fresh machine, with no model to download.

It makes (once) an InvokeAI root holding a tiny SD-1-shaped model with random weights and a
handful of generated photos, trains a short run on it (with previews every 20 steps and the
report) and installs the embedding, exactly as a real run would. The model is called
``tiny-random-sd1-demo`` and described as making noise, so nobody mistakes it for a real one.
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import yaml

from .paths import DEMO_ROOT, RootLayout
from .settings import TrainingSettings

DEMO_MODEL = "tiny-random-sd1-demo"
DEMO_TRIGGER = "orange-toy"
DEMO_MODEL_FOLDER = Path("models") / "sd-1" / "main" / DEMO_MODEL


def draw_sample_photos(folder: Path, count: int = 5, size: int = 128, seed: int = 7) -> list[Path]:
    """Pictures of one made-up object (an orange toy) in different places and light."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        background = tuple(rng.randrange(60, 230) for _ in range(3))
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = rng.randrange(size), rng.randrange(size)
            shade = tuple(max(0, c - rng.randrange(10, 50)) for c in background)
            draw.rectangle([x, y, x + rng.randrange(10, 50), y + rng.randrange(10, 50)], fill=shade)
        radius = rng.randrange(size // 5, size // 3)
        cx = rng.randrange(radius, size - radius)
        cy = rng.randrange(radius, size - radius)
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=(240, 130, 30))
        for side in (-1, 1):
            ear = (cx + side * radius // 2, cy - radius)
            draw.polygon(
                [ear, (ear[0] - radius // 3, ear[1] + radius // 2), (ear[0] + radius // 3, ear[1] + radius // 2)],
                fill=(220, 110, 20),
            )
            draw.ellipse(
                [cx + side * radius // 3 - 4, cy - 6, cx + side * radius // 3 + 4, cy + 2], fill=(20, 20, 20)
            )
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.0)))
        path = folder / f"orange-toy-{index + 1}.jpg"
        image.save(path, quality=92)
        paths.append(path)
    return paths


def make_demo_root(root: Path) -> RootLayout:
    """Create the demo root's model, models.yaml and photos; leave what already exists alone."""
    from .tiny_model import build_tiny_pipeline

    layout = RootLayout(root)
    model_folder = root / DEMO_MODEL_FOLDER
    if not (model_folder / "model_index.json").exists():
        build_tiny_pipeline(model_folder, token_dim=32, sample_size=8)
    if not layout.models_yaml.exists():
        layout.models_yaml.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            DEMO_MODEL: {
                "description": "Random weights for trying invokeai-ti; it makes noise, not pictures.",
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
    """A run short enough for a CPU in well under a minute, otherwise the normal defaults."""
    return TrainingSettings(
        root=root,
        model=DEMO_MODEL,
        placeholder_token=DEMO_TRIGGER,
        max_train_steps=60,
        train_batch_size=2,
        gradient_accumulation_steps=1,
        checkpointing_steps=20,
        save_steps=20,
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
    from .workflow import header_line, installed_message, plan_run, run_plan

    root = (root or DEMO_ROOT).expanduser().resolve()
    if (root / DEMO_MODEL_FOLDER / "model_index.json").exists():
        print(f"Using the demo root {root}, made earlier (a tiny model with random weights and sample photos).")
    else:
        print(f"Preparing the demo root {root} (a tiny model with random weights and sample photos)...")
    layout = make_demo_root(root)
    plan = plan_run(demo_settings(root))
    print(header_line(plan))
    outcome = run_plan(plan)
    print(f"Trained {outcome.result.token} for {outcome.result.steps} steps; the training files are in {plan.output_dir}.")
    print(installed_message(outcome.installed, outcome.result.token))
    print("The demo model has random weights, so the embedding shows the flow, not a real result.")
    print(f"Open the form on this root with:  {command_name()} --gui --root {layout.root}")
    return 0
