"""The Textual Inversion training loop.

Three choices make it faster than the diffusers example with the same maths:

* Each image and its mirror image go through the VAE encoder once; the latent *distribution*
  (mean and standard deviation) is kept and a fresh latent is sampled from it every step, which
  is exactly what encoding the same pixels again would give. The VAE is then freed.
* Only the new vectors are a parameter. The original embedding matrix stays frozen and is never
  touched, so every original row is bit-identical after training and AdamW's state is a few
  kilobytes instead of two copies of a 49408-row matrix.
* All randomness of a sample (image, mirror, caption template, noise, timestep) comes from the
  seed and the sample's global number. A resumed run therefore continues exactly where the
  killed one was, and N processes at batch B see exactly the samples of one process at N x B.

The trainer knows nothing of terminals or forms: it reports through ``progress`` and a log file.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import json
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoints import (
    RunShape,
    find_checkpoint,
    read_checkpoint,
    restore_checkpoint,
    write_checkpoint,
)
from .dataset import (
    ImageScan,
    caption,
    image_to_tensor,
    load_image,
    require_images,
    templates_for,
    flipped,
)
from .embeddings import (
    EMBEDDING_NAME,
    atomic_write,
    check_dimension,
    load_embedding,
    save_embedding_pair,
)
from .device import probe_xformers, training_device
from .errors import TrainingInterrupted, UserError
from .models import ModelInfo
from .output_lock import OutputLock
from .pipeline_export import export_pipeline
from .previews import Previews, preview_seed
from .quiet import quiet_imports, quiet_library_progress
from .settings import TrainingSettings

Notify = Callable[[str], None]
SETTINGS_FILE = "training_settings.json"
SPARE_BYTES = 16 * 2**20


def folder_size(folder: Path | None) -> int:
    if folder is None:
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@dataclass(frozen=True)
class TrainingResult:
    token: str
    vectors: torch.Tensor
    output_dir: Path
    steps: int
    seed: int
    final_loss: float | None


class ExtendedEmbedding(torch.nn.Module):
    """The text encoder's token embedding plus the new vectors, without resizing the matrix.

    Ids below the original vocabulary size read the frozen matrix; ids at or above it read the
    trainable vectors. Nothing of the original matrix receives a gradient or an update.
    """

    def __init__(self, original: torch.nn.Embedding, vectors: torch.nn.Parameter) -> None:
        super().__init__()
        self.original = original
        self.vectors = vectors
        self.vocab_size = original.num_embeddings

    @property
    def weight(self) -> torch.Tensor:
        return self.original.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        base = self.original(ids.clamp(max=self.vocab_size - 1))
        is_new = ids >= self.vocab_size
        if not bool(is_new.any()):
            return base
        new = self.vectors.to(base.dtype)[(ids - self.vocab_size).clamp(min=0)]
        return torch.where(is_new.unsqueeze(-1), new, base)


def new_tokens(token: str, num_vectors: int) -> list[str]:
    """``<t>``, ``<t>_1``, ...: the diffusers naming that ``load_textual_inversion`` expands."""
    return [token] + [f"{token}_{i}" for i in range(1, num_vectors)]


def token_problems(tokenizer, tokens: list[str], initializer: str) -> list[str]:
    """What stops these tokens from being added to this tokenizer, in sentences."""
    problems = []
    vocab = tokenizer.get_vocab()
    taken = [t for t in tokens if t in vocab]
    if taken:
        problems.append(
            f"The trigger {taken[0]} is already a token of this model's vocabulary; choose "
            "another trigger term."
        )
    init_ids = tokenizer.encode(initializer, add_special_tokens=False)
    if len(init_ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(init_ids)
        problems.append(
            f"The initializer '{initializer}' is not a single token: the tokenizer makes "
            f"{len(pieces)} of it ({' '.join(pieces) or 'nothing'}); choose a single common word "
            "such as '*', 'cat' or 'painting'."
        )
    return problems


def sample_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the run's seed and a label, stable across machines and Python runs."""
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass
class LatentCache:
    """Latent distributions of every image, indexed [image, mirrored]."""

    mean: torch.Tensor
    std: torch.Tensor

    def sample(self, image: int, mirrored: int, generator: torch.Generator) -> torch.Tensor:
        mean = self.mean[image, mirrored]
        eps = torch.randn(mean.shape, generator=generator, dtype=torch.float32)
        return mean + self.std[image, mirrored] * eps.to(mean.device)


