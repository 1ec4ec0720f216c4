"""Preview images during training: what the trigger makes now, before the first step and every N.

A preview is rendered with the run's own UNet and text encoder, whose input embedding already
maps the new token ids to the live vectors, so it costs only the VAE decoder: that is loaded after
the denoising, used and freed again, and the UNet's inference and the decoder are never in memory
at the same time.

A preview must never change what is trained. It runs without gradients, with every module in
eval mode and each one's previous mode restored afterwards, draws its noise from its own seeded
generator inside a fork of the global generators (training draws from its own seeded generators,
but a library could use the global ones), and only reads the vectors.

Only the main process renders; the others wait for it outside the run's collectives
(``waiting.MainProcessWait``). The file it writes is ``outputs.preview_png``'s format, at the
place ``OutputLayout`` names. Refreshing the report around the pictures is the report's job
(``outputs.report.refresh_report``), called by the trainer when a preview was drawn.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..data.templates import default_prompt
from ..outputs.preview_png import Judgement, Preview, write_preview
from ..settings import TrainingSettings
from .loading import LoadedModel
from .run import Run
from .waiting import MainProcessWait

DENOISING_STEPS = 25
GUIDANCE_SCALE = 7.5

Verdict = Callable[[list[Image.Image]], Judgement]
"""What a judge says of one preview's pictures, stored in the preview's PNG; only the world model
has a judge, so only its previews carry one."""


def preview_prompt(settings: TrainingSettings) -> str | None:
    """The prompt the previews use, with the trigger written in; None when previews are off."""
    if settings.previews_off:
        return None
    prompt = (settings.validation_prompt or "").strip()
    if not prompt:
        return default_prompt(settings.learnable_property, settings.token)
    return prompt.replace("{}", settings.token)


def preview_seed(settings: TrainingSettings, seed: int) -> int:
    return settings.validation_seed if settings.validation_seed is not None else seed


def grid_shape(count: int) -> tuple[int, int]:
    """Columns and rows: no wider than twice as tall, then as few empty cells as can be, then as
    square as can be. 4 pictures make 2 x 2, 6 make 3 x 2, 8 make 4 x 2 (not 3 x 3 with a hole)."""
    shapes = [(columns, math.ceil(count / columns)) for columns in range(1, count + 1)]
    fitting = [(c, r) for c, r in shapes if r <= c <= 2 * r] or [shapes[-1]]
    return min(fitting, key=lambda shape: (shape[0] * shape[1] - count, shape[0] - shape[1]))


def grid(images: list[Image.Image]) -> Image.Image:
    """The pictures side by side, in rows (``grid_shape``)."""
    columns, rows = grid_shape(len(images))
    width, height = images[0].size
    sheet = Image.new("RGB", (columns * width, rows * height), "white")
    for index, image in enumerate(images):
        sheet.paste(image, ((index % columns) * width, (index // columns) * height))
    return sheet


def to_image(decoded: torch.Tensor) -> Image.Image:
    """A decoded [3, H, W] tensor in [-1, 1] as an RGB picture."""
    pixels = ((decoded.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy())


@contextmanager
def evaluating(*modules: torch.nn.Module) -> Iterator[None]:
    """Eval mode for the pass, then every submodule back in the mode it was in."""
    before = [(part, part.training) for module in modules for part in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for part, training in before:
            part.training = training


@contextmanager
def own_randomness(device: torch.device) -> Iterator[None]:
    """Whatever a library draws from the global generators is given back afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        yield


