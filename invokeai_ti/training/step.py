"""One optimizer step's forward and backward passes: the unit where GPU speed is won or lost.

The step's accumulated micro-batches are *folded*: as many as fit in memory go through the UNet
in one forward pass. The gradient is the same sum of micro-batch mean losses divided by the
accumulation steps; only the order of floating-point additions differs. Fixed captions are
tokenised once at start (``prompts``), so such a step touches no tokenizer.

The loss is the plain mean squared error unless the run weights it: per pixel by the images'
masks, per sample by min-SNR. Each weighting is applied only when asked for, so an unweighted
run computes exactly what it always did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError
from .latents import LatentCache
from .loading import LoadedModel
from .plan import Batch, SamplePlan
from .prompts import Prompts
from .run import Run


def largest_divisor_at_most(n: int, limit: int) -> int:
    """Folds divide the accumulation steps evenly, so every forward has the same shape."""
    return max(d for d in range(1, n + 1) if n % d == 0 and d <= max(1, limit))


def fold_that_fits(*, accumulation: int, bytes_per_micro_batch: int, budget_bytes: int) -> int:
    """How many micro-batches one forward may carry within ``budget_bytes`` of activations."""
    if bytes_per_micro_batch <= 0:
        return accumulation
    return largest_divisor_at_most(accumulation, budget_bytes // bytes_per_micro_batch)


def min_snr_weights(
    alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float, v_prediction: bool
) -> torch.Tensor:
    """Min-SNR-gamma (Hang et al. 2023): each timestep's loss weighted by min(SNR, gamma) / SNR.

    Nearly noise-free timesteps have a huge signal-to-noise ratio and are easy; capping their
    weight stops them from pulling against the hard ones. A v-prediction target already carries
    a factor SNR + 1, hence min(SNR, gamma) / (SNR + 1) there.
    """
    alphas = alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = alphas / (1 - alphas)
    capped = snr.clamp(max=gamma)
    return capped / (snr + 1) if v_prediction else capped / snr


def weighted_mse(
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    masks: torch.Tensor | None = None,
    sample_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error, per pixel weighted by ``masks`` ([n, 1, h, w]) and per sample by
    ``sample_weights``; a masked-out pixel adds nothing to the loss or its gradient.

    Each sample's masked error is divided by its mask's weight, so a sample whose concept fills a
    tenth of the picture counts as much as one that fills all of it.
    """
    if masks is None and sample_weights is None:
        return F.mse_loss(prediction, target)
    error = (prediction - target) ** 2
    if masks is None:
        per_sample = error.mean(dim=(1, 2, 3))
    else:
        weights = masks.expand_as(error)
        per_sample = (error * weights).sum(dim=(1, 2, 3)) / weights.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    if sample_weights is not None:
        per_sample = per_sample * sample_weights
    return per_sample.mean()


