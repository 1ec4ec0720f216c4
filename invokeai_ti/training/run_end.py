"""The end of a run: the final files (with --stop_when_settled, the best-scored step's), the last
preview, the report, the exported pipeline, and the ``TrainingResult`` the caller gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..outputs.pipeline_export import TrainedEncoder, export_pipeline
from ..outputs.report import refresh_report
from ..outputs.run_result import result_step, write_result
from .loading import TextEncoders
from .previews import Previews
from .run import Run


@dataclass(frozen=True)
class TrainingResult:
    token: str
    # One tensor per text encoder, in the model family's order (clip_l, clip_g for SDXL).
    vectors: tuple[torch.Tensor, ...]
    output_dir: Path
    steps: int
    seed: int
    final_loss: float | None
    main_process: bool
    # The step whose embedding the final files hold and the workflow installs: ``steps``, or with
    # --stop_when_settled the step that scored best where the evaluation settled.
    result_step: int


class RunEnd:
    """The end of a ``Trainer``'s run, on the main process."""

    def _finish(self, reached: int, text: TextEncoders, previews: Previews, run: Run) -> int:
        """The final embedding, the last preview and the exported pipeline (main process only);
        returns the step the final files hold (``outputs.run_result``)."""
        s, files = self.settings, self.family.files
        chosen = result_step(self.layout)
        if chosen is None or chosen == reached:
            files.save_files(self.output_dir, s.token, text.vectors, reached, self.model.name)
        else:
            # --stop_when_settled: the last step keeps its step name, the final names the best step's.
            files.save_files(self.output_dir, s.token, text.vectors, reached, self.model.name, snapshot=True)
            write_result(self.layout, chosen)
        previews.finish(reached)
        report = refresh_report(self.layout)
        shown = "the loss" if s.previews_off else "the loss and the previews"
        run.say(f"Report with {shown}: {report} (open it in a browser).")
        if not s.only_save_embeds and self.model.path is not None:
            vectors = text.vectors if chosen in (None, reached) else files.read_saved(self.output_dir, s.token)
            self._export_pipeline(text, vectors)
        return reached if chosen is None else chosen

    def _export_pipeline(self, text: TextEncoders, vectors: Sequence[torch.Tensor]) -> None:
        trained = [
            TrainedEncoder(slot.encoder, slot.tokenizer, slot.kind, tokenizer, ids, parameter.detach().cpu())
            for slot, tokenizer, ids, parameter in zip(
                self.family.encoders, text.tokenizers, text.token_ids, vectors
            )
        ]
        export_pipeline(self.model.path, trained, self.layout.pipeline)