class Previews:
    """The previews of one run: when they are due, and rendering them with the run's own model.

    The model's ``load_vae`` loads its VAE in the training precision (the trainer's own loader,
    with its error messages); only its decoder is kept, and only for the length of one preview.
    """

    def __init__(self, model: LoadedModel, run: Run, *, start_step: int = 0, verdict: Verdict | None = None) -> None:
        settings = run.settings
        self.model = model
        self.run = run
        self.settings = settings
        self.layout = run.layout
        self.prompt = preview_prompt(settings)
        self.every = settings.preview_every
        self.seed = preview_seed(settings, run.seed)
        self.resolution = settings.resolution
        self.device = run.device
        self.main = run.main
        self.start_step = start_step
        self.verdict = verdict
        self.said = ""
        self.gate = MainProcessWait(run.topology.processes)
        self.stopped = False
        if self.main:
            self._drop_later_samples()

    def _drop_later_samples(self) -> None:
        """A run continues the folder's sequence from its start step; later ones are redone.

        Previews past the checkpoint a run resumes from (or any at all, for a fresh run in a used
        folder) belong to a run that did not get there; they would otherwise sit among the new ones.
        """
        for step, path in self.layout.samples().items():
            if step > self.start_step or self.start_step == 0:
                path.unlink(missing_ok=True)

    def due(self, step: int) -> bool:
        """Decided from the settings alone, so every process agrees without talking."""
        return self.prompt is not None and step % self.every == 0

    def at_step(self, step: int) -> bool:
        """Before training step ``step + 1``: the main process renders, the others wait for it.

        Returns whether a new preview is on disk (only ever on the main process). The start
        step of a resumed run already has its preview unless the run was stopped between the
        checkpoint and the preview.
        """
        if not self.due(step):
            return False
        if not self.main:
            self.gate.wait()
            return False
        try:
            if step != self.start_step or step == 0 or not self.layout.sample(step).exists():
                return self._preview(step, final=False)
            return False
        finally:
            self.gate.done()

    def finish(self, step: int) -> None:
        """After the final embedding is saved: its preview."""
        if self.prompt is not None:
            self._preview(step, final=True)

    def _preview(self, step: int, *, final: bool) -> bool:
        """Render and say where it went (and what the judge saw, on the world model); a preview
        that runs out of memory ends the previews only."""
        if self.stopped:
            return False
        count = self.settings.num_validation_images
        self.run.say(
            f"Drawing the preview of step {step}{' (the final one)' if final else ''}: {count} "
            f"picture{'s' if count != 1 else ''} of {DENOISING_STEPS} denoising steps each..."
        )
        try:
            path = self.render(step, final=final)
        except (torch.OutOfMemoryError, MemoryError):
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.stopped = True
            self.run.say(
                f"Previews stopped: memory ran out while rendering the preview of step {step}. "
                "Training goes on without them; --validation_prompt none turns them off."
            )
            return False
        self.run.say(f"Preview of step {step}: {path}" + (f" ({self.said})" if self.said else ""))
        return True

    def embedding_file(self, step: int, *, final: bool) -> str:
        """The saved embedding holding exactly the vectors this preview was made with."""
        if final:
            names = self.layout.embeddings()
        elif step and step % self.settings.save_steps == 0:
            names = self.layout.embeddings(step)
        else:
            return ""
        file = names.diffusers[0]
        return file.name if file.exists() else ""

    def render(self, step: int, *, final: bool = False) -> Path:
        """Write ``samples/step-N.png``: a grid of the preview images, step and prompt in its text,
        and the verdict of the run's judge (a world model's) beside them for the report to show."""
        count = self.settings.num_validation_images
        unet, encoders = self.model.unet, self.model.text.encoders
        with torch.no_grad(), own_randomness(self.device), \
                self.run.progress_bar(count * (DENOISING_STEPS + 1), f"Preview of step {step}") as bar:
            with evaluating(unet, *encoders):
                conditioning = self._encode(unet.dtype)
                latents = [self._denoise(unet, conditioning, noise, bar) for noise in self._noise()]
            images = self._decode(latents, bar)
        judged = self.verdict(images) if self.verdict is not None else None
        self.said = judged.verdict if judged is not None else ""
        preview = Preview(step=step, prompt=self.prompt, seed=self.seed, trigger=self.settings.token,
                          embedding=self.embedding_file(step, final=final), final=final, judgement=judged)
        path = self.layout.sample(step)
        write_preview(path, grid(images), preview)
        return path

    def _noise(self) -> torch.Tensor:
        """The same starting noise at every step, from the preview seed alone."""
        generator = torch.Generator().manual_seed(self.seed)
        count = self.settings.num_validation_images
        shape = self.model.latent_shape(self.resolution)
        return torch.randn((count, 1, *shape), generator=generator, dtype=torch.float32)

    def _encode(self, dtype: torch.dtype) -> dict[str, Any]:
        """The UNet's conditioning for the empty negative prompt and the prompt, in that order.

        The model family builds it, as for training: SDXL's pooled output and time ids included
        (the preview's size, uncropped).
        """
        from .step import in_dtype

        text = self.model.text
        prompt = self.prompt.replace(self.settings.token, text.placeholder)
        ids = [
            tokenizer(
                ["", prompt],
                padding="max_length",
                truncation=True,
                max_length=tokenizer.model_max_length,
                return_tensors="pt",
            ).input_ids.to(self.device)
            for tokenizer in text.tokenizers
        ]
        family = self.model.family
        time_ids = family.size_time_ids(self.resolution, len(ids[0]), self.device)
        return in_dtype(family.conditioning(text.encoders, ids, time_ids), dtype)

    def _denoise(self, unet, conditioning: dict[str, Any], noise: torch.Tensor, bar: Any) -> torch.Tensor:
        """One image at a time, so the pass needs no more memory than two training samples."""
        from diffusers import DPMSolverMultistepScheduler

        scheduler = DPMSolverMultistepScheduler.from_config(self.model.noise_scheduler.config)
        scheduler.set_timesteps(DENOISING_STEPS, device=self.device)
        latents = noise.to(self.device) * scheduler.init_noise_sigma
        for timestep in scheduler.timesteps:
            pair = scheduler.scale_model_input(torch.cat([latents, latents]), timestep)
            predicted = unet(pair.to(unet.dtype), timestep, **conditioning).sample.float()
            unconditional, conditional = predicted.chunk(2)
            guided = unconditional + GUIDANCE_SCALE * (conditional - unconditional)
            latents = scheduler.step(guided, timestep, latents).prev_sample
            bar.update(1)
        return latents

    def _decode(self, latents: list[torch.Tensor], bar: Any) -> list[Image.Image]:
        vae = self.model.load_vae()
        vae.encoder = None
        vae.quant_conv = None
        vae.to(self.device).eval()
        try:
            scale = vae.config.scaling_factor
            images = []
            for latent in latents:
                images.append(to_image(vae.decode((latent / scale).to(vae.dtype)).sample[0]))
                bar.update(1)
            return images
        finally:
            del vae
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
