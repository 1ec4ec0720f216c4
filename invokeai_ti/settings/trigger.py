"""The trigger and its vectors: the word a prompt uses, what it stands for, how many vectors it
learns, what they start from and how their size is held; and the rules a trigger's text follows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import Problem
from .fields import choice_problem, setting

LEARNABLE_PROPERTIES = ("object", "style")
TRIGGER_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
# What InvokeAI 3.x and later look up as an embedding in a prompt's ``<name>``: any other
# character ends the match, so an embedding named with one can never be used there.
INVOKEAI_NAME_PATTERN = re.compile(r"^[A-Za-z0-9., _-]+$")


def bare_trigger(placeholder: str) -> str:
    """``<psychedelic>`` and ``psychedelic`` both name the trigger ``psychedelic``."""
    text = placeholder.strip()
    if len(text) >= 2 and text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return text


def invokeai_trigger_problem(placeholder: str) -> Problem | None:
    """A trigger InvokeAI could register but never use: its prompts only match ``<name>`` of
    letters, digits, '.', ',', space, '_' and '-'."""
    trigger = bare_trigger(placeholder)
    if not trigger or INVOKEAI_NAME_PATTERN.match(trigger):
        return None
    bad = sorted({c for c in trigger if not INVOKEAI_NAME_PATTERN.match(c)})
    fixed = re.sub(r"[^A-Za-z0-9._-]+", "_", trigger).strip("_") or "embedding"
    return Problem(
        f"InvokeAI cannot use the trigger '{trigger}' in a prompt, because its prompts match only "
        f"letters, digits, '.', ',', space, '_' and '-' between < and > (not {', '.join(map(repr, bad))}); "
        f"use '{fixed}' instead",
        "placeholder_token",
    )


def trigger_problem(placeholder: str) -> Problem | None:
    """The trigger names folders (``embeddings/<trigger>/``, the output and data folders) and a
    file, so it must be one plain folder name: no separator, no control character (a newline
    included), and not ``.`` or ``..``, which name the folder above instead. A leading dot would
    hide the folders, and the trainer's own temporary files are the ones whose names start so."""
    trigger = bare_trigger(placeholder)
    if not trigger:
        return Problem("the trigger term is empty; type a word such as 'psychedelic'", "placeholder_token")
    if not TRIGGER_PATTERN.fullmatch(trigger):
        bad = sorted({c for c in trigger if not TRIGGER_PATTERN.fullmatch(c)})
        shown = ", ".join("space" if c == " " else repr(c) for c in bad)
        return Problem(
            f"the trigger term {trigger!r} contains {shown}; use only letters, digits, '.', '-' and '_'",
            "placeholder_token",
        )
    if trigger.startswith("."):
        return Problem(
            f"the trigger term '{trigger}' starts with a dot, which would name a hidden folder (or the "
            "folder above); start it with a letter or a digit",
            "placeholder_token",
        )
    return None


@dataclass
class TokenSettings:
    """The trigger and its vectors (``--help``'s token group)."""

    placeholder_token: str = setting(
        "",
        "the trigger term; 'psychedelic' and '<psychedelic>' both train '<psychedelic>'",
        group="token",
        aliases=("--trigger_term",),
        label="Trigger Term",
    )
    learnable_property: str = setting(
        "object", "what the images share: an object or a style", group="token",
        choices=LEARNABLE_PROPERTIES, label="Learnable property",
    )
    initializer_token: str = setting(
        "*",
        "a word or phrase the new vectors start from, one token per vector ('blue triangle' with "
        "--num_vectors 2 starts them at 'blue' and 'triangle'; one word starts every vector)",
        group="token", label="Initializer",
    )
    num_vectors: int = setting(
        1, "number of vectors the trigger learns (more capture more detail, need more steps)",
        group="token", label="Vectors per trigger", slider=(1, 16),
    )
    preserve_embedding_norm: bool = setting(
        False,
        "after each step, rescale each new vector to the median norm of the text encoder's "
        "vocabulary (OneTrainer's option), so the trigger cannot grow to drown the rest of a prompt",
        group="token", label="Keep the vectors at the vocabulary's size",
    )
    learn_direction_only: bool = setting(
        False,
        "hold each new vector at the vocabulary's median norm from the start and learn only its "
        "direction, at --direction_learning_rate (Directional Textual Inversion)",
        group="token", label="Learn only the vectors' direction",
    )
    direction_learning_rate: float = setting(
        1e-2,
        "the learning rate of --learn_direction_only, in steps of a unit direction (scaled like "
        "--learning_rate by --scale_lr)",
        group="token", label="Direction learning rate",
    )
    initial_embedding: Path | None = setting(
        None,
        "continue from an existing embedding file (diffusers .bin/.safetensors, A1111 .pt or "
        "emb_params)",
        group="token",
        metavar="FILE",
    )

    @property
    def trigger(self) -> str:
        return bare_trigger(self.placeholder_token)

    @property
    def token(self) -> str:
        return f"<{self.trigger}>"

    def word_problems(self) -> list[Problem]:
        found = [trigger_problem(self.placeholder_token)]
        if not self.initializer_token.strip():
            found.append(Problem("the initializer is empty; use a word such as '*' or 'painting', or a short "
                                 "phrase", "initializer_token"))
        return [problem for problem in found if problem is not None]

    def property_problem(self) -> Problem | None:
        return choice_problem(self.learnable_property, "learnable property", LEARNABLE_PROPERTIES,
                              "learnable_property")

    def vector_size_problems(self) -> list[Problem]:
        found = []
        if self.preserve_embedding_norm and self.learn_direction_only:
            found.append(Problem(
                "--preserve_embedding_norm and --learn_direction_only both hold the vectors' size; choose one "
                "of them", "learn_direction_only"))
        rate = self.direction_learning_rate
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            found.append(Problem(f"the direction learning rate must be a positive number such as 1e-2, not {rate}",
                                 "direction_learning_rate"))
        return found
