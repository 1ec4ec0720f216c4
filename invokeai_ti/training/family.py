"""Model families: what differs between SD-1/SD-2 (one text encoder) and SDXL (two).

A family knows its text encoders (where each lives in the pipeline folder and which class loads
it), how their outputs condition the UNet (SDXL's time ids included) and what its VAE needs. The
files its embeddings are saved and installed as are ``files``, from ``outputs.family_files``: the
maths here, the files there. The rest of the trainer asks the family instead of branching on the
model's base, so SDXL is a class here, not ``if`` statements through the loop.

Vectors are always handed around as one tensor per text encoder, in the family's encoder order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data.folder import TrainingImage
from ..data.images import image_geometry
from ..models import BASE_SDXL, ModelInfo
from ..outputs.family_files import FamilyFiles, StableDiffusionFiles, StableDiffusionXLFiles


@dataclass(frozen=True)
class EncoderSlot:
    """One text encoder of a pipeline and its tokenizer, by subfolder."""

    encoder: str
    tokenizer: str
    kind: str = "CLIPTextModel"
    # What the vectors of this encoder are called where a person reads them (logs, the report).
    label: str = "text encoder"


class ModelFamily:
    """What every family shares; subclasses say what is theirs."""

    name: str
    encoders: tuple[EncoderSlot, ...]
    files: FamilyFiles

    def conditioning(
        self, text_encoders: Sequence, ids: Sequence[torch.Tensor], time_ids: torch.Tensor | None
    ) -> dict[str, Any]:
        """The UNet's keyword arguments for captions already tokenised as ``ids``."""
        raise NotImplementedError

    def vae_dtype(self, weight_dtype: torch.dtype, vae_config: Mapping[str, Any]) -> torch.dtype:
        """The precision the latent cache is encoded in."""
        return weight_dtype

    def image_time_ids(
        self, images: list[TrainingImage], resolution: int, center_crop: bool
    ) -> torch.Tensor | None:
        """What the UNet is told of each training image's geometry, ``[image, mirrored, n]``; None
        for a family that is told nothing."""
        return None

    def size_time_ids(self, resolution: int, count: int, device: torch.device) -> torch.Tensor | None:
        """The same for ``count`` generated, uncropped pictures of ``resolution`` (the previews)."""
        return None


class StableDiffusionFamily(ModelFamily):
    """SD-1 and SD-2: one CLIP text encoder whose last hidden state is the UNet's context."""

    name = "SD-1/SD-2"
    encoders = (EncoderSlot("text_encoder", "tokenizer"),)
    files = StableDiffusionFiles()

    def conditioning(
        self, text_encoders: Sequence, ids: Sequence[torch.Tensor], time_ids: torch.Tensor | None
    ) -> dict[str, Any]:
        return {"encoder_hidden_states": text_encoders[0](ids[0])[0]}


class StableDiffusionXLFamily(ModelFamily):
    """SDXL: CLIP ViT-L and OpenCLIP bigG, both learned, and size and crop conditioning.

    The UNet's context is both encoders' penultimate hidden states side by side; the second
    encoder's pooled, projected output and each image's six time ids (original height and width,
    crop top and left, target height and width) go in through ``added_cond_kwargs``, as SDXL was
    trained and as its pipelines call it.
    """

    name = "SDXL"
    encoders = (
        EncoderSlot("text_encoder", "tokenizer", label="clip_l"),
        EncoderSlot("text_encoder_2", "tokenizer_2", "CLIPTextModelWithProjection", label="clip_g"),
    )
    files = StableDiffusionXLFiles()

    def conditioning(
        self, text_encoders: Sequence, ids: Sequence[torch.Tensor], time_ids: torch.Tensor | None
    ) -> dict[str, Any]:
        if time_ids is None:
            raise ValueError("SDXL's UNet needs each sample's time ids")
        first = text_encoders[0](ids[0], output_hidden_states=True)
        second = text_encoders[1](ids[1], output_hidden_states=True)
        return {
            "encoder_hidden_states": torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1),
            "added_cond_kwargs": {"text_embeds": second.text_embeds, "time_ids": time_ids},
        }

    def vae_dtype(self, weight_dtype: torch.dtype, vae_config: Mapping[str, Any]) -> torch.dtype:
        """float32 where fp16 would overflow: SDXL's own VAE turns fp16 latents into NaN.

        A VAE made fp16-safe (the "fp16-fix" VAE) says so with ``force_upcast: false``; bf16 has
        float32's range and needs no upcast, as diffusers' SDXL pipelines decide too.
        """
        if weight_dtype == torch.float16 and vae_config.get("force_upcast", True):
            return torch.float32
        return weight_dtype

    def image_time_ids(self, images: list[TrainingImage], resolution: int, center_crop: bool) -> torch.Tensor:
        """Original height and width, crop top and left, target height and width (the image's
        bucket, or the square), as SDXL was trained."""
        rows = []
        for image in images:
            shape = image_geometry(image.path, resolution, center_crop, image.fit)
            rows.append([
                [shape.height, shape.width, shape.crop_top, left, shape.target_height, shape.target_width]
                for left in (shape.crop_left, shape.mirrored_crop_left)
            ])
        return torch.tensor(rows, dtype=torch.float32)

    def size_time_ids(self, resolution: int, count: int, device: torch.device) -> torch.Tensor:
        size = float(resolution)
        return torch.tensor([[size, size, 0.0, 0.0, size, size]] * count, device=device)


def family_for(model: ModelInfo) -> ModelFamily:
    return StableDiffusionXLFamily() if model.base == BASE_SDXL else StableDiffusionFamily()
