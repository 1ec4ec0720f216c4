"""``samples/step-N.png``: one preview, a grid of pictures with what made them in its text chunks.

The trainer's previews write it (``write_preview``); the report and the demo read it back
(``read_previews``). The text chunks are the whole record of a preview (its step, prompt, seed,
trigger, the embedding file holding its vectors, whether it is the final one, and a judge's
``Judgement`` where the run had a judge), so the report needs nothing but the folder, and a PNG
viewer shows the same facts. Their keys are spelt in ``KEYS`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..files import atomic_write
from ..image_files import PNG_ONLY, open_image
from .layout import OutputLayout

SOFTWARE = "invokeai-ti"
# Each text chunk's key, by what it holds. The judge's keys are read as a group: all or none.
KEYS = {
    "step": "step",
    "prompt": "prompt",
    "seed": "seed",
    "trigger": "trigger",
    "embedding": "embedding",
    "final": "final",
    "software": "software",
    "verdict": "verdict",
    "share": "judged_share",
    "concept": "judged_concept",
}
YES, NO = "yes", "no"


@dataclass(frozen=True)
class Judgement:
    """What a judge (the world model's) says of one preview: in words, as the share of pictures
    that show the concept of the training photos, and which concept that is."""

    verdict: str
    share: float
    concept: str


@dataclass(frozen=True)
class Preview:
    """One preview as its PNG records it; ``path`` is where it was read from (None before writing)."""

    step: int
    prompt: str
    seed: int | None
    trigger: str
    # The saved embedding file holding exactly these vectors ("" when none was saved at this step).
    embedding: str
    final: bool
    judgement: Judgement | None = None
    path: Path | None = None

    @property
    def prompts(self) -> list[str]:
        """The prompt of each row of pictures; ``prompt`` holds them a line each."""
        return [prompt for prompt in self.prompt.split("\n") if prompt]


def write_preview(path: Path, pictures: Image.Image, preview: Preview) -> None:
    """The grid with the record in its text chunks, written atomically."""
    info = PngInfo()
    for key, value in _text(preview).items():
        info.add_text(key, value)
    atomic_write(path, lambda tmp: pictures.save(tmp, format="PNG", pnginfo=info))


def _text(preview: Preview) -> dict[str, str]:
    text = {
        KEYS["step"]: str(preview.step),
        KEYS["prompt"]: preview.prompt,
        KEYS["seed"]: "" if preview.seed is None else str(preview.seed),
        KEYS["trigger"]: preview.trigger,
        KEYS["embedding"]: preview.embedding,
        KEYS["final"]: YES if preview.final else NO,
        KEYS["software"]: SOFTWARE,
    }
    if (judged := preview.judgement) is not None:
        text |= {KEYS["verdict"]: judged.verdict, KEYS["share"]: f"{judged.share:.4f}",
                 KEYS["concept"]: judged.concept}
    return text


def read_preview(path: Path, step: int) -> Preview | None:
    """The record of one preview (``step`` from its name); None when the file cannot be read."""
    try:
        with open_image(path, formats=PNG_ONLY) as image:
            text = dict(getattr(image, "text", {}))
    except (OSError, ValueError):
        return None
    return Preview(
        step=step,
        prompt=text.get(KEYS["prompt"], ""),
        seed=_number(text.get(KEYS["seed"]), int),
        trigger=text.get(KEYS["trigger"], ""),
        embedding=text.get(KEYS["embedding"], ""),
        final=text.get(KEYS["final"]) == YES,
        judgement=_judgement(text),
        path=path,
    )


def read_previews(layout: OutputLayout) -> list[Preview]:
    """The previews in the output folder, oldest first."""
    found = [read_preview(path, step) for step, path in layout.samples().items()]
    return sorted((preview for preview in found if preview is not None), key=lambda preview: preview.step)


def _judgement(text: dict[str, str]) -> Judgement | None:
    share = _number(text.get(KEYS["share"]), float)
    if share is None or KEYS["verdict"] not in text:
        return None
    return Judgement(text[KEYS["verdict"]], share, text.get(KEYS["concept"], ""))


def _number(text: str | None, kind: type) -> int | float | None:
    try:
        return kind(text) if text else None
    except ValueError:
        return None
