"""What a run shows of its learning beyond the loss, and acts on: the vectors' size and the settling.

After every step the main process records the learned vectors' norm per text encoder beside the
vocabulary's median norm (``vector_norms.csv``) and says once, in one sentence, when the vectors
grow past the size at which the world model stopped following the rest of a prompt. Every
``--validation_steps`` every process scores the fixed evaluation batch (``evaluation.csv``); each
step that scores better than every one before gets its snapshot, so whichever the settling
(``invokeai_ti.settling``) picks can be installed, and with ``--stop_when_settled`` the run ends
where the score settled as it would at its last step, its result the step that scored best
(``outputs.run_result``).

The stop is decided from the scores alone, which every process holds identically, so the
processes agree without talking; the scores so far travel in each checkpoint, so a resumed run
decides exactly as the run it continues.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..outputs.learning_log import EVALUATION_COLUMNS, NORM_COLUMNS, StepRows
from ..outputs.learning_report import OVERSIZE, oversize_message
from ..settling import Settled, settled
from .evaluation import FixedEvaluation
from .vector_size import VectorSize


class LearningWatch:
    def __init__(
        self,
        *,
        evaluation: FixedEvaluation | None,
        size: VectorSize,
        vectors: Sequence[torch.Tensor],
        encoders: Sequence[str],
        every: int,
        total_steps: int,
        stop_when_settled: bool,
        main: bool,
        norm_log: Path,
        evaluation_log: Path,
        save_snapshot: Callable[[int], None],
        notify: Callable[[str], None],
    ) -> None:
        self.evaluation = evaluation
        self.size = size
        self.vectors = vectors
        self.encoders = list(encoders)
        self.every = every
        self.total_steps = total_steps
        self.stop_when_settled = stop_when_settled
        self.main = main
        self.norm_log_path = norm_log
        self.evaluation_log_path = evaluation_log
        self.save_snapshot = save_snapshot
        self.notify = notify
        self.history: list[tuple[int, float]] = []
        # Sizes measured but not yet read from the device: (step, every encoder's norms in a row).
        self.unread: list[tuple[int, torch.Tensor]] = []
        self.settled: Settled | None = None
        self.warned = False
        self.norm_log: StepRows | None = None
        self.evaluation_log: StepRows | None = None

    def start(self, step: int, history: Sequence[tuple[int, float]]) -> None:
        """Open the logs at ``step`` with the scores so far (a checkpoint's); score a fresh run's start."""
        self.history = sorted((s, score) for s, score in history if s <= step)
        self.settled = settled(self.history)
        if self.main:
            self.norm_log = StepRows(self.norm_log_path, NORM_COLUMNS, step)
            if self.evaluation is not None or self.history:
                self.evaluation_log = StepRows(self.evaluation_log_path, EVALUATION_COLUMNS, 0)
                self.evaluation_log.write(*[[s, f"{score:.6f}"] for s, score in self.history])
        if step == 0:
            self.note(0)
            self.look()
            self._evaluate(0)

    def note(self, step: int) -> None:
        """Measure the vectors' size after this step, kept on the device until the loop looks."""
        if self.main:
            with torch.no_grad():
                self.unread.append((step, torch.cat([vectors.detach().float().norm(dim=1) for vectors in self.vectors])))

    def look(self) -> None:
        """Write the sizes noted since the last look, read in one transfer, and warn once."""
        if not self.unread:
            return
        unread, self.unread = self.unread, []
        sizes = torch.stack([sizes for _, sizes in unread]).tolist()
        counts = [len(vectors) for vectors in self.vectors]
        for (step, _), flat in zip(unread, sizes):
            rows, first = [], 0
            for count in counts:
                rows.append(flat[first : first + count])
                first += count
            self._record_norms(step, rows)

    def after_step(self, step: int) -> bool:
        """Score the batch when due; True when the run should end here (it settled and was asked
        to stop). The loop has looked at this step's results first."""
        if step % self.every and step < self.total_steps:
            return False
        was = self.settled
        self._evaluate(step)
        if was is None and self.settled is not None:
            if self.main:
                best = self.settled.best
                if not self.stop_when_settled:
                    pick = f"the report recommends the snapshot of step {best}, which scored best"
                elif best == step:
                    pick = "stopping here, as --stop_when_settled asks; this step scored best and is the run's result"
                else:
                    pick = (f"stopping here, as --stop_when_settled asks; step {best} scored best, so its "
                            "snapshot is the run's result, the one installed")
                self.notify(f"The evaluation score settled by step {step}: {pick}.")
            return self.stop_when_settled and step < self.total_steps
        return False

    def close(self) -> None:
        for log in (self.norm_log, self.evaluation_log):
            if log is not None:
                log.close()

    def _evaluate(self, step: int) -> None:
        """Score the fixed batch; memory running out ends the scoring, never the training."""
        if self.evaluation is None:
            return
        try:
            score = self.evaluation.score()
        except (torch.OutOfMemoryError, MemoryError):
            self.evaluation = None
            if self.main:
                self.notify(
                    f"The evaluation batch stopped: memory ran out while scoring it at step {step}. "
                    "Training goes on; the report recommends no step."
                )
            return
        if self.main and step > 0 and all(score < before for _, before in self.history):
            self.save_snapshot(step)
        self.history.append((step, score))
        if self.settled is None:
            self.settled = settled(self.history)
        if self.evaluation_log is not None:
            self.evaluation_log.write([step, f"{score:.6f}"])

    def _record_norms(self, step: int, rows: list[list[float]]) -> None:
        self.norm_log.write(*[
            [step, encoder, f"{sum(row) / len(row):.6f}", f"{max(row):.6f}", f"{median:.6f}"]
            for encoder, row, median in zip(self.encoders, rows, self.size.references)
        ])
        if not self.warned:
            for encoder, row, median in zip(self.encoders, rows, self.size.references):
                if max(row) > OVERSIZE * median:
                    self.warned = True
                    self.notify(oversize_message(step, encoder, max(row), median))
                    break
