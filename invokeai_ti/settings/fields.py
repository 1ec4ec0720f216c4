"""How a setting is declared and read back: ``setting`` (a dataclass field that carries its help
text, its ``--help`` group and its form hints) and ``coerce`` (a saved or typed value converted to
a field's type).

Every part of the settings declares its fields with ``setting``; the CLI, the form and the saved
preferences all read that metadata, so none of them keeps a second copy of a default or a help.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Any

from ..errors import Problem

# What ``coerce`` answers for a value that cannot be the field's type.
INVALID = object()


def setting(default: Any, help: str, *, group: str, aliases: tuple[str, ...] = (), **meta: Any) -> Any:
    """A dataclass field carrying what the CLI and the form need to present it.

    ``secret=True`` marks a sign-in secret: it is never written to a file (preferences, the run's
    training_settings.json), never read from one, never put on a child's command line and never
    shown in a repr; ``flag=False`` gives it no command-line flag either (a password would stay in
    the shell's history), so it comes from the environment or the form's hidden field.
    """
    return field(default=default, repr=not meta.get("secret", False),
                 metadata={"help": help, "group": group, "aliases": aliases, **meta})



def choice_problem(value: str | None, what: str, allowed: tuple[str, ...], name: str) -> Problem | None:
    """A value that is not one of its setting's choices (None means "the default")."""
    if value is not None and value not in allowed:
        return Problem(f"the {what} '{value}' is unknown; use one of {', '.join(allowed)}", name)
    return None


def field_types(f: dataclasses.Field) -> tuple[type, bool]:
    """The base type of a field and whether it may be None (annotations are strings here)."""
    annotation = str(f.type)
    optional = "None" in annotation
    kinds = (("bool", bool), ("int", int), ("float", float), ("Path", Path), ("str", str), ("tuple", tuple))
    for name, kind in kinds:
        if annotation.startswith(name):
            return kind, optional
    raise TypeError(f"unsupported setting type {annotation}")


def coerce(f: dataclasses.Field, value: Any) -> Any:
    """Convert a loaded value to the field's type, or ``INVALID`` when it cannot be."""
    kind, optional = field_types(f)
    if value is None or value == "":
        return None if optional else (INVALID if kind is not str else "")
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                return INVALID
            return int(value)
        if kind is float:
            return float(value)
        if kind is Path:
            return Path(str(value)).expanduser()
        if kind is tuple:
            return (str(value),) if isinstance(value, str) else tuple(str(item) for item in value)
        return str(value)
    except (TypeError, ValueError):
        return INVALID

