"""``loss_log.csv``: one row per optimizer step, kept consistent across resumes."""

from __future__ import annotations

import csv
from pathlib import Path


class LossLog:
    """A resumed run drops the rows past its start, so the file never holds a step twice."""

    def __init__(self, path: Path, start_step: int) -> None:
        kept: list[list[str]] = []
        if start_step and path.exists():
            with open(path, newline="", encoding="utf-8") as handle:
                kept = [row for row in csv.reader(handle)][1:]
            kept = [row for row in kept if row and row[0].isdigit() and int(row[0]) <= start_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(["step", "loss", "learning_rate", "seconds"])
        self.writer.writerows(kept)
        self.handle.flush()

    def write(self, step: int, loss: float, rate: float, seconds: float) -> None:
        self.writer.writerow([step, f"{loss:.6f}", f"{rate:.6g}", f"{seconds:.2f}"])
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()
