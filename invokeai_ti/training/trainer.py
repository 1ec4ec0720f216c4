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
import gc
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.buckets import step_with_buckets
from ..data.folder import TrainingData, read_training_data
from ..cpu_threads import CpuThreads
from ..data.templates import caption, templates_for
from ..device import probe_xformers, training_device
from ..errors import UserError
from ..files import atomic_write
from ..models import ModelInfo
from ..outputs.checkpoints import (
    Checkpoint,
    RunShape,
    checkpoint_to_resume,
    checkpoints_on_disk,
    restore_checkpoint,
)
from ..outputs.lock import OutputLock
from ..outputs.pipeline_export import TrainedEncoder, export_pipeline
from ..outputs.previous_run import set_aside_previous_run, set_aside_problem
from ..outputs.report import refresh_report
from ..outputs.resume import check_resumable, continue_schedule, schedule_note
from ..quiet import quiet_imports
from ..settings import TrainingSettings
from .family import family_for
from .latents import LatentCache, cache_latents
from .loading import PartLoader
from .loop import Topology, TrainingLoop
from .plan import SamplePlan
from .previews import Previews, Verdict, preview_seed
from .prompts import Prompts
from .state import TrainingState
from .step import Notify, TrainingStep
from .tokens import ExtendedEmbedding, add_tokens, new_tokens

SPARE_BYTES = 16 * 2**20
PRECISION_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


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


@dataclass(frozen=True)
class TextSide:
    """The text encoders with the trigger's tokens added, and the captions to train on.

    One entry per text encoder in each list, in the model family's order.
    """

    tokenizers: list
    encoders: list[torch.nn.Module]
    tokens: list[str]
    widths: tuple[int, ...]
    token_ids: list[list[int]]
    vectors: tuple[torch.nn.Parameter, ...]
    captions: list[str]