def in_dtype(conditioning: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """The UNet's keyword arguments cast to its precision, nested ``added_cond_kwargs`` included."""
    return {
        key: in_dtype(value, dtype) if isinstance(value, dict) else value.to(dtype)
        for key, value in conditioning.items()
    }


@dataclass(frozen=True)
class Samples:
    """What the step's samples are drawn from: the plan decides each sample's random choices, the
    cache holds its image's latents, the prompts its text."""

    plan: SamplePlan
    cache: LatentCache
    prompts: Prompts

    def batch(self, numbers: list[int]) -> tuple[Batch, list[torch.Tensor]]:
        """The samples stacked for one forward pass, and their token ids (one tensor per encoder)."""
        batch = self.plan.batch(numbers, self.cache)
        return batch, self.prompts.ids(batch)


class TrainingStep:
    """Runs the forward and backward passes of one optimizer step on this process.

    Built from the loaded model, where the samples come from and the run (its batch size,
    accumulation, min-SNR gamma, this process's place and device); ``grad_scaler`` is the run's
    fp16 loss scaler, or None.
    """

    def __init__(self, model: LoadedModel, samples: Samples, run: Run,
                 grad_scaler: torch.amp.GradScaler | None = None) -> None:
        s = run.settings
        self.model = model
        self.samples = samples
        self.run = run
        self.eager_unet = model.unet
        self.unet = model.unet
        self.noise_scheduler = model.noise_scheduler
        self.vectors = model.text.vectors
        self.batch = s.train_batch_size
        self.accumulation = s.gradient_accumulation_steps
        self.snr_gamma = s.snr_gamma
        self.processes = run.topology.processes
        self.rank = run.topology.rank
        self.weight_dtype = model.weight_dtype
        self.grad_scaler = grad_scaler
        self.device = run.device
        self.fold = 1
        self.compiled = False
        self.v_prediction = self.noise_scheduler.config.prediction_type == "v_prediction"

    def notify(self, message: str) -> None:
        """Only the main process speaks."""
        if self.run.main:
            self.run.say(message)

    # Which samples ------------------------------------------------------------------------

    def samples_per_step(self) -> int:
        return self.batch * self.processes * self.accumulation

    def micro_batch(self, step: int, micro: int) -> list[int]:
        """Sample numbers of this process's ``micro``-th micro-batch of ``step``.

        Processes interleave per micro-batch, so N processes at batch B see the samples one
        process at N x B would.
        """
        first = step * self.samples_per_step() + (micro * self.processes + self.rank) * self.batch
        return list(range(first, first + self.batch))

    def chunks(self, step: int) -> list[list[int]]:
        micros = [self.micro_batch(step, m) for m in range(self.accumulation)]
        return [sum(micros[i : i + self.fold], []) for i in range(0, self.accumulation, self.fold)]

    # The passes ---------------------------------------------------------------------------

    def loss(self, numbers: list[int]) -> torch.Tensor:
        """Mean squared error of the noise (or velocity) prediction over these samples."""
        batch, ids = self.samples.batch(numbers)
        noisy = self.noise_scheduler.add_noise(batch.latents, batch.noise, batch.timesteps)
        if self.v_prediction:
            target = self.noise_scheduler.get_velocity(batch.latents, batch.noise, batch.timesteps)
        else:
            target = batch.noise
        # The text encoder keeps autocast (its layer norms and softmax want fp32); the frozen UNet
        # runs in the training precision without it, which keeps no fp32 activation copies.
        with torch.autocast(self.device.type, dtype=self.weight_dtype,
                            enabled=self.weight_dtype != torch.float32):
            conditioning = self.model.family.conditioning(self.model.text.encoders, ids, batch.time_ids)
        conditioning = in_dtype(conditioning, self.weight_dtype)
        prediction = self.unet(noisy.to(self.weight_dtype), batch.timesteps, **conditioning).sample
        snr_weights = None
        if self.snr_gamma:
            snr_weights = min_snr_weights(
                self.noise_scheduler.alphas_cumprod, batch.timesteps, self.snr_gamma, self.v_prediction
            )
        return weighted_mse(prediction.float(), target.float(), masks=batch.masks, sample_weights=snr_weights)

    def passes(self, step: int) -> torch.Tensor:
        total = torch.zeros((), device=self.device)
        for numbers in self.chunks(step):
            micros = len(numbers) // self.batch
            loss = self.loss(numbers) * micros / self.accumulation
            (self.grad_scaler.scale(loss) if self.grad_scaler is not None else loss).backward()
            total += loss.detach()
        return total

    def __call__(self, step: int) -> torch.Tensor:
        """Accumulate the step's gradient in the vectors; returns the step's loss (on device)."""
        try:
            return self.passes(step)
        except (torch.OutOfMemoryError, UserError, KeyboardInterrupt):
            raise
        except Exception as error:
            if not self.compiled:
                raise
            self.notify(
                f"Compiling the UNet failed ({type(error).__name__}: {str(error)[:120]}); "
                "training goes on without compiling."
            )
            self.unet, self.compiled = self.eager_unet, False
            self.clear_gradients()
            return self.passes(step)

    # Speed-ups chosen at start ------------------------------------------------------------

    def compile(self) -> None:
        """Capture the UNet (CUDA graphs on a GPU); a failure here or later falls back to eager."""
        from ..paths import compile_cache_dir

        compile_cache_dir()
        mode = "reduce-overhead" if self.device.type == "cuda" else "default"
        try:
            self.unet = torch.compile(self.eager_unet, mode=mode, dynamic=False)
        except Exception as error:
            self.notify(f"The UNet cannot be compiled here ({type(error).__name__}); training without compiling.")
            return
        self.compiled = True

    def measure_fold(self) -> int:
        """Fold as many micro-batches as fit on this GPU, measured with one real micro-batch.

        The peak memory of one forward and backward at the user's micro-batch, above what the
        loaded model already holds, is what each further micro-batch in a fold costs. A tenth of
        the card is left free for the allocator's fragmentation and the optimizer step.
        """
        if self.device.type != "cuda" or self.accumulation == 1:
            return self.fold
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        held = torch.cuda.memory_allocated(self.device)
        try:
            self.loss(self.micro_batch(0, 0)).backward()
        except torch.OutOfMemoryError:
            # Not even one micro-batch fits: the first step says so, with what does fit.
            self.clear_gradients()
            torch.cuda.empty_cache()
            return self.fold
        self.clear_gradients()
        peak = torch.cuda.max_memory_allocated(self.device) - held
        total = torch.cuda.get_device_properties(self.device).total_memory
        self.fold = fold_that_fits(
            accumulation=self.accumulation,
            bytes_per_micro_batch=peak,
            budget_bytes=int(total * 0.9) - held,
        )
        torch.cuda.empty_cache()
        return self.fold

    def largest_batch_that_fits(self) -> int:
        """After running out of memory: the largest micro-batch, halving, whose step runs here."""
        size = self.batch * self.fold
        while size > 1:
            size //= 2
            self.clear_gradients()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            try:
                loss = self.loss(list(range(size)))
                loss.backward()
                return size
            except torch.OutOfMemoryError:
                continue
            finally:
                self.clear_gradients()
        return 0

    def clear_gradients(self) -> None:
        for vectors in self.vectors:
            vectors.grad = None
