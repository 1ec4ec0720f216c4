"""``vector_norms.csv`` and ``evaluation.csv``: how big the vectors are and how well they fit.

Two small logs beside ``loss_log.csv``, written by the main process and read by the report:

- the norm of the learned vectors after every step, per text encoder, beside the vocabulary's
  median norm (the size of an ordinary word), so the report can show when the trigger outgrows
  the words it is meant to sit among;
- the loss of the fixed evaluation batch every ``--validation_steps``, the score whose settling
  marks the step to pick.

Like the loss log, a resumed run keeps the rows up to its start step and writes on from there,
so neither file ever holds a step twice.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..files import create_file

NORM_COLUMNS = ["step", "encoder", "mean_norm", "largest_norm", "vocabulary_median"]
EVALUATION_COLUMNS = ["step", "score"]


class StepRows:
    """A CSV of rows keyed by their first column, a step; rows past ``start_step`` are dropped."""

    def __init__(self, path: Path, columns: list[str], start_step: int) -> None:
        kept: list[list[str]] = []
        if start_step and path.exists():
            with open(path, newline="", encoding="utf-8", errors="replace") as handle:
                kept = [row for row in csv.reader(handle)][1:]
            kept = [row for row in kept if row and row[0].isdigit() and int(row[0]) <= start_step]
        self.handle = create_file(path)
        self.writer = csv.writer(self.handle)
        self.writer.writerow(columns)
        self.writer.writerows(kept)
        self.handle.flush()

    def write(self, *rows: list[object]) -> None:
        self.writer.writerows(rows)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


@dataclass(frozen=True)
class NormRow:
    step: int
    encoder: str
    mean_norm: float
    largest_norm: float
    vocabulary_median: float


def read_norms(path: Path) -> list[NormRow]:
    """The rows of ``vector_norms.csv``; a row cut short by a killed run is skipped."""
    found = []
    for record in read_rows(path):
        try:
            found.append(NormRow(int(record["step"]), record["encoder"], float(record["mean_norm"]),
                                 float(record["largest_norm"]), float(record["vocabulary_median"])))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def read_evaluation(path: Path) -> list[tuple[int, float]]:
    """(step, score) of ``evaluation.csv``, in step order."""
    found = []
    for record in read_rows(path):
        try:
            found.append((int(record["step"]), float(record["score"])))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(found)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows as text; bytes that are not UTF-8 spoil only their row, which its reader skips."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        return []
