"""The world's CLIP BPE vocabulary: every word it or the trainer speaks is one whole-word token.

Textual inversion behaves as on a real model only if "a photo of a {}" and an initializer such as
"toy" tokenize into whole words, as they do in CLIP's 49,408-token vocabulary; a word outside the
list still tokenizes, letter by letter, like a rare word does in the real one.
"""

from __future__ import annotations

import re
from pathlib import Path

from invokeai_ti.data.templates import OBJECT_TEMPLATES, STYLE_TEMPLATES
from invokeai_ti.world.scene import COLOURS, GENERIC_NOUNS, SHAPES, all_captions

from .pipelines import KNOWN_WORDS, write_tiny_tokenizer

INITIALIZERS: tuple[str, ...] = (
    "toy", "object", "thing", "shape", "figure", "sign", "symbol", "icon", "item", "pattern",
    "ball", "block", "badge", "mark", "blob", "dot", "sticker", "logo", "art", "style", "colour",
    "color", "paint", "texture",
)
"""Ordinary words a user may pass as ``--initializer_token``."""

PROMPT_WORDS: tuple[str, ...] = (
    "a", "an", "the", "of", "photo", "picture", "painting", "drawing", "sketch", "image", "in",
    "style", "with", "and", "on", "background", "by",
)
"""The words of the demo's and the previews' prompts ("a photo of <trigger>", "a painting in the
style of <trigger>")."""


def _words(texts: tuple[str, ...] | list[str]) -> list[str]:
    return [word for text in texts for word in re.findall(r"[a-z]+", text.lower())]


def world_words() -> tuple[str, ...]:
    """Each word once, in a fixed order, so the same vocabulary (and token ids) comes out every time."""
    words = (
        list(COLOURS) + list(SHAPES) + list(GENERIC_NOUNS) + _words(all_captions())
        + _words(OBJECT_TEMPLATES) + _words(STYLE_TEMPLATES) + list(INITIALIZERS) + list(PROMPT_WORDS)
    )
    return tuple(word for word in dict.fromkeys(words) if word not in KNOWN_WORDS)


def write_world_tokenizer(folder: Path, *, pad_token: str = "<|endoftext|>") -> None:
    """Write the CLIPTokenizer files (vocab.json, merges.txt, tokenizer configs) to ``folder``;
    SDXL's second tokenizer pads with "!"."""
    write_tiny_tokenizer(Path(folder), world_words(), pad_token=pad_token)
