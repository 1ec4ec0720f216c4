"""A run's bookkeeping in its output folder: room on the disk before it starts, the settings
record, the checkpoint it continues, the trackers, the learning watch and the report refreshed
around each preview. A mixin of ``Trainer``, which holds the settings, the model, the layout and
``notify``."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write
from ..outputs.checkpoints import (
    Checkpoint,
    RunShape,
    checkpoint_bytes,
    checkpoint_to_resume,
    checkpoints_on_disk,
    restore_checkpoint,
)
from ..outputs.previous_run import set_aside_previous_run, set_aside_problem
from ..outputs.report import refresh_report
from ..outputs.resume import check_resumable, continue_schedule, schedule_note
from ..settling import MIN_SCORES, scores_in, too_few_scores
from .evaluation import FixedEvaluation
from .loading import TextEncoders
from .previews import Previews, preview_prompts, preview_seed
from .run import Run
from .state import TrainingState
from .watch import LearningWatch

SPARE_BYTES = 16 * 2**20
# The token width assumed for the disk estimate when a model's configs do not say (SD-2's).
UNKNOWN_WIDTH = 1024


def folder_size(folder: Path | None) -> int:
    if folder is None:
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class RunBookkeeping:
    """What a ``Trainer`` keeps in its output folder while it runs."""

    def _check_free_space(self) -> None:
        """Refuse to start a run whose checkpoints and embeddings cannot fit on the disk."""
        needed = self._bytes_needed()
        free = shutil.disk_usage(self.output_dir).free
        if free < needed:
            raise UserError(
                f"The disk holding {self.output_dir} has {free // 2**20} MiB free but this run "
                f"needs about {math.ceil(needed / 2**20)} MiB for its checkpoints and embeddings; "
                "free some space or choose another output folder."
            )

    def _bytes_needed(self) -> int:
        """The most the run holds at once: its checkpoints, its snapshots, the final files with the
        installed copy and its backup, and the exported pipeline."""
        s, files = self.settings, self.family.files
        widths = self.model.token_dims or (UNKNOWN_WIDTH,)
        checkpoints = checkpoints_on_disk(s.max_train_steps, s.checkpointing_steps, s.checkpoints_total_limit)
        saves = s.max_train_steps // s.save_steps + 1
        installed = 2 * s.num_vectors * sum(widths) * 4
        pipeline = 0 if s.only_save_embeds else folder_size(self.model.path)
        return (checkpoints * checkpoint_bytes(files, s.num_vectors, widths)
                + saves * files.save_bytes(s.num_vectors, widths) + installed + pipeline + SPARE_BYTES)

    def _record_settings(self, run: Run, timesteps: tuple[int, int]) -> None:
        """Write what this run used, the seed and the ``[low, high)`` timesteps included, before the
        first step."""
        low, high = timesteps
        record = self.settings.to_dict() | {
            # What the previews used, not "the default" (None): the report shows the record.
            "validation_prompt": list(preview_prompts(self.settings)) or "none",
            "validation_steps": self.settings.preview_every,
            # The steps the run plans (--max_train_steps, or what --num_train_epochs comes to).
            "total_steps": run.total_steps,
            "evaluation_scored": self.scores_evaluation(run.total_steps),
            # What the sample plan drew from, within the model's scheduler, first and last inclusive.
            "timesteps_trained": f"{low}-{high - 1}",
            "seed": run.seed,
            "model_location": str(self.model.path or self.model.location),
            "train_data_dir": str(self.data_dir),
            "output_dir": str(self.output_dir),
            "num_processes": run.topology.processes,
            "validation_seed": preview_seed(self.settings, run.seed),
        } | ({"bucket_step_used": self.bucket_step} if self.settings.bucket else {})
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.layout.settings_record,
            lambda tmp: tmp.write_text(json.dumps(record, indent=2), encoding="utf-8"),
        )

    def scores_evaluation(self, total_steps: int) -> bool:
        """Whether the run scores the fixed batch: always at an interval the user gave (a run may be
        resumed for longer at it); at the interval that falls back to half a short run, only where
        its scores can show the score settle. Its three scores never can, yet on a CPU they cost a
        short run more than its steps save (docs/benchmarks.md)."""
        s = self.settings
        return bool(s.validation_steps) or scores_in(total_steps, s.preview_every) >= MIN_SCORES

    def _build_watch(self, text: TextEncoders, images: int, state: TrainingState, run: Run) -> LearningWatch:
        """The vectors' size after every step and the fixed batch's score every preview step."""
        s = self.settings

        def snapshot(step: int) -> None:
            """The loop itself saves one every --save_steps, right after the watch has looked."""
            if step % s.save_steps:
                self.family.files.save_files(self.output_dir, s.token, text.vectors, step, self.model.name,
                                             snapshot=True)

        evaluation = None
        if self.scores_evaluation(run.total_steps):
            evaluation = FixedEvaluation(self.step, images=images)
        elif s.stop_when_settled and run.main:
            run.say(too_few_scores(run.total_steps, s.preview_every) + "; --stop_when_settled cannot stop this run.")
        return LearningWatch(
            evaluation=evaluation, size=state.size, vectors=text.vectors,
            encoders=[slot.label for slot in self.family.encoders], every=s.preview_every,
            total_steps=run.total_steps, stop_when_settled=s.stop_when_settled, main=run.main,
            norm_log=self.layout.norm_log, evaluation_log=self.layout.evaluation_log,
            save_snapshot=snapshot, notify=run.say,
        )

    def _preview(self, previews: Previews, step: int) -> None:
        """A preview when one is due, and the report around it once it is on disk."""
        if previews.at_step(step):
            refresh_report(self.layout)

    def _start_trackers(self, tracker) -> None:
        if tracker is not None:
            scalars = {k: v for k, v in self.settings.to_dict().items() if isinstance(v, (int, float, str, bool))}
            tracker.init_trackers("textual_inversion", config=scalars)

    def _checkpoint_to_resume(
        self, shape: RunShape, total_steps: int, main: bool, data: dict[str, Any]
    ) -> Checkpoint | None:
        """The checkpoint this run continues, already checked against the run; None for a new run."""
        request = self.settings.resume_from_checkpoint
        checkpoint = checkpoint_to_resume(self.output_dir, request) if request else None
        if checkpoint is None:
            if main and request:
                self.notify("No checkpoint to resume from yet; starting a new run.")
            if main and (note := set_aside_previous_run(self.layout, self.settings.logging_dir)) is not None:
                self.notify(note)
            return None
        set_aside_problem(self.layout, checkpoint.path)
        check_resumable(
            checkpoint, shape, total_steps, by_epochs=bool(self.settings.num_train_epochs), data=data
        )
        return checkpoint

    def _resume(
        self, checkpoint: Checkpoint | None, shape: RunShape, seed: int, state: TrainingState,
        total_steps: int, main: bool,
    ) -> tuple[int, int]:
        """The step to start from and the seed to use: the checkpoint's when resuming."""
        if checkpoint is None:
            return 0, seed
        restore_checkpoint(checkpoint, shape=shape, files=self.family.files, state=state)
        before, after = continue_schedule(state.lr_scheduler, checkpoint.step)
        if main:
            self.notify(f"Resuming from {checkpoint.path.name} (step {checkpoint.step} of {total_steps}).")
            note = schedule_note(self.settings.lr_scheduler, checkpoint, total_steps, before, after)
            if note is not None:
                self.notify(note)
        return checkpoint.step, checkpoint.seed
