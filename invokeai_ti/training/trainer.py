"""One training run, from loading the model to the final embedding in the output folder.

Three choices make it faster than the diffusers example with the same maths: the latent cache
(``latents``), training only the new vectors (``tokens``), and drawing all randomness from the
seed and the sample's number (``plan``), which also makes a resumed run continue exactly.

Accelerate owns the processes (who is main, the process group, gloo on a CPU) and the trackers;
this package owns the maths (precision, loss scaling, gradient averaging and accumulation), so
nothing is done twice. The trainer knows nothing of terminals or forms: it reports through
``notify`` and the files in the output folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..cpu_threads import CpuThreads
from ..data.buckets import step_with_buckets
from ..data.folder import TrainingData, read_training_data
from ..data.templates import caption, templates_for
from ..device import probe_xformers, training_device
from ..errors import UserError
from ..files import atomic_write
from ..models import ModelInfo
from ..outputs.checkpoints import (
    Checkpoint,
    RunShape,
    checkpoint_bytes,
    checkpoint_to_resume,
    checkpoints_on_disk,
    restore_checkpoint,
)
from ..outputs.lock import OutputLock
from ..outputs.pipeline_export import TrainedEncoder, export_pipeline
from ..outputs.previous_run import set_aside_previous_run, set_aside_problem
from ..outputs.report import refresh_report
from ..outputs.run_result import result_step, write_result
from ..outputs.resume import check_resumable, continue_schedule, schedule_note
from ..quiet import quiet_imports
from ..settings import TrainingSettings
from .evaluation import FixedEvaluation
from .family import family_for
from .latents import LatentCache, cache_latents
from .loading import LoadedModel, ModelLoader, TextEncoders
from .loop import TrainingLoop
from .plan import SamplePlan, timestep_range
from .previews import Previews, Verdict, preview_prompts, preview_seed
from .prompts import Prompts
from .run import Notify, Run, Topology
from .state import TrainingState
from .step import Samples, TrainingStep
from .tokens import ExtendedEmbedding
from .vector_size import VectorSize, mode_of, vocabulary_median_norm
from .watch import LearningWatch

SPARE_BYTES = 16 * 2**20
# The token width assumed for the disk estimate when a model's configs do not say (SD-2's).
UNKNOWN_WIDTH = 1024


def folder_size(folder: Path | None) -> int:
    if folder is None:
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


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


class Trainer:
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

    def training_data(self) -> TrainingData:
        """The data folder read and checked, captions, masks and buckets included."""
        s = self.settings
        return read_training_data(
            self.data_dir, trigger=s.trigger, resolution=s.resolution, bucket=s.bucket,
            bucket_step=self.bucket_step, masked_loss=s.masked_loss,
        )

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
            "min_timestep": self.settings.lowest_timestep,
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

    def _initial_vectors(self, widths: list[int], main: bool) -> tuple[torch.Tensor, ...] | None:
        s = self.settings
        if s.initial_embedding is None:
            return None
        initial = self.family.files.read_initial(s.initial_embedding, widths, self.model.name)
        if initial[0].shape[0] != s.num_vectors and main:
            self.notify(f"{s.initial_embedding.name} has {initial[0].shape[0]} vectors; training that many.")
        return initial

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

    def _read_data(self, main: bool, multiple: int) -> TrainingData:
        data = self.training_data()
        if main:
            for path, reason in data.scan.skipped:
                self.notify(f"Skipping {path.name}: {reason}.")
            if (note := self._bucket_note(data, multiple)) is not None:
                self.notify(note)
            if (summary := data.summary()) is not None:
                self.notify(summary)
        return data

    def _take_a_bucket_step_with_buckets(self, multiple: int) -> None:
        """A bucket step too coarse for the resolution leaves only the square; a finer one the
        model takes is trained with instead. The step asked for stays the setting (a resume with
        the same flags makes the same choice, and every checkpoint made before still resumes);
        each picture's bucket is in the checkpoints' data record, the step used in the settings
        record for the report."""
        s = self.settings
        if s.bucket and (step := step_with_buckets(s.resolution, s.bucket_reso_steps, multiple)) is not None:
            self.bucket_step = step

    def _bucket_note(self, data: TrainingData, multiple: int) -> str | None:
        """One line when buckets do not do what the step asked for, said only where it changes
        how some picture trains."""
        s, resolution = self.settings, self.settings.resolution
        fits = [image.fit for image in data.images if image.fit is not None]
        if self.bucket_step != s.bucket_reso_steps and any(f.bucket.width != f.bucket.height for f in fits):
            return (
                f"Buckets: a step of {s.bucket_reso_steps} px leaves only the {resolution}x{resolution} bucket "
                f"at {resolution} px, so pictures train with a step of {self.bucket_step} px, the largest "
                f"that keeps their shapes (--bucket_reso_steps sets it)."
            )
        if s.bucket and any(f.scaled_width != f.scaled_height for f in fits) and all(
                f.bucket.width == f.bucket.height for f in fits):
            return (
                f"Every picture trains square at {resolution} px: {self.model.name} takes sides in steps "
                f"of {multiple} px, too coarse for buckets at this size (train at a higher "
                "--resolution to keep the pictures' shapes)."
            )
        return None

    def _check_bucket_sides(self, data: TrainingData, multiple: int) -> None:
        """A side the UNet cannot halve as often as it downsamples fails deep inside it; say so first."""
        sides = sorted({side for image in data.images if image.fit is not None
                        for side in (image.fit.bucket.width, image.fit.bucket.height)})
        odd = [side for side in sides if side % multiple]
        if odd:
            raise UserError(
                f"The bucket step {self.bucket_step} gives {odd[0]}-pixel sides, but "
                f"{self.model.name} needs sides in multiples of {multiple}; use --bucket_reso_steps "
                f"{multiple} (or --no-bucket)."
            )

    def _load_text(self, loader: ModelLoader, main: bool) -> TextEncoders:
        """Tokenizers and text encoders with the trigger's new tokens added.

        Loading and caching take from seconds to minutes before the first step; each is announced
        so a terminal never sits silent.
        """
        if main:
            self.notify(f"Loading the text encoder and VAE of {self.model.name} from {loader.source}...")
        return loader.text_encoders(lambda widths: self._initial_vectors(list(widths), main))

    def _cache_latents(self, loader: ModelLoader, data: TrainingData, run: Run) -> LatentCache:
        """Every image's latents, through the VAE's encoder, which is freed again before the UNet
        arrives: peak memory is the UNet's training footprint, not the sum of every part."""
        s = self.settings
        vae = loader.vae().to(run.device)
        count = len(data.images)
        if run.main:
            self.notify(f"Caching the latents of {count} image{'s' if count != 1 else ''} (each image and "
                        "its mirror image go through the VAE once)...")
        with run.progress_bar(count, "Caching latents", "image") as bar:
            cache = cache_latents(
                data.images, vae, resolution=s.resolution, center_crop=s.center_crop,
                workers=s.dataloader_num_workers, device=run.device, dtype=loader.vae_dtype,
                time_ids=self.family.image_time_ids(data.images, s.resolution, s.center_crop),
                encoded=lambda: bar.update(1),
            )
        del vae
        gc.collect()
        if run.device.type == "cuda":
            torch.cuda.empty_cache()
        return cache

    def _load_model(self, loader: ModelLoader, text: TextEncoders, device: torch.device, main: bool) -> LoadedModel:
        """The UNet beside the text encoders, the new vectors made trainable, memory saved as asked."""
        if main:
            self.notify(f"Loading the UNet of {self.model.name}...")
        model = loader.load_model(text, device)
        self._make_vectors_trainable(text, model.weight_dtype, device)
        self._save_memory(model.unet, text.encoders, device)
        return model

    def _make_vectors_trainable(self, text: TextEncoders, weight_dtype: torch.dtype, device: torch.device) -> None:
        for text_encoder, parameter in zip(text.encoders, text.vectors):
            text_encoder.requires_grad_(False)
            text_encoder.to(device, dtype=weight_dtype)
            # Wrapped only after freezing and casting, which would otherwise reach the new
            # vectors: they must stay trainable and in float32 whatever the models' precision.
            parameter.data = parameter.data.to(device)
            text_encoder.set_input_embeddings(ExtendedEmbedding(text_encoder.get_input_embeddings(), parameter))

    def _vector_size(self, text: TextEncoders) -> VectorSize:
        """The vocabulary's median norm per encoder, and how the steps hold the vectors to it."""
        s = self.settings
        references = tuple(vocabulary_median_norm(encoder.get_input_embeddings().weight) for encoder in text.encoders)
        return VectorSize(mode_of(s.preserve_embedding_norm, s.learn_direction_only), references)

    def _save_memory(self, unet, text_encoders: list, device: torch.device) -> None:
        """xFormers attention and gradient checkpointing, where the settings ask for them."""
        s = self.settings
        if s.enable_xformers_memory_efficient_attention:
            self._enable_xformers(unet, device)
        if s.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            unet.train()
            for text_encoder in text_encoders:
                # transformers 5 renamed it and warns on the old name; older ones have only that.
                enable = getattr(text_encoder, "activation_checkpointing_enable", None)
                (enable or text_encoder.gradient_checkpointing_enable)()
                text_encoder.train()

    def _total_steps(self, images: int, samples_per_step: int) -> int:
        s = self.settings
        if s.num_train_epochs:
            return s.num_train_epochs * math.ceil(images * s.repeats / samples_per_step)
        return s.max_train_steps

    def _timesteps(self, model: LoadedModel) -> tuple[int, int]:
        """The ``[low, high)`` timesteps trained: the settings' range within the model's scheduler."""
        s = self.settings
        return timestep_range(s.lowest_timestep, s.max_timestep, model.noise_scheduler.config.num_train_timesteps)

    def _samples(self, run: Run, data: TrainingData, text: TextEncoders, model: LoadedModel) -> Samples:
        """Where every sample comes from: the plan's draws from the seed, the cached latents, and
        each image's caption or the templates with the trigger's tokens in."""
        s, placeholder = self.settings, text.placeholder
        templates = [caption(template, placeholder) for template in templates_for(s.learnable_property)]
        num_timesteps = model.noise_scheduler.config.num_train_timesteps
        plan = SamplePlan(
            run.seed, len(data.images), len(templates), num_timesteps,
            buckets=data.bucket_numbers(), samples_per_step=run.samples_per_step, noise_offset=s.noise_offset,
            timesteps=self._timesteps(model),
        )
        prompts = Prompts(
            text.tokenizers, templates, data.captions(placeholder), placeholder=placeholder, seed=run.seed,
            shuffle=s.shuffle_caption, keep_tokens=s.keep_tokens, dropout=s.caption_tag_dropout_rate,
            device=run.device,
        )
        return Samples(plan, self.cache, prompts)

    def _build_step(self, model: LoadedModel, samples: Samples, run: Run, state: TrainingState) -> TrainingStep:
        """The step's passes, its fold measured and the UNet compiled when asked."""
        step = TrainingStep(model, samples, run, state.grad_scaler)
        # Measured eagerly, before compiling: a compiled UNet would capture the one-micro-batch
        # shape of the measurement as well as the folded shape training uses.
        step.measure_fold()
        if self.settings.compile:
            step.compile()
        return step

    def _build_watch(self, text: TextEncoders, images: int, state: TrainingState, run: Run) -> LearningWatch:
        """The vectors' size after every step and the fixed batch's score every preview step."""
        s = self.settings

        def snapshot(step: int) -> None:
            """The loop itself saves one every --save_steps, right after the watch has looked."""
            if step % s.save_steps:
                self.family.files.save_files(self.output_dir, s.token, text.vectors, step, self.model.name,
                                             snapshot=True)

        return LearningWatch(
            evaluation=FixedEvaluation(self.step, images=images), size=state.size, vectors=text.vectors,
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

    def _enable_xformers(self, unet, device: torch.device) -> None:
        works, reason = probe_xformers(device)
        if not works:
            raise UserError(
                f"xFormers attention was requested but cannot be used: {reason}; run without "
                "--enable_xformers_memory_efficient_attention."
            )
        with quiet_imports():
            unet.enable_xformers_memory_efficient_attention()

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
