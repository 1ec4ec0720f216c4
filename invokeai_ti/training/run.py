"""One training run as each of its parts sees it: ``Run``, and this process's place in it.

The step, the previews and the loop are each built from the loaded model
(``loading.LoadedModel``) and a ``Run``: the settings with every default resolved, the output
folder's layout and how the family writes its embeddings there, the seed, the run's length, this
process's place and device, and how to talk to the person watching (lines above the progress
bar, the bars themselves). A part reads what it needs from here instead of taking each value as
an argument of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..outputs.family_files import FamilyFiles
from ..outputs.layout import OutputLayout
from ..settings import TrainingSettings

Notify = Callable[[str], None]


@dataclass(frozen=True)
class Topology:
    """This process's place in the run."""

    processes: int = 1
    rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Run:
    """What every part of one run shares. ``settings.resolution`` is resolved (never None)."""

    settings: TrainingSettings
    layout: OutputLayout
    files: FamilyFiles
    seed: int
    total_steps: int
    topology: Topology = field(default_factory=Topology)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    notify: Notify = print
    # Progress bars on the main process; off when the output is not a terminal.
    show_progress: bool = False

    @property
    def main(self) -> bool:
        return self.topology.main

    @property
    def samples_per_step(self) -> int:
        s = self.settings
        return s.train_batch_size * self.topology.processes * s.gradient_accumulation_steps

    def say(self, message: str) -> None:
        """A line for the person watching, printed above the progress bar, which would otherwise
        draw over it."""
        if not self.show_progress:
            self.notify(message)
            return
        from tqdm.auto import tqdm

        tqdm.write(message)

    def progress_bar(self, total: int, label: str, unit: str = "step", **options: Any):
        """A bar of its own for a pause of more than a few seconds; shown on the main process only."""
        from tqdm.auto import tqdm

        options = {"leave": False} | options
        return tqdm(total=total, desc=label, unit=unit, dynamic_ncols=True,
                    disable=not (self.main and self.show_progress), **options)
