"""Captions per image, in the conventions users bring from other trainers.

``photo.txt`` beside ``photo.jpg`` (kohya, OneTrainer) wins over a ``metadata.jsonl`` line with
``file_name`` and ``text`` (the Hugging Face image-folder convention). The trigger is written in a
caption as the trigger itself (``<psychedelic>`` or the bare word ``psychedelic``), or as ``{}`` or
``[name]`` (A1111's template habit); every form becomes the trained tokens. An image without a
caption is described by the templates, as before captions existed.

A caption that never names the trigger is refused: the embedding would be trained on sentences
that do not contain it, and learn nothing (the bug behind kohya_ss #1344 and sd-scripts #728).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..errors import Problem, UserError
from .images import CAPTION_SUFFIX, DATA_FOLDER_FIELD, METADATA_FILE, named_images

NAMES_SHOWN = 5


def caption_sources(folder: Path, images: list[Path]) -> dict[Path, tuple[str, str]]:
    """Each captioned image's text and where it came from (``photo.txt`` or ``metadata.jsonl``)."""
    found: dict[Path, tuple[str, str]] = {}
    metadata = folder / METADATA_FILE
    if metadata.is_file():
        by_name = {path.name: path for path in images}
        for file_name, text in _metadata_lines(metadata):
            if file_name in by_name:
                found[by_name[file_name]] = (text, METADATA_FILE)
    for image in images:
        beside = image.with_suffix(CAPTION_SUFFIX)
        if beside.is_file():
            found[image] = (_read_text(beside), beside.name)
    return {image: (text, source) for image, (text, source) in found.items() if text}


def caption_problem(folder: Path, trigger: str) -> Problem | None:
    """What the trainer would refuse about the folder's captions, asked before it starts.

    The fix is in the caption files, so the problem points at the data folder, not the trigger.
    """
    try:
        images = named_images(folder)
        captions_for(images, caption_sources(folder, images), trigger, f"<{trigger}>")
    except UserError as error:
        return Problem(str(error), DATA_FOLDER_FIELD)
    except OSError:
        return None
    return None


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(
            f"the caption file {path} is not UTF-8 text; save it as UTF-8 or delete it"
        ) from None
    except OSError as error:
        raise UserError(
            f"the caption file {path} cannot be read ({error.strerror or type(error).__name__}); "
            "fix its permissions or delete it"
        ) from None
    return " ".join(text.split())


def _metadata_lines(path: Path) -> list[tuple[str, str]]:
    lines = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            file_name, text = record["file_name"], record["text"]
            if not isinstance(file_name, str) or not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise UserError(
                f"line {number} of {path} is not a JSON object with a \"file_name\" and a \"text\" "
                f"string; correct it as {{\"file_name\": \"photo.jpg\", \"text\": \"a photo of <trigger>\"}}"
            ) from None
        lines.append((Path(file_name).name, " ".join(text.split())))
    return lines


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save it as UTF-8") from None


def trigger_pattern(trigger: str) -> re.Pattern[str]:
    """``<trigger>``, the bare word as a whole word, ``{}`` and ``[name]``."""
    word = re.escape(trigger)
    return re.compile(rf"<{word}>|(?<![\w<]){word}(?![\w>])|\{{\}}|\[name\]", re.IGNORECASE)


def with_trigger(text: str, trigger: str, placeholder: str) -> str | None:
    """The caption with every way of naming the trigger made the trained tokens; None when it
    never names it."""
    pattern = trigger_pattern(trigger)
    if not pattern.search(text):
        return None
    return pattern.sub(lambda _match: placeholder, text)


def captions_for(
    images: list[Path], sources: dict[Path, tuple[str, str]], trigger: str, placeholder: str
) -> list[str | None]:
    """Each image's caption with the trained tokens in, or None for the templates.

    Refuses, in one sentence naming the files, captions that never name the trigger.
    """
    captions: list[str | None] = []
    missing: list[str] = []
    for image in images:
        if image not in sources:
            captions.append(None)
            continue
        text, source = sources[image]
        captioned = with_trigger(text, trigger, placeholder)
        if captioned is None:
            missing.append(source if source != METADATA_FILE else f"{METADATA_FILE} ({image.name})")
        captions.append(captioned)
    if missing:
        shown = ", ".join(missing[:NAMES_SHOWN])
        if len(missing) > NAMES_SHOWN:
            shown += f" and {len(missing) - NAMES_SHOWN} more"
        raise UserError(
            f"{len(missing)} caption{'s' if len(missing) > 1 else ''} never name{'' if len(missing) > 1 else 's'} "
            f"the trigger <{trigger}>, so the embedding would learn nothing from "
            f"{'them' if len(missing) > 1 else 'it'} ({shown}); write <{trigger}>, {trigger}, {{}} "
            "or [name] where the concept appears in each, or delete those captions to use the templates"
        )
    return captions


def varied(
    caption: str, placeholder: str, *, shuffle: bool, keep: int, dropout: float,
    generator: torch.Generator,
) -> str:
    """kohya's tag habits: the comma-separated tags after the first ``keep`` are shuffled, and
    each may be left out with chance ``dropout``; a tag holding the trigger is never left out."""
    tags = [tag.strip() for tag in caption.split(",")]
    kept, rest = tags[:keep], tags[keep:]
    if shuffle:
        rest = [rest[i] for i in torch.randperm(len(rest), generator=generator).tolist()]
    if dropout:
        chances = torch.rand(len(rest), generator=generator).tolist()
        rest = [tag for tag, chance in zip(rest, chances) if placeholder in tag or chance >= dropout]
    return ", ".join(tag for tag in kept + rest if tag)
