"""Model families: what differs between SD-1/SD-2 (one text encoder) and later families.

A family knows its text encoders (where each lives in the pipeline folder and which class loads
it) and how their outputs condition the UNet. The rest of the trainer asks the family instead of
branching on the model's base, so a family with two encoders is a new class here, not ``if``
statements through the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError
from ..models import BASE_SDXL, ModelInfo


@dataclass(frozen=True)
class EncoderSlot:
    """One text encoder of a pipeline and its tokenizer, by subfolder."""

    encoder: str
    tokenizer: str
    kind: str = "CLIPTextModel"


class StableDiffusionFamily:
    """SD-1 and SD-2: one CLIP text encoder whose last hidden state is the UNet's context."""

    name = "SD-1/SD-2"
    encoders: tuple[EncoderSlot, ...] = (EncoderSlot("text_encoder", "tokenizer"),)

    def conditioning(self, text_encoders: list, ids: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The UNet's keyword arguments for captions already tokenised as ``ids``."""
        return {"encoder_hidden_states": text_encoders[0](ids[0])[0]}


ModelFamily = StableDiffusionFamily


def family_for(model: ModelInfo) -> ModelFamily:
    if model.base == BASE_SDXL:
        raise UserError(
            f"{model.name} is an SDXL model, which this trainer does not support yet; choose an "
            "SD-1 or SD-2 model."
        )
    return StableDiffusionFamily()
