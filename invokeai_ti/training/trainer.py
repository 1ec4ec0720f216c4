"""One training run, from loading the model to the final embedding in the output folder.

Three choices make it faster than the diffusers example with the same maths: the latent cache
(``latents``), training only the new vectors (``tokens``), and drawing all randomness from the
seed and the sample's number (``plan``), which also makes a resumed run continue exactly.

Accelerate owns the processes (who is main, the process group, gloo on a CPU) and the trackers;
this package owns the maths (precision, loss scaling, gradient averaging and accumulation), so
nothing is done twice. The trainer knows nothing of terminals or forms: it reports through
``notify`` and the files in the output folder.

Setting a run up lives in ``setup_data`` and ``setup_model``, its bookkeeping in the output
folder in ``bookkeeping``, its end in ``run_end``; this module holds the run's order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..cpu_threads import CpuThreads
from ..device import training_device
from ..errors import UserError
from ..models import ModelInfo
from ..outputs.checkpoints import RunShape
from ..outputs.lock import OutputLock
from ..quiet import quiet_imports
from ..settings import TrainingSettings
from .bookkeeping import RunBookkeeping
from .family import family_for
from .latents import LatentCache
from .loading import ModelLoader, TextEncoders
from .loop import TrainingLoop
from .previews import Previews, Verdict
from .run import Notify, Run, Topology
from .run_end import RunEnd, TrainingResult
from .setup_data import DataSetup
from .setup_model import ModelSetup
from .state import TrainingState
from .step import TrainingStep

__all__ = ["Notify", "Trainer", "TrainingResult", "deterministic_mode"]


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Bit-identical CUDA runs: deterministic kernels and a fixed cuBLAS workspace.

    Process-wide switches, restored on the way out so an in-process caller is left as it was.
    """
    if not enabled:
        yield
        return
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[1], saved[2]
        if saved[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


class Trainer(DataSetup, ModelSetup, RunBookkeeping, RunEnd):
    """One training run; ``text``, ``cache`` and ``step`` hold its live parts once the model is
    loaded, for whoever looks after training (tests, previews)."""

    def __init__(
        self,
        settings: TrainingSettings,
        model: ModelInfo,
        data_dir: Path,
        output_dir: Path,
        *,
        notify: Notify = print,
        show_progress: bool = True,
        preview_verdict: Verdict | None = None,
    ) -> None:
        self.settings = dataclasses.replace(settings, resolution=settings.resolution or model.native_resolution)
        self.model = model
        self.family = family_for(model)
        self.data_dir = data_dir
        self.output_dir = output_dir
        self.layout = self.family.files.output_layout(output_dir, settings.token)
        self.notify = notify
        self.show_progress = show_progress
        self.preview_verdict = preview_verdict
        # The bucket step trained with: the setting's, or a finer one when it leaves only the square.
        self.bucket_step = settings.bucket_reso_steps
        self.text: TextEncoders | None = None
        self.cache: LatentCache | None = None
        self.step: TrainingStep | None = None

    def run(self) -> TrainingResult:
        s = self.settings
        with quiet_imports():
            from accelerate import Accelerator
            from accelerate.utils import broadcast_object_list

        # cpu=True is what lets `accelerate launch --multi_gpu` on a machine without CUDA form a
        # gloo process group instead of silently running N unrelated single-process trainings.
        with quiet_imports():
            accelerator = Accelerator(
                mixed_precision="no",
                cpu=training_device().type == "cpu",
                log_with=None if s.report_to == "none" else s.report_to,
                project_dir=str(self.output_dir / s.logging_dir),
            )
        topology = Topology(accelerator.num_processes, accelerator.process_index)
        device = accelerator.device
        if s.allow_tf32 and device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        seed = s.seed if s.seed is not None else int.from_bytes(os.urandom(4), "little")
        lock = OutputLock(self.output_dir)
        problem = None
        if topology.main:
            try:
                if (note := lock.acquire()) is not None:
                    self.notify(note)
                self.layout.refuse_links()
                self.layout.clear_killed_run()
                self._check_free_space()
            except UserError as error:
                problem = str(error)
        if topology.processes > 1:
            seed, problem = broadcast_object_list([seed, problem])
        if problem is not None:
            lock.release()
            raise UserError(problem)
        tracker = accelerator if s.report_to != "none" else None
        # On a CPU, as many threads as there are idle cores (cpu_threads); a GPU keeps torch's own.
        threads = CpuThreads(deterministic=s.deterministic,
                             notify=self.notify if topology.main else (lambda _message: None))
        held = threads.held() if device.type == "cpu" else contextlib.nullcontext()
        try:
            with deterministic_mode(s.deterministic), held:
                return self._run_locked(Run(
                    s, self.layout, self.family.files, seed, total_steps=0, topology=topology, device=device,
                    notify=self.notify, show_progress=self.show_progress,
                ), tracker, threads)
        finally:
            lock.release()
            if tracker is not None:
                accelerator.end_training()

    def _run_locked(self, run: Run, tracker: Any, threads: CpuThreads) -> TrainingResult:
        """The run, phase by phase; each phase returns what the next ones need."""
        s, main = self.settings, run.main
        loader = ModelLoader(self.model, self.family, s)
        multiple = loader.side_multiple()
        self._take_a_bucket_step_with_buckets(multiple)
        data = self._read_data(main, multiple)
        self._check_bucket_sides(data, multiple)
        text = self._load_text(loader, main)
        run = dataclasses.replace(run, total_steps=self._total_steps(len(data.images), run.samples_per_step))
        shape = RunShape.of_run(
            s, model=self.model.name, resolution=s.resolution, num_vectors=len(text.tokens),
            token_dims=text.widths, num_processes=run.topology.processes,
        )
        record = data.record()
        # Before the latents and the UNet: a refused resume costs seconds, not minutes of caching.
        checkpoint = self._checkpoint_to_resume(shape, run.total_steps, main, record)
        self.text, self.cache = text, self._cache_latents(loader, data, run)
        model = self._load_model(loader, text, run.device, main)
        state = TrainingState.create(
            text.vectors, s, samples_per_step=run.samples_per_step, total_steps=run.total_steps, device=run.device,
            size=self._vector_size(text),
        )
        start_step, seed = self._resume(checkpoint, shape, run.seed, state, run.total_steps, main)
        # Only now: a refused resume must not overwrite the record of the run it belongs to, and
        # a resumed run records the checkpoint's seed, which is the one it trains with.
        run = dataclasses.replace(run, seed=seed)
        if main:
            self._record_settings(run, self._timesteps(model))
        self.step = self._build_step(model, self._samples(run, data, text, model), run, state)
        watch = self._build_watch(text, len(data.images), state, run)
        watch.start(start_step, checkpoint.evaluation if checkpoint is not None else ())
        self._start_trackers(tracker)
        previews = Previews(model, run, start_step=start_step, verdict=self.preview_verdict)
        loop = TrainingLoop(run, state, self.step, shape=shape, data=record, tracker=tracker,
                            before_step=lambda at: (threads.follow_load(), self._preview(previews, at)), watch=watch)
        reached = loop.train(start_step)
        result = self._finish(reached, text, previews, run) if main else reached
        return TrainingResult(
            token=s.token, vectors=tuple(parameter.detach().float().cpu() for parameter in text.vectors),
            output_dir=self.output_dir, steps=reached, seed=seed, final_loss=loop.last_loss, main_process=main,
            result_step=result,
        )