@dataclass(frozen=True)
class ImageSide:
    """The frozen UNet and its noise scheduler, and how previews load the VAE again."""

    unet: torch.nn.Module
    noise_scheduler: Any
    weight_dtype: torch.dtype
    load_vae: Callable[[], torch.nn.Module]


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
        self.settings = settings
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
        self.text: TextSide | None = None
        self.cache: LatentCache | None = None
        self.step: TrainingStep | None = None

    def resolution(self) -> int:
        return self.settings.resolution or self.model.native_resolution

    def training_data(self) -> TrainingData:
        """The data folder read and checked, captions, masks and buckets included."""
        s = self.settings
        return read_training_data(
            self.data_dir, trigger=s.trigger, resolution=self.resolution(), bucket=s.bucket,
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
                return self._run_locked(seed, device, topology, tracker, threads)
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
        s = self.settings
        vector_bytes = s.num_vectors * (sum(self.model.token_dims) or 1024) * 4 + 4096
        steps = s.max_train_steps
        checkpoints = checkpoints_on_disk(steps, s.checkpointing_steps, s.checkpoints_total_limit)
        snapshots = steps // s.save_steps
        pipeline = 0 if s.only_save_embeds else folder_size(self.model.path)
        # A checkpoint: three embedding files and AdamW's two moments; a snapshot: three files; the
        # end: three files, the installed copy and its backup.
        return checkpoints * (5 * vector_bytes + 65536) + (3 * snapshots + 5) * vector_bytes + pipeline + SPARE_BYTES

    def _record_settings(self, seed: int, processes: int) -> None:
        """Write what this run used, the seed included, before the first step."""
        record = self.settings.to_dict() | {
            "seed": seed,
            "model_location": str(self.model.path or self.model.location),
            "train_data_dir": str(self.data_dir),
            "output_dir": str(self.output_dir),
            "resolution": self.resolution(),
            "num_processes": processes,
            "validation_seed": preview_seed(self.settings, seed),
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

    def _run_locked(self, seed: int, device: torch.device, topology: Topology, tracker,
                    threads: CpuThreads) -> TrainingResult:
        """The run, phase by phase; each phase returns what the next ones need."""
        loader = PartLoader(self.model, self.settings.tokenizer_name)
        multiple = self.latent_multiple(loader)
        self._take_a_bucket_step_with_buckets(multiple)
        s = self.settings
        data = self._read_data(topology.main, multiple)
        self._check_bucket_sides(data, multiple)
        text = self._load_text_side(loader, topology.main)
        samples_per_step = s.train_batch_size * topology.processes * s.gradient_accumulation_steps
        total_steps = self._total_steps(len(data.images), samples_per_step)
        shape = RunShape.of_run(
            s, model=self.model.name, resolution=self.resolution(), num_vectors=len(text.tokens),
            token_dims=text.widths, num_processes=topology.processes,
        )
        record = data.record()
        # Before the latents and the UNet: a refused resume costs seconds, not minutes of caching.
        checkpoint = self._checkpoint_to_resume(shape, total_steps, topology.main, record)

        cache, image = self._load_image_side(loader, data, device, topology.main)
        self._make_vectors_trainable(text, image.weight_dtype, device)
        self._save_memory(image.unet, text.encoders, device)
        self.text, self.cache = text, cache
        state = TrainingState.create(
            text.vectors, s, samples_per_step=samples_per_step, total_steps=total_steps, device=device
        )
        start_step, seed = self._resume(checkpoint, shape, seed, state, total_steps, topology.main)
        # Only now: a refused resume must not overwrite the record of the run it belongs to, and
        # a resumed run records the checkpoint's seed, which is the one it trains with.
        if topology.main:
            self._record_settings(seed, topology.processes)

        plan = SamplePlan(
            seed, len(data.images), len(text.captions), image.noise_scheduler.config.num_train_timesteps,
            buckets=data.bucket_numbers(), samples_per_step=samples_per_step, noise_offset=s.noise_offset,
        )
        prompts = Prompts(
            text.tokenizers, text.captions, data.captions(" ".join(text.tokens)),
            placeholder=" ".join(text.tokens), seed=seed, shuffle=s.shuffle_caption,
            keep_tokens=s.keep_tokens, dropout=s.caption_tag_dropout_rate, device=device,
        )
        self.step = self._build_step(text, image, plan, prompts, cache, state, topology, device)
        self._start_trackers(tracker)
        previews = self._build_previews(text, image, loader, cache, seed, start_step, topology, device)
        loop = TrainingLoop(
            settings=s, family=self.family, output_dir=self.output_dir, state=state, step=self.step,
            shape=shape, seed=seed, total_steps=total_steps, topology=topology, tracker=tracker,
            notify=self.notify, show_progress=self.show_progress, data=record,
            before_step=lambda at: (threads.follow_load(), self._preview(previews, at, text, image.unet)),
        )
        reached = loop.run(start_step)
        if topology.main:
            self._finish(reached, text, image.unet, previews)
        return TrainingResult(
            token=s.token, vectors=tuple(parameter.detach().float().cpu() for parameter in text.vectors),
            output_dir=self.output_dir, steps=reached, seed=seed, final_loss=loop.last_loss,
            main_process=topology.main,
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

    @staticmethod
    def latent_multiple(loader: PartLoader) -> int:
        """What every picture side must be a multiple of: the VAE's and the UNet's downsampling."""
        unet = loader.config("unet")
        vae = loader.config("vae")
        return 2 ** (len(vae["block_out_channels"]) - 1) * 2 ** (len(unet["block_out_channels"]) - 1)

    def _take_a_bucket_step_with_buckets(self, multiple: int) -> None:
        """A bucket step too coarse for the resolution leaves only the square; a finer one the
        model takes is trained with instead. The step asked for stays the setting (a resume with
        the same flags makes the same choice, and every checkpoint made before still resumes);
        each picture's bucket is in the checkpoints' data record, the step used in the settings
        record for the report."""
        s = self.settings
        if s.bucket and (step := step_with_buckets(self.resolution(), s.bucket_reso_steps, multiple)) is not None:
            self.bucket_step = step

    def _bucket_note(self, data: TrainingData, multiple: int) -> str | None:
        """One line when buckets do not do what the step asked for, said only where it changes
        how some picture trains."""
        s, resolution = self.settings, self.resolution()
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
                f"the bucket step {self.bucket_step} gives {odd[0]}-pixel sides, but "
                f"{self.model.name} needs sides in multiples of {multiple}; use --bucket_reso_steps "
                f"{multiple} (or --no-bucket)"
            )

    def _load_text_side(self, loader: PartLoader, main: bool) -> TextSide:
        """Tokenizers and text encoders with the trigger's new tokens added, and the captions.

        Loading and caching take from seconds to minutes before the first step; each is announced
        so a terminal never sits silent.
        """
        s = self.settings
        if main:
            self.notify(f"Loading the text encoder and VAE of {self.model.name} from {loader.location}...")
        slots = self.family.encoders
        tokenizers = [loader.tokenizer(slot.tokenizer) for slot in slots]
        encoders = [loader.text_encoder(slot.encoder, slot.kind) for slot in slots]
        widths = tuple(encoder.get_input_embeddings().embedding_dim for encoder in encoders)
        initial = self._initial_vectors(list(widths), main)
        tokens = new_tokens(s.token, initial[0].shape[0] if initial is not None else s.num_vectors)
        added = [
            add_tokens(tokenizer, encoder, tokens, s.initializer_token, None if initial is None else initial[i])
            for i, (tokenizer, encoder) in enumerate(zip(tokenizers, encoders))
        ]
        captions = [caption(template, " ".join(tokens)) for template in templates_for(s.learnable_property)]
        return TextSide(
            tokenizers, encoders, tokens, widths, [ids for ids, _ in added],
            tuple(parameter for _, parameter in added), captions,
        )

    def _load_image_side(self, loader: PartLoader, data: TrainingData,
                         device: torch.device, main: bool) -> tuple[LatentCache, ImageSide]:
        """Every image's latents, then the UNet and its noise scheduler.

        One big part at a time: the VAE is loaded, used and freed before the UNet arrives, so
        peak memory is the UNet's training footprint, not the sum of every part.
        """
        s = self.settings
        weight_dtype = PRECISION_DTYPES.get(s.mixed_precision, torch.float32)
        vae_dtype = self.family.vae_dtype(weight_dtype, loader.config("vae"))
        vae = loader.part("vae", vae_dtype)
        vae.decoder = None
        count = len(data.images)
        if main:
            self.notify(f"Caching the latents of {count} image{'s' if count != 1 else ''} (each image and "
                        "its mirror image go through the VAE once)...")
        with self.progress_bar(count, "Caching latents", "image", main) as bar:
            cache = cache_latents(
                data.images, vae.to(device), resolution=self.resolution(), center_crop=s.center_crop,
                workers=s.dataloader_num_workers, device=device, dtype=vae_dtype,
                time_ids=self.family.image_time_ids(data.images, self.resolution(), s.center_crop),
                encoded=lambda: bar.update(1),
            )
        del vae
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if main:
            self.notify(f"Loading the UNet of {self.model.name}...")
        unet = loader.part("unet", weight_dtype).to(device)
        noise_scheduler = loader.part("scheduler", None)
        return cache, ImageSide(unet, noise_scheduler, weight_dtype, lambda: loader.part("vae", vae_dtype))

    def _make_vectors_trainable(self, text: TextSide, weight_dtype: torch.dtype, device: torch.device) -> None:
        for text_encoder, parameter in zip(text.encoders, text.vectors):
            text_encoder.requires_grad_(False)
            text_encoder.to(device, dtype=weight_dtype)
            # Wrapped only after freezing and casting, which would otherwise reach the new
            # vectors: they must stay trainable and in float32 whatever the models' precision.
            parameter.data = parameter.data.to(device)
            text_encoder.set_input_embeddings(ExtendedEmbedding(text_encoder.get_input_embeddings(), parameter))

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

    def _build_step(self, text: TextSide, image: ImageSide, plan: SamplePlan, prompts: Prompts,
                    cache: LatentCache, state: TrainingState, topology: Topology,
                    device: torch.device) -> TrainingStep:
        """The step's passes, its fold measured and the UNet compiled when asked."""
        s = self.settings
        step = TrainingStep(
            family=self.family, text_encoders=text.encoders, unet=image.unet, noise_scheduler=image.noise_scheduler,
            plan=plan, cache=cache, prompts=prompts, vectors=text.vectors,
            batch=s.train_batch_size, accumulation=s.gradient_accumulation_steps,
            processes=topology.processes, rank=topology.rank, weight_dtype=image.weight_dtype,
            grad_scaler=state.grad_scaler, device=device,
            notify=self.notify if topology.main else (lambda _message: None), snr_gamma=s.snr_gamma,
        )
        # Measured eagerly, before compiling: a compiled UNet would capture the one-micro-batch
        # shape of the measurement as well as the folded shape training uses.
        step.measure_fold()
        if s.compile:
            step.compile()
        return step

    def _build_previews(self, text: TextSide, image: ImageSide, loader: PartLoader, cache: LatentCache,
                        seed: int, start_step: int, topology: Topology, device: torch.device) -> Previews:
        """Beside the loop, not in it: the main process renders, the others wait outside collectives.

        Previews stay square at the resolution whatever the buckets' shapes.
        """
        factor = 2 ** (len(loader.config("vae")["block_out_channels"]) - 1)
        side = self.resolution() // factor
        return Previews(
            self.settings, self.output_dir, seed=seed, placeholder=" ".join(text.tokens), family=self.family,
            resolution=self.resolution(), latent_shape=(cache.mean[0].shape[1], side, side),
            scheduler_config=image.noise_scheduler.config, load_vae=image.load_vae,
            device=device, main=topology.main, processes=topology.processes, start_step=start_step,
            notify=self._above_progress,
            progress_bar=lambda total, label: self.progress_bar(total, label, "step", topology.main),
            verdict=self.preview_verdict,
        )

    def _preview(self, previews: Previews, step: int, text: TextSide, unet) -> None:
        """A preview when one is due, and the report around it once it is on disk."""
        if previews.at_step(step, text.tokenizers, text.encoders, unet):
            refresh_report(self.output_dir)

    def _start_trackers(self, tracker) -> None:
        if tracker is not None:
            scalars = {k: v for k, v in self.settings.to_dict().items() if isinstance(v, (int, float, str, bool))}
            tracker.init_trackers("textual_inversion", config=scalars)

    def _finish(self, reached: int, text: TextSide, unet, previews: Previews) -> None:
        """The final embedding, the last preview and the exported pipeline (main process only)."""
        s = self.settings
        self.family.files.save_files(self.output_dir, s.token, text.vectors, reached, self.model.name)
        previews.finish(reached, text.tokenizers, text.encoders, unet)
        report = refresh_report(self.output_dir)
        self._above_progress(f"Report with the loss and the previews: {report} (open it in a browser).")
        if not s.only_save_embeds and self.model.path is not None:
            self._export_pipeline(text)

    def progress_bar(self, total: int, label: str, unit: str, main: bool):
        """A bar of its own for a pause of more than a few seconds; it disappears when done."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=label, unit=unit, leave=False, dynamic_ncols=True,
                    disable=not (main and self.show_progress))

    def _above_progress(self, message: str) -> None:
        """A line printed above the progress bar, which would otherwise draw over it."""
        if not self.show_progress:
            self.notify(message)
            return
        from tqdm.auto import tqdm

        tqdm.write(message)

    def _export_pipeline(self, text: TextSide) -> None:
        trained = [
            TrainedEncoder(slot.encoder, slot.tokenizer, slot.kind, tokenizer, ids, parameter.detach().cpu())
            for slot, tokenizer, ids, parameter in zip(
                self.family.encoders, text.tokenizers, text.token_ids, text.vectors
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
        restore_checkpoint(
            checkpoint,
            shape=shape,
            files=self.family.files,
            state=state,
        )
        before, after = continue_schedule(state.lr_scheduler, checkpoint.step)
        if main:
            self.notify(f"Resuming from {checkpoint.path.name} (step {checkpoint.step} of {total_steps}).")
            note = schedule_note(self.settings.lr_scheduler, checkpoint, total_steps, before, after)
            if note is not None:
                self.notify(note)
        return checkpoint.step, checkpoint.seed