@dataclass(frozen=True)
class Sample:
    image: int
    mirrored: int
    template: int
    timestep: int
    latent: torch.Tensor
    noise: torch.Tensor


class SamplePlan:
    """Decides every random choice of sample number ``n`` from the seed alone."""

    def __init__(self, seed: int, num_images: int, num_templates: int, num_timesteps: int) -> None:
        self.seed = seed
        self.num_images = num_images
        self.num_templates = num_templates
        self.num_timesteps = num_timesteps
        self._orders: dict[int, list[int]] = {}

    def image_for(self, n: int) -> int:
        cycle, position = divmod(n, self.num_images)
        order = self._orders.get(cycle)
        if order is None:
            generator = torch.Generator().manual_seed(sample_seed(self.seed, "order", cycle))
            order = torch.randperm(self.num_images, generator=generator).tolist()
            self._orders = {cycle: order}
        return order[position]

    def draw(self, n: int, cache: LatentCache) -> Sample:
        generator = torch.Generator().manual_seed(sample_seed(self.seed, "sample", n))
        image = self.image_for(n)
        mirrored = int(torch.randint(2, (1,), generator=generator))
        template = int(torch.randint(self.num_templates, (1,), generator=generator))
        timestep = int(torch.randint(self.num_timesteps, (1,), generator=generator))
        latent = cache.sample(image, mirrored, generator)
        noise = torch.randn(latent.shape, generator=generator, dtype=torch.float32)
        return Sample(image, mirrored, template, timestep, latent, noise.to(latent.device))


