"""``loss_log.csv``: one row per optimizer step; its columns, its writer and its reader.

The trainer writes it as it goes (``LossLog``); the report, the plot and ``--install-step`` read it
(``read_loss_log``). The columns are the fields of ``LossRow``, in order, each written in its
field's ``format``: a new measurement is a new field with a default of None, and a log written
before it existed still reads (the value is None there). A row cut short by a killed run is
skipped, and a resumed run drops the rows past its start, so the file never holds a step twice.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from ..files import create_file


@dataclass(frozen=True)
class LossRow:
    step: int = field(metadata={"format": "d"})
    loss: float = field(metadata={"format": ".6f"})
    learning_rate: float = field(metadata={"format": ".6g"})
    # Seconds since this run (or its resume) started, at the end of the step.
    seconds: float | None = field(default=None, metadata={"format": ".2f"})


COLUMNS = tuple(f.name for f in dataclasses.fields(LossRow))
# What every row has; a row without one of them was cut short.
REQUIRED = tuple(f.name for f in dataclasses.fields(LossRow) if f.default is dataclasses.MISSING)
_TYPES = get_type_hints(LossRow)


def _cell(row: LossRow, column: dataclasses.Field) -> str:
    value = getattr(row, column.name)
    return "" if value is None else format(value, column.metadata["format"])


def _value(column: str, text: str) -> Any:
    """The cell as its field's type; an empty cell is None (a field the row did not measure)."""
    if text == "":
        return None
    return int(text) if _TYPES[column] is int else float(text)


class LossLog:
    """The writer; ``start_step`` > 0 keeps the rows up to it from the file a resumed run continues."""

    def __init__(self, path: Path, start_step: int) -> None:
        kept = [row for row in read_loss_log(path) if row.step <= start_step] if start_step else []
        self.handle = create_file(path)
        self.writer = csv.writer(self.handle)
        self.writer.writerow(COLUMNS)
        for row in kept:
            self.write(row)

    def write(self, row: LossRow) -> None:
        self.writer.writerow([_cell(row, column) for column in dataclasses.fields(LossRow)])
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def read_loss_log(path: Path) -> list[LossRow]:
    """The rows of the file; a row missing a value that every row has (step, loss, rate) is skipped.

    Bytes that are not UTF-8 (a damaged disk, an editor's encoding) spoil only their own row,
    which is skipped like a row cut short: the rows around it still show.
    """
    rows = []
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            for record in csv.DictReader(handle):
                try:
                    values = {name: _value(name, record[name]) for name in COLUMNS if record.get(name) is not None}
                except ValueError:
                    continue
                if all(values.get(name) is not None for name in REQUIRED):
                    rows.append(LossRow(**values))
    except FileNotFoundError:
        return []
    return rows
