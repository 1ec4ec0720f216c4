"""Loading the frozen parts of a diffusers pipeline, one at a time and straight in their precision.

Every load failure becomes one sentence naming the part and the folder: a half-downloaded model
is the usual cause, and a traceback from deep inside transformers does not say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import UserError
from ..models import ModelInfo
from ..quiet import quiet_imports, quiet_library_progress


class PartLoader:
    """Loads the parts of ``model`` from its folder, which ``find_model`` resolved at the
    settings' revision (a local folder has no other revision to ask ``from_pretrained`` for)."""

    def __init__(self, model: ModelInfo, tokenizer_name: str | None) -> None:
        self.model = model
        self.location = str(model.path or model.location)
        self.tokenizer_name = tokenizer_name

    def tokenizer(self, subfolder: str):
        with quiet_imports():
            from transformers import CLIPTokenizer

        with self.errors("tokenizer"), quiet_library_progress():
            if self.tokenizer_name and subfolder == "tokenizer":
                return CLIPTokenizer.from_pretrained(self.tokenizer_name)
            return CLIPTokenizer.from_pretrained(self.location, subfolder=subfolder)

    def text_encoder(self, subfolder: str, kind: str = "CLIPTextModel"):
        with quiet_imports():
            import transformers

        with self.errors("text encoder"), quiet_library_progress():
            return getattr(transformers, kind).from_pretrained(self.location, subfolder=subfolder)

    def config(self, part: str) -> dict:
        """A part's ``config.json``, read before its weights to choose how to load them."""
        with quiet_imports():
            from diffusers import AutoencoderKL, UNet2DConditionModel

        kind = {"vae": AutoencoderKL, "unet": UNet2DConditionModel}[part]
        with self.errors(part), quiet_library_progress():
            return dict(kind.load_config(self.location, subfolder=part))

    def part(self, part: str, dtype: torch.dtype | None):
        """A frozen VAE or UNet in ``dtype``, or the noise scheduler (``dtype`` None)."""
        with quiet_imports():
            from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

        kind = {"vae": AutoencoderKL, "unet": UNet2DConditionModel, "scheduler": DDPMScheduler}[part]
        with self.errors(part), quiet_library_progress():
            if dtype is None:
                return kind.from_pretrained(self.location, subfolder=part)
            loaded = kind.from_pretrained(self.location, subfolder=part, torch_dtype=dtype)
        return loaded.requires_grad_(False)

    @contextmanager
    def errors(self, part: str) -> Iterator[None]:
        try:
            yield
        except (OSError, ValueError, KeyError) as error:
            raise UserError(
                f"The {part} of {self.model.name} at {self.location} could not be loaded "
                f"({error}); check that it is a complete diffusers Stable Diffusion folder."
            ) from error
