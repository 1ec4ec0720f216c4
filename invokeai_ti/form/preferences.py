"""The form's remembered settings, in InvokeAI's own file.

InvokeAI 2.3 keeps the last form's values in ``<root>/text-inversion-output/preferences.conf``
(YAML written by OmegaConf). Reading and writing that same file means someone moving over from
InvokeAI finds their model, learning rate and batch size already filled in, and the file stays
readable by InvokeAI. Its keys are ``TrainingSettings`` names, so ``to_dict``/``from_dict`` are the
whole format; there is no separate schema to keep in step.

Three things are never remembered: the root (the file lives inside it), the trigger (each run
trains a new one) and resuming (it depends on the trigger's output folder). Folders that are just
the trigger's default folders are forgotten too, so they follow the next trigger instead of
pointing at the last one; for the same reason a preview prompt is remembered with ``{}`` where it
named the trigger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..files import atomic_write
from ..paths import RootLayout
from ..settings import TrainingSettings, bare_trigger
from ..yaml_file import YamlFileError, read_yaml

NOT_REMEMBERED = ("root", "placeholder_token", "resume_from_checkpoint")
REPLACED = "; pressing OK saves new ones"


def remembered(values: dict[str, Any], layout: RootLayout) -> dict[str, Any]:
    """The saved values that should pre-fill a new form (see the module docstring)."""
    trigger = bare_trigger(str(values.get("placeholder_token") or ""))
    derived = {
        "train_data_dir": layout.data_dir(trigger),
        "output_dir": layout.output_dir(trigger),
    }
    kept = {}
    for key, value in values.items():
        if key in NOT_REMEMBERED:
            continue
        if key in derived and value and Path(str(value)).expanduser() == derived[key]:
            continue
        kept[key] = value
    prompts = kept.get("validation_prompt")
    if isinstance(prompts, (list, tuple)):
        # The trigger as {}, so the prompts suit the next trigger too; one prompt as plain text, as
        # the file held it before several were possible.
        prompts = [str(text).replace(f"<{trigger}>", "{}") if trigger else str(text) for text in prompts]
        kept["validation_prompt"] = prompts[0] if len(prompts) == 1 else prompts
    return kept


def load_preferences(layout: RootLayout) -> tuple[dict[str, Any], str | None]:
    """The remembered values and, when the file could not be used, a note saying why.

    A damaged file must never stop anyone from training: it is ignored, the note tells the user,
    and the next OK overwrites it.
    """
    path = layout.preferences
    if not path.exists():
        return {}, None
    try:
        values = read_yaml(path)
    except YamlFileError as error:
        return {}, f"Ignored the saved settings: {error}{REPLACED}."
    if values is None:
        return {}, None
    if not isinstance(values, dict):
        return {}, f"Ignored the saved settings in {path}: it does not hold a list of settings{REPLACED}."
    return remembered({str(k): v for k, v in values.items()}, layout), None


def save_preferences(layout: RootLayout, settings: TrainingSettings) -> Path:
    """Write the settings of an accepted form; the next form starts from them."""
    values = remembered(settings.to_dict(), layout)
    text = yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
    path = layout.preferences
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
