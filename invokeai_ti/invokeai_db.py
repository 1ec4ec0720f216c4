"""InvokeAI 4.x-7.x's installed models, read from its database without disturbing it.

Since 4.0 InvokeAI keeps no models.yaml: each installed model is a row of the table ``models`` in
``<root>/databases/invokeai.db``, its settings a JSON ``config`` column (``key``, ``name``,
``base``, ``type``, ``format``, ``path``...). Since 6.9 an installed model's files sit in
``models/<key>/``, a folder named by a hash, so only the database knows the name the user sees.

The user's InvokeAI may be running while we read: it holds the database open in WAL mode, with
its newest rows still in ``invokeai.db-wal``. The file is therefore opened read-only through
SQLite itself (``mode=ro``), which reads those rows and can neither write nor checkpoint; a file
that cannot be read that way becomes a note, never a traceback, since listing models must keep
working with every other source.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import RootLayout
from .root_kind import invokeai_setting

DEFAULT_MODELS_DIR = "models"
# Long enough to wait out a writer that holds the file for a moment, short enough that
# ``--list-models`` still answers at once when another program keeps it locked.
BUSY_TIMEOUT_S = 2.0
MAIN_TYPE = "main"
NOT_LISTED_HINT = "its models are not listed; pass a model's folder or file to --model instead"


@dataclass(frozen=True)
class ModelRecord:
    """One row of InvokeAI's ``models`` table, in InvokeAI's own words (base ``sd-1``, ...)."""

    key: str
    name: str
    base: str
    type: str
    format: str
    # Where the files are: InvokeAI's stored path resolved against its models folder.
    path: Path
    description: str = ""
    # ``normal``, ``inpaint`` or ``depth`` for SD main models; None where InvokeAI does not say.
    variant: str | None = None
    prediction_type: str | None = None

    @property
    def is_main(self) -> bool:
        """Only main models carry the text encoders an embedding is trained in."""
        return self.type == MAIN_TYPE


@dataclass
class DatabaseRead:
    records: list[ModelRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def models_dir(root: Path) -> Path:
    """InvokeAI's models folder: ``models_dir`` of ``invokeai.yaml``, relative to the root."""
    setting = invokeai_setting(root, "models_dir")
    folder = Path(setting).expanduser() if isinstance(setting, str) and setting.strip() else Path(DEFAULT_MODELS_DIR)
    return folder if folder.is_absolute() else root / folder


def read_model_records(root: Path) -> DatabaseRead:
    """Every readable model row of the root's database, with a note for what could not be read.

    A missing database is no note: 2.3 and 3.x roots have none.
    """
    read = DatabaseRead()
    database = RootLayout(root).database
    if not database.is_file():
        return read
    try:
        rows = _config_rows(database)
    except sqlite3.Error as error:
        read.notes.append(_unreadable_note(database, error))
        return read
    folder = models_dir(root)
    for key, config_text in rows:
        record = _record(key, config_text, folder)
        if record is None:
            read.notes.append(
                f"A model in {database} (id {key}) has a record that is not InvokeAI's model "
                "settings, so it was skipped; InvokeAI's model manager can remove or re-add it."
            )
        else:
            read.records.append(record)
    return read


def _config_rows(database: Path) -> list[tuple[Any, Any]]:
    """The ``id`` and ``config`` of each row; the connection lives only as long as the query.

    ``Path.as_uri`` escapes characters (``?``, ``#``, ``%``) that would otherwise end the file
    name inside SQLite's URI. ``query_only`` makes a write an error even if ``mode=ro`` did not.
    """
    uri = database.absolute().as_uri() + "?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        connection.execute("PRAGMA query_only = 1")
        return connection.execute("SELECT id, config FROM models").fetchall()
    finally:
        connection.close()


def _record(key: Any, config_text: Any, folder: Path) -> ModelRecord | None:
    try:
        config = json.loads(config_text)
    except (TypeError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    wanted = ("name", "base", "type", "format", "path")
    if not all(isinstance(config.get(name), str) and config[name] for name in wanted):
        return None
    stored = Path(config["path"]).expanduser()
    path = stored if stored.is_absolute() else folder / stored
    return ModelRecord(
        key=str(config.get("key") or key),
        name=config["name"],
        base=config["base"],
        type=config["type"],
        format=config["format"],
        path=path.resolve(),
        description=_text_or_empty(config.get("description")),
        variant=_text_or_none(config.get("variant")),
        prediction_type=_text_or_none(config.get("prediction_type")),
    )


def _unreadable_note(database: Path, error: sqlite3.Error) -> str:
    reason = " ".join(str(error).split())
    if "locked" in reason or "busy" in reason:
        return (
            f"InvokeAI's database {database} is locked by another program ({reason}), so "
            f"{NOT_LISTED_HINT}, or try again in a moment."
        )
    if "no such table" in reason or "no such column" in reason:
        return (
            f"{database} has no table of models in the shape InvokeAI 4.0 and later write "
            f"({reason}), so {NOT_LISTED_HINT}."
        )
    return f"InvokeAI's database {database} could not be read ({reason}), so {NOT_LISTED_HINT}."


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _text_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""