class StopRequest:
    """Turns Ctrl-C and SIGTERM into "save and stop at the end of this step".

    A second Ctrl-C exits at once: every file is written atomically, so nothing is corrupted.
    """

    def __init__(self) -> None:
        self.requested: str | None = None

    def _handle(self, signum: int, _frame: object) -> None:
        if self.requested is not None:
            os._exit(130)
        self.requested = signal.Signals(signum).name

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for signum in previous:
            signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class Trainer:
    """One training run, from loading the model to the final embedding in the output folder."""

    def __init__(
        self,
        settings: TrainingSettings,
        model: ModelInfo,
        data_dir: Path,
        output_dir: Path,
        *,
        notify: Notify = print,
        show_progress: bool = True,
    ) -> None:
        self.settings = settings
        self.model = model
        self.data_dir = data_dir
        self.output_dir = output_dir
        self.notify = notify
        self.show_progress = show_progress

    def run(self) -> TrainingResult:
        s = self.settings
        with quiet_imports():
            from accelerate import Accelerator
            from accelerate.utils import broadcast_object_list

        # cpu=True is what lets `accelerate launch --multi_gpu` on a machine without CUDA form a
        # gloo process group instead of silently running N unrelated single-process trainings.
        with quiet_imports():
            accelerator = Accelerator(
                mixed_precision=s.mixed_precision,
                cpu=training_device().type == "cpu",
                log_with=None if s.report_to == "none" else s.report_to,
                project_dir=str(self.output_dir / s.logging_dir),
            )
        self.accelerator = accelerator
        self.main = accelerator.is_main_process
        device = accelerator.device
        if s.allow_tf32 and device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        seed = s.seed if s.seed is not None else int.from_bytes(os.urandom(4), "little")
        lock = OutputLock(self.output_dir)
        problem = None
        if self.main:
            try:
                if (note := lock.acquire()) is not None:
                    self.notify(note)
                self._check_free_space()
            except UserError as error:
                problem = str(error)
        if accelerator.num_processes > 1:
            seed, problem = broadcast_object_list([seed, problem])
        if problem is not None:
            lock.release()
            raise UserError(problem)
        try:
            return self._run_locked(seed, device)
        finally:
            lock.release()

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
        vector_bytes = s.num_vectors * (self.model.token_dim or 1024) * 4 + 4096
        steps = s.max_train_steps
        checkpoints = steps // s.checkpointing_steps
        if s.checkpoints_total_limit:
            checkpoints = min(checkpoints, s.checkpoints_total_limit + 1)
        snapshots = steps // s.save_steps
        pipeline = 0 if s.only_save_embeds else folder_size(self.model.path)
        return checkpoints * (3 * vector_bytes + 65536) + (2 * snapshots + 4) * vector_bytes + pipeline + SPARE_BYTES

    def _run_locked(self, seed: int, device: torch.device) -> TrainingResult:
        s = self.settings
        accelerator = self.accelerator
        scan = require_images(self.data_dir)
        if self.main:
            self._record_settings(seed, accelerator.num_processes)
            for path, reason in scan.skipped:
                self.notify(f"Skipping {path.name}: {reason}.")

        # One big part at a time: the VAE is loaded, used and freed before the UNet arrives, so
        # peak memory is the UNet's training footprint, not the sum of every part.
        weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(s.mixed_precision, torch.float32)
        tokenizer, text_encoder = self._load_text_parts()
        token_ids, vectors = self._add_tokens(tokenizer, text_encoder)
        vae = self._load_part("vae", weight_dtype)
        vae.decoder = None
        cache = self.cache = self._cache_latents(scan, vae.to(device), device, weight_dtype)
        del vae
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        unet = self._load_part("unet", weight_dtype).to(device)
        noise_scheduler = self._load_part("scheduler", None)

        text_encoder.requires_grad_(False)
        text_encoder.to(device, dtype=weight_dtype)
        # Wrapped only after freezing and casting, which would otherwise reach the new vectors:
        # they must stay trainable and in float32 whatever the models' precision.
        vectors.data = vectors.data.to(device)
        embedding = text_encoder.get_input_embeddings()
        text_encoder.set_input_embeddings(ExtendedEmbedding(embedding, vectors))
        if s.enable_xformers_memory_efficient_attention:
            self._enable_xformers(unet)
        if s.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            text_encoder.gradient_checkpointing_enable()
            unet.train()
            text_encoder.train()
        self.tokenizer, self.text_encoder, self.vectors = tokenizer, text_encoder, vectors

        return self._train(
            seed=seed,
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            unet=unet,
            noise_scheduler=noise_scheduler,
            vectors=vectors,
            cache=cache,
            num_images=len(scan.images),
            token_ids=token_ids,
        )

    def _record_settings(self, seed: int, processes: int) -> None:
        """Write what this run used, the seed included, before the first step can fail."""
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

    def _location(self) -> str:
        return str(self.model.path or self.model.location)

    def _load_text_parts(self):
        with quiet_imports():
            from transformers import CLIPTextModel, CLIPTokenizer

        revision = {"revision": self.settings.revision} if self.settings.revision else {}
        with self._load_errors("text encoder"), quiet_library_progress():
            if self.settings.tokenizer_name:
                tokenizer = CLIPTokenizer.from_pretrained(self.settings.tokenizer_name)
            else:
                tokenizer = CLIPTokenizer.from_pretrained(self._location(), subfolder="tokenizer", **revision)
            text_encoder = CLIPTextModel.from_pretrained(self._location(), subfolder="text_encoder", **revision)
        return tokenizer, text_encoder

    def _load_part(self, part: str, dtype: torch.dtype | None):
        """Load a frozen diffusers part straight in the training precision."""
        with quiet_imports():
            from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

        kind = {"vae": AutoencoderKL, "unet": UNet2DConditionModel, "scheduler": DDPMScheduler}[part]
        options = {"revision": self.settings.revision} if self.settings.revision else {}
        with self._load_errors(part), quiet_library_progress():
            if dtype is None:
                return kind.from_pretrained(self._location(), subfolder=part, **options)
            loaded = kind.from_pretrained(self._location(), subfolder=part, torch_dtype=dtype, **options)
        return loaded.requires_grad_(False)

    @contextmanager
    def _load_errors(self, part: str) -> Iterator[None]:
        try:
            yield
        except (OSError, ValueError, KeyError) as error:
            raise UserError(
                f"The {part} of {self.model.name} at {self._location()} could not be loaded "
                f"({error}); check that it is a complete diffusers Stable Diffusion folder."
            ) from error

    def _add_tokens(self, tokenizer, text_encoder) -> tuple[list[int], torch.nn.Parameter]:
        s = self.settings
        initial: torch.Tensor | None = None
        num_vectors = s.num_vectors
        token_dim = text_encoder.get_input_embeddings().embedding_dim
        if s.initial_embedding is not None:
            _, initial = load_embedding(s.initial_embedding)
            check_dimension(s.initial_embedding.name, initial, token_dim)
            if initial.shape[0] != num_vectors and self.main:
                self.notify(
                    f"{s.initial_embedding.name} has {initial.shape[0]} vectors; training that many."
                )
            num_vectors = initial.shape[0]
        self.num_vectors = num_vectors
        tokens = new_tokens(s.token, num_vectors)
        problems = token_problems(tokenizer, tokens, s.initializer_token)
        if problems:
            raise UserError(problems[0])
        init_ids = tokenizer.encode(s.initializer_token, add_special_tokens=False)
        original_size = text_encoder.get_input_embeddings().num_embeddings
        if len(tokenizer) != original_size:
            raise UserError(
                f"The tokenizer has {len(tokenizer)} tokens but the text encoder has {original_size} "
                "embeddings; use the model's own tokenizer (leave --tokenizer_name out)."
            )
        tokenizer.add_tokens(tokens)
        token_ids = tokenizer.convert_tokens_to_ids(tokens)
        if token_ids != list(range(original_size, original_size + num_vectors)):
            raise UserError(
                "The tokenizer did not number the new tokens after its vocabulary; use the model's "
                "own tokenizer."
            )
        with torch.no_grad():
            start = text_encoder.get_input_embeddings().weight[init_ids[0]].float()
            data = initial.float() if initial is not None else start.repeat(num_vectors, 1)
        return token_ids, torch.nn.Parameter(data.clone())

    def _enable_xformers(self, unet) -> None:
        works, reason = probe_xformers(self.accelerator.device)
        if not works:
            raise UserError(
                f"xFormers attention was requested but cannot be used: {reason}; run without "
                "--enable_xformers_memory_efficient_attention."
            )
        with quiet_imports():
            unet.enable_xformers_memory_efficient_attention()

    def resolution(self) -> int:
        return self.settings.resolution or self.model.native_resolution

    @torch.no_grad()
    def _cache_latents(self, scan: ImageScan, vae, device, weight_dtype) -> LatentCache:
        resolution = self.resolution()
        means, stds = [], []
        workers = max(1, self.settings.dataloader_num_workers)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            images = pool.map(lambda p: load_image(p, resolution, self.settings.center_crop), scan.images)
            for image in images:
                pixels = torch.stack([image_to_tensor(image), image_to_tensor(flipped(image))])
                dist = vae.encode(pixels.to(device, weight_dtype)).latent_dist
                means.append(dist.mean.float())
                stds.append(dist.std.float())
        scale = vae.config.scaling_factor
        return LatentCache(torch.stack(means) * scale, torch.stack(stds) * scale)

    def _train(
        self,
        *,
        seed: int,
        tokenizer,
        text_encoder,
        unet,
        noise_scheduler,
        vectors: torch.nn.Parameter,
        cache: LatentCache,
        num_images: int,
        token_ids: list[int],
    ) -> TrainingResult:
        s = self.settings
        accelerator = self.accelerator
        batch = s.train_batch_size
        samples_per_step = batch * accelerator.num_processes * s.gradient_accumulation_steps
        if s.num_train_epochs:
            total_steps = s.num_train_epochs * math.ceil(num_images * s.repeats / samples_per_step)
        else:
            total_steps = s.max_train_steps
        optimizer, lr_scheduler, grad_scaler = self._optimization(vectors, samples_per_step, total_steps)
        shape = RunShape(
            model=self.model.name,
            token=s.token,
            num_vectors=self.num_vectors,
            token_dim=vectors.shape[1],
            resolution=self.resolution(),
            train_batch_size=batch,
            gradient_accumulation_steps=s.gradient_accumulation_steps,
            num_processes=accelerator.num_processes,
        )
        start_step, seed = self._resume(shape, seed, vectors, optimizer, lr_scheduler, grad_scaler, total_steps)

        templates = templates_for(s.learnable_property)
        plan = SamplePlan(seed, num_images, len(templates), noise_scheduler.config.num_train_timesteps)
        placeholder = " ".join(tokenizer.convert_ids_to_tokens(token_ids))

        def batch_loss(first: int) -> torch.Tensor:
            """The loss of the ``batch`` samples numbered from ``first`` (this process's share)."""
            samples = [plan.draw(n, cache) for n in range(first, first + batch)]
            device = accelerator.device
            latents = torch.stack([x.latent for x in samples])
            noise = torch.stack([x.noise for x in samples])
            timesteps = torch.tensor([x.timestep for x in samples], device=device)
            ids = tokenizer(
                [caption(templates[x.template], placeholder) for x in samples],
                padding="max_length",
                truncation=True,
                max_length=tokenizer.model_max_length,
                return_tensors="pt",
            ).input_ids.to(device)
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            if noise_scheduler.config.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(latents, noise, timesteps)
            else:
                target = noise
            with accelerator.autocast():
                hidden = text_encoder(ids)[0]
                prediction = unet(noisy.to(hidden.dtype), timesteps, hidden).sample
            return F.mse_loss(prediction.float(), target.float())

        def save_checkpoint(step: int) -> None:
            write_checkpoint(
                self.output_dir,
                step=step,
                seed=seed,
                shape=shape,
                vectors=vectors,
                optimizer=optimizer,
                lr_scheduler=lr_scheduler,
                grad_scaler=grad_scaler,
                keep=s.checkpoints_total_limit,
            )

        from tqdm.auto import tqdm

        progress = tqdm(
            total=total_steps,
            initial=start_step,
            disable=not (self.main and self.show_progress),
            unit="step",
            dynamic_ncols=True,
            desc=f"Training {s.token}",
        )
        log = LossLog(self.output_dir / "loss_log.csv", start_step) if self.main else None
        if s.report_to != "none":
            scalars = {k: v for k, v in s.to_dict().items() if isinstance(v, (int, float, str, bool))}
            accelerator.init_trackers("textual_inversion", config=scalars)
        # Previews (issue 11): the main process renders them, the others wait outside collectives.
        previews = Previews(
            s, self.output_dir, seed=seed, placeholder=placeholder, latent_shape=tuple(cache.mean.shape[2:]),
            scheduler_config=noise_scheduler.config, load_vae=lambda: self._load_part("vae", unet.dtype),
            device=accelerator.device, main=self.main, processes=accelerator.num_processes,
            start_step=start_step, notify=self.notify if progress.disable else progress.write,
        )
        stop = StopRequest()
        last_loss: float | None = None
        step = start_step
        started = time.monotonic()
        try:
            with stop.installed():
                while step < total_steps:
                    previews.at_step(step, tokenizer, text_encoder, unet)
                    optimizer.zero_grad(set_to_none=True)
                    step_loss = torch.zeros((), device=accelerator.device)
                    for micro in range(s.gradient_accumulation_steps):
                        first = step * samples_per_step + (micro * accelerator.num_processes + accelerator.process_index) * batch
                        loss = batch_loss(first) / s.gradient_accumulation_steps
                        (grad_scaler.scale(loss) if grad_scaler else loss).backward()
                        step_loss += loss.detach()
                    loss_value, stopping = self._agree(vectors, step_loss, stop.requested is not None)
                    if not math.isfinite(loss_value):
                        raise UserError(nan_message(step + 1, s.mixed_precision))
                    if grad_scaler:
                        grad_scaler.step(optimizer)
                        grad_scaler.update()
                    else:
                        optimizer.step()
                    rate = lr_scheduler.get_last_lr()[0]
                    lr_scheduler.step()
                    if not torch.isfinite(vectors).all():
                        raise UserError(nan_message(step + 1, s.mixed_precision))
                    step += 1
                    last_loss = loss_value
                    if not self.main:
                        if stopping and step < total_steps:
                            raise TrainingInterrupted(interrupted_message(stop.requested, step, total_steps))
                        continue
                    log.write(step, loss_value, rate, time.monotonic() - started)
                    if s.report_to != "none":
                        accelerator.log({"loss": loss_value, "lr": rate}, step=step)
                    progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{rate:.2e}", refresh=False)
                    progress.update(1)
                    if step >= total_steps:
                        break
                    if step % s.save_steps == 0:
                        save_embedding_pair(self.output_dir, f"{EMBEDDING_NAME}-steps-{step}", s.token, vectors)
                    if step % s.checkpointing_steps == 0 or stopping:
                        save_checkpoint(step)
                    if stopping:
                        save_embedding_pair(self.output_dir, EMBEDDING_NAME, s.token, vectors)
                        raise TrainingInterrupted(interrupted_message(stop.requested, step, total_steps))
        finally:
            progress.close()
            if log:
                log.close()
            if s.report_to != "none":
                accelerator.end_training()
        if self.main:
            save_embedding_pair(self.output_dir, EMBEDDING_NAME, s.token, vectors)
            previews.finish(step, tokenizer, text_encoder, unet)
            if not s.only_save_embeds and self.model.path is not None:
                export_pipeline(self.model.path, tokenizer, token_ids, vectors.detach().cpu(), self.output_dir / "pipeline")
        return TrainingResult(
            token=s.token,
            vectors=vectors.detach().float().cpu(),
            output_dir=self.output_dir,
            steps=step,
            seed=seed,
            final_loss=last_loss,
        )

    def _optimization(self, vectors: torch.nn.Parameter, samples_per_step: int, total_steps: int):
        """AdamW over the new vectors only, its schedule, and a loss scaler for fp16 on CUDA."""
        from diffusers.optimization import get_scheduler

        s = self.settings
        optimizer = torch.optim.AdamW(
            [vectors],
            lr=s.learning_rate * (samples_per_step if s.scale_lr else 1),
            betas=(s.adam_beta1, s.adam_beta2),
            weight_decay=s.adam_weight_decay,
            eps=s.adam_epsilon,
        )
        lr_scheduler = get_scheduler(
            s.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=s.lr_warmup_steps,
            num_training_steps=total_steps,
            num_cycles=s.lr_num_cycles,
            power=s.lr_power,
        )
        on_cuda = self.accelerator.device.type == "cuda"
        grad_scaler = torch.amp.GradScaler("cuda") if s.mixed_precision == "fp16" and on_cuda else None
        return optimizer, lr_scheduler, grad_scaler

    def _resume(self, shape, seed, vectors, optimizer, lr_scheduler, grad_scaler, total_steps) -> tuple[int, int]:
        """The step to start from and the seed to use: the checkpoint's when resuming."""
        request = self.settings.resume_from_checkpoint
        if not request:
            return 0, seed
        found = find_checkpoint(self.output_dir, request)
        if found is None:
            if self.main:
                self.notify("No checkpoint to resume from yet; starting a new run.")
            return 0, seed
        checkpoint = read_checkpoint(found)
        restore_checkpoint(
            checkpoint,
            shape=shape,
            vectors=vectors,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            grad_scaler=grad_scaler,
        )
        if self.main:
            self.notify(f"Resuming from {found.name} (step {checkpoint.step} of {total_steps}).")
        return checkpoint.step, checkpoint.seed

    def _agree(self, vectors: torch.nn.Parameter, step_loss: torch.Tensor, stop: bool) -> tuple[float, bool]:
        """Average gradients and loss over the processes, and stop together if any must stop.

        One process can receive SIGTERM alone; if it left without the others they would wait
        for it forever in the next all-reduce.
        """
        processes = self.accelerator.num_processes
        if processes == 1:
            return float(step_loss), stop
        torch.distributed.all_reduce(vectors.grad)
        vectors.grad /= processes
        shared = torch.stack([step_loss.float(), torch.tensor(float(stop), device=step_loss.device)])
        torch.distributed.all_reduce(shared)
        return float(shared[0]) / processes, bool(shared[1] > 0)


def interrupted_message(signal_name: str | None, step: int, total_steps: int) -> str:
    return (
        f"Training stopped by {signal_name or 'another process'} at step {step} of {total_steps}; "
        "the checkpoint and the embedding so far are saved. To continue, run the same command "
        "with --resume_from_checkpoint latest, or open the form again with the same trigger "
        "(resume is ticked for you)."
    )


def nan_message(step: int, precision: str | None) -> str:
    cause = (
        "fp16 overflowed; train with --mixed_precision bf16 or no"
        if precision == "fp16"
        else "the learning rate is probably too high; lower --learning_rate or turn off --scale_lr"
    )
    return (
        f"Training stopped at step {step} because the loss became NaN or infinite: {cause}. "
        "The last good embedding and checkpoint were kept."
    )


class LossLog:
    """``loss_log.csv`` with one row per optimizer step; a resumed run drops rows past its start."""

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

