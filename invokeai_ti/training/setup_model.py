"""Setting a run up around its model: the text encoders with the new vectors, the latent cache,
the UNet with memory saved as asked, and the step built from the samples. A mixin of ``Trainer``,
which holds the settings, the model, its family and ``notify``; loading and caching take from
seconds to minutes, so each is announced."""

from __future__ import annotations

import gc

import torch

from ..data.folder import TrainingData
from ..data.templates import caption, templates_for
from ..device import probe_xformers
from ..errors import UserError
from ..quiet import quiet_imports
from .latents import LatentCache, cache_latents
from .loading import LoadedModel, ModelLoader, TextEncoders
from .plan import SamplePlan, timestep_range
from .prompts import Prompts
from .run import Run
from .state import TrainingState
from .step import Samples, TrainingStep
from .tokens import ExtendedEmbedding
from .vector_size import VectorSize, mode_of, vocabulary_median_norm


class ModelSetup:
    """The model half of setting a ``Trainer`` up."""

    def _initial_vectors(self, widths: list[int], main: bool) -> tuple[torch.Tensor, ...] | None:
        s = self.settings
        if s.initial_embedding is None:
            return None
        initial = self.family.files.read_initial(s.initial_embedding, widths, self.model.name)
        if initial[0].shape[0] != s.num_vectors and main:
            self.notify(f"{s.initial_embedding.name} has {initial[0].shape[0]} vectors; training that many.")
        return initial

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

    def _timesteps(self, model: LoadedModel) -> tuple[int, int]:
        """The ``[low, high)`` timesteps trained: the settings' range within the model's scheduler."""
        s = self.settings
        return timestep_range(s.min_timestep, s.max_timestep, model.noise_scheduler.config.num_train_timesteps)

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

    def _enable_xformers(self, unet, device: torch.device) -> None:
        works, reason = probe_xformers(device)
        if not works:
            raise UserError(
                f"xFormers attention was requested but cannot be used: {reason}; run without "
                "--enable_xformers_memory_efficient_attention."
            )
        with quiet_imports():
            unet.enable_xformers_memory_efficient_attention()
