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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..outputs.checkpoints import (
    RunShape,
    checkpoint_to_resume,
    checkpoints_on_disk,
    restore_checkpoint,
    set_aside_checkpoints,
)
from ..dataset import caption, require_images, templates_for
from ..device import probe_xformers, training_device
from ..outputs.embeddings import atomic_write
from ..errors import UserError
from ..models import ModelInfo
from ..outputs.lock import OutputLock
from ..outputs.pipeline_export import TrainedEncoder, export_pipeline
from .previews import Previews, Verdict, preview_seed
from ..quiet import quiet_imports
from ..outputs.resume import check_resumable, continue_schedule, schedule_note
from ..settings import TrainingSettings
from .family import family_for
from .latents import LatentCache, cache_latents
from .loading import PartLoader
from .loop import Topology, TrainingLoop
from .plan import SamplePlan
from .state import TrainingState
from .step import Notify, TrainingStep
from .tokens import ExtendedEmbedding, add_tokens, new_tokens

SETTINGS_FILE = "training_settings.json"
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


@dataclass
class LoadedParts:
    """The run's live text side, kept for whoever looks after training (tests, previews).

    One entry per text encoder in each list, in the model family's order.
    """

    tokenizers: list
    text_encoders: list[torch.nn.Module]
    vectors: tuple[torch.nn.Parameter, ...]
    token_ids: list[list[int]]
    cache: LatentCache


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
    """One training run; ``loaded`` and ``step`` hold its live parts once the model is loaded."""

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
        self.notify = notify
        self.show_progress = show_progress
        self.preview_verdict = preview_verdict
        self.loaded: LoadedParts | None = None
        self.step: TrainingStep | None = None

    def resolution(self) -> int:
        return self.settings.resolution or self.model.native_resolution

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
        try:
            with deterministic_mode(s.deterministic):
                return self._run_locked(seed, device, topology, tracker)
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
        }
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.output_dir / SETTINGS_FILE,
            lambda tmp: tmp.write_text(json.dumps(record, indent=2), encoding="utf-8"),
        )

    def _initial_vectors(self, widths: list[int], main: bool) -> tuple[torch.Tensor, ...] | None:
        s = self.settings
        if s.initial_embedding is None:
            return None
        initial = self.family.read_initial(s.initial_embedding, widths, self.model.name)
        if initial[0].shape[0] != s.num_vectors and main:
            self.notify(f"{s.initial_embedding.name} has {initial[0].shape[0]} vectors; training that many.")
        return initial

    def _run_locked(self, seed: int, device: torch.device, topology: Topology, tracker) -> TrainingResult:
        s = self.settings
        scan = require_images(self.data_dir)
        if topology.main:
            for path, reason in scan.skipped:
                self.notify(f"Skipping {path.name}: {reason}.")

        # One big part at a time: the VAE is loaded, used and freed before the UNet arrives, so
        # peak memory is the UNet's training footprint, not the sum of every part.
        weight_dtype = PRECISION_DTYPES.get(s.mixed_precision, torch.float32)
        loader = PartLoader(self.model, s.revision, s.tokenizer_name)
        slots = self.family.encoders
        tokenizers = [loader.tokenizer(slot.tokenizer) for slot in slots]
        text_encoders = [loader.text_encoder(slot.encoder, slot.kind) for slot in slots]
        widths = [encoder.get_input_embeddings().embedding_dim for encoder in text_encoders]
        initial = self._initial_vectors(widths, topology.main)
        num_vectors = initial[0].shape[0] if initial is not None else s.num_vectors
        tokens = new_tokens(s.token, num_vectors)
        added = [
            add_tokens(tokenizer, encoder, tokens, s.initializer_token, None if initial is None else initial[i])
            for i, (tokenizer, encoder) in enumerate(zip(tokenizers, text_encoders))
        ]
        token_ids = [ids for ids, _ in added]
        vectors = tuple(parameter for _, parameter in added)
        vae_dtype = self.family.vae_dtype(weight_dtype, loader.config("vae"))
        vae = loader.part("vae", vae_dtype)
        vae.decoder = None
        cache = cache_latents(
            scan.images, vae.to(device), resolution=self.resolution(), center_crop=s.center_crop,
            workers=s.dataloader_num_workers, device=device, dtype=vae_dtype,
            with_time_ids=self.family.uses_time_ids,
        )
        del vae
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        unet = loader.part("unet", weight_dtype).to(device)
        noise_scheduler = loader.part("scheduler", None)

        for text_encoder, parameter in zip(text_encoders, vectors):
            text_encoder.requires_grad_(False)
            text_encoder.to(device, dtype=weight_dtype)
            # Wrapped only after freezing and casting, which would otherwise reach the new
            # vectors: they must stay trainable and in float32 whatever the models' precision.
            parameter.data = parameter.data.to(device)
            text_encoder.set_input_embeddings(ExtendedEmbedding(text_encoder.get_input_embeddings(), parameter))
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
        self.loaded = LoadedParts(tokenizers, text_encoders, vectors, token_ids, cache)

        samples_per_step = s.train_batch_size * topology.processes * s.gradient_accumulation_steps
        if s.num_train_epochs:
            total_steps = s.num_train_epochs * math.ceil(len(scan.images) * s.repeats / samples_per_step)
        else:
            total_steps = s.max_train_steps
        state = TrainingState.create(
            vectors, s, samples_per_step=samples_per_step, total_steps=total_steps, device=device
        )
        shape = RunShape.of_run(
            s,
            model=self.model.name,
            resolution=self.resolution(),
            num_vectors=num_vectors,
            token_dims=tuple(widths),
            num_processes=topology.processes,
        )
        start_step, seed = self._resume(shape, seed, state, total_steps, topology.main)
        # Only now: a refused resume must not overwrite the record of the run it belongs to, and
        # a resumed run records the checkpoint's seed, which is the one it trains with.
        if topology.main:
            self._record_settings(seed, topology.processes)

        templates = templates_for(s.learnable_property)
        captions = [caption(template, " ".join(tokens)) for template in templates]
        caption_ids = [
            tokenizer(
                captions, padding="max_length", truncation=True, max_length=tokenizer.model_max_length,
                return_tensors="pt",
            ).input_ids.to(device)
            for tokenizer in tokenizers
        ]
        step = TrainingStep(
            family=self.family,
            text_encoders=text_encoders,
            unet=unet,
            noise_scheduler=noise_scheduler,
            plan=SamplePlan(seed, len(scan.images), len(templates), noise_scheduler.config.num_train_timesteps),
            cache=cache,
            caption_ids=caption_ids,
            vectors=vectors,
            batch=s.train_batch_size,
            accumulation=s.gradient_accumulation_steps,
            processes=topology.processes,
            rank=topology.rank,
            weight_dtype=weight_dtype,
            grad_scaler=state.grad_scaler,
            device=device,
            notify=self.notify if topology.main else (lambda _message: None),
        )
        self.step = step
        # Measured eagerly, before compiling: a compiled UNet would capture the one-micro-batch
        # shape of the measurement as well as the folded shape training uses.
        step.measure_fold()
        if s.compile:
            step.compile()
        if tracker is not None:
            scalars = {k: v for k, v in s.to_dict().items() if isinstance(v, (int, float, str, bool))}
            tracker.init_trackers("textual_inversion", config=scalars)
        # Beside the loop, not in it: the main process renders, the others wait outside collectives.
        previews = Previews(
            s, self.output_dir, seed=seed, placeholder=" ".join(tokens), family=self.family,
            resolution=self.resolution(), latent_shape=tuple(cache.mean.shape[2:]),
            scheduler_config=noise_scheduler.config, load_vae=lambda: loader.part("vae", vae_dtype),
            device=device, main=topology.main, processes=topology.processes, start_step=start_step,
            notify=self._above_progress, verdict=self.preview_verdict,
        )
        loop = TrainingLoop(
            settings=s, family=self.family, output_dir=self.output_dir, state=state, step=step, shape=shape,
            seed=seed, total_steps=total_steps,
            topology=topology, tracker=tracker, notify=self.notify, show_progress=self.show_progress,
            before_step=lambda at: previews.at_step(at, tokenizers, text_encoders, unet),
        )
        reached = loop.run(start_step)
        if topology.main:
            self.family.save_files(self.output_dir, s.token, vectors, reached, self.model.name)
            previews.finish(reached, tokenizers, text_encoders, unet)
            if not s.only_save_embeds and self.model.path is not None:
                self._export_pipeline()
        return TrainingResult(
            token=s.token,
            vectors=tuple(parameter.detach().float().cpu() for parameter in vectors),
            output_dir=self.output_dir,
            steps=reached,
            seed=seed,
            final_loss=loop.last_loss,
            main_process=topology.main,
        )

    def _above_progress(self, message: str) -> None:
        """A line printed above the progress bar, which would otherwise draw over it."""
        if not self.show_progress:
            self.notify(message)
            return
        from tqdm.auto import tqdm

        tqdm.write(message)

    def _export_pipeline(self) -> None:
        loaded = self.loaded
        trained = [
            TrainedEncoder(slot.encoder, slot.tokenizer, slot.kind, tokenizer, ids, parameter.detach().cpu())
            for slot, tokenizer, ids, parameter in zip(
                self.family.encoders, loaded.tokenizers, loaded.token_ids, loaded.vectors
            )
        ]
        export_pipeline(self.model.path, trained, self.output_dir / "pipeline")

    def _enable_xformers(self, unet, device: torch.device) -> None:
        works, reason = probe_xformers(device)
        if not works:
            raise UserError(
                f"xFormers attention was requested but cannot be used: {reason}; run without "
                "--enable_xformers_memory_efficient_attention."
            )
        with quiet_imports():
            unet.enable_xformers_memory_efficient_attention()

    def _resume(self, shape: RunShape, seed: int, state: TrainingState, total_steps: int, main: bool) -> tuple[int, int]:
        """The step to start from and the seed to use: the checkpoint's when resuming."""
        request = self.settings.resume_from_checkpoint
        if not request:
            if main and (note := set_aside_checkpoints(self.output_dir)) is not None:
                self.notify(note)
            return 0, seed
        checkpoint = checkpoint_to_resume(self.output_dir, request)
        if checkpoint is None:
            if main:
                self.notify("No checkpoint to resume from yet; starting a new run.")
            return 0, seed
        check_resumable(checkpoint, shape, total_steps, by_epochs=bool(self.settings.num_train_epochs))
        restore_checkpoint(
            checkpoint,
            shape=shape,
            family=self.family,
            vectors=state.vectors,
            optimizer=state.optimizer,
            lr_scheduler=state.lr_scheduler,
            grad_scaler=state.grad_scaler,
        )
        before, after = continue_schedule(state.lr_scheduler, checkpoint.step)
        if main:
            self.notify(f"Resuming from {checkpoint.path.name} (step {checkpoint.step} of {total_steps}).")
            note = schedule_note(self.settings.lr_scheduler, checkpoint, total_steps, before, after)
            if note is not None:
                self.notify(note)
        return checkpoint.step, checkpoint.seed
