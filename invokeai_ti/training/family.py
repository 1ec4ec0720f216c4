"""Model families: what differs between SD-1/SD-2 (one text encoder) and SDXL (two).

A family knows its text encoders (where each lives in the pipeline folder and which class loads
it), how their outputs condition the UNet, what its VAE needs, and the files its embeddings are
saved and installed as. The rest of the trainer asks the family instead of branching on the
model's base, so SDXL is a class here, not ``if`` statements through the loop.

Vectors are always handed around as one tensor per text encoder, in the family's encoder order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..models import BASE_SDXL, ModelInfo
from ..outputs.embeddings import Embedding, install_embedding, save_embedding_files
from ..outputs.layout import OutputLayout
from ..outputs.sdxl_files import (
    SDXLVectors,
    read_initial_vectors,
    save_sdxl_embeddings,
    sdxl_trigger_problem,
)
from ..settings import bare_trigger


@dataclass(frozen=True)
class EncoderSlot:
    """One text encoder of a pipeline and its tokenizer, by subfolder."""

    encoder: str
    tokenizer: str
    kind: str = "CLIPTextModel"


class ModelFamily:
    """What every family shares; subclasses say what is theirs."""

    name: str
    encoders: tuple[EncoderSlot, ...]
    uses_time_ids = False

    def conditioning(
        self, text_encoders: Sequence, ids: Sequence[torch.Tensor], time_ids: torch.Tensor | None
    ) -> dict[str, Any]:
        """The UNet's keyword arguments for captions already tokenised as ``ids``."""
        raise NotImplementedError

    def vae_dtype(self, weight_dtype: torch.dtype, vae_config: Mapping[str, Any]) -> torch.dtype:
        """The precision the latent cache is encoded in."""
        return weight_dtype

    def trigger_problem(self, token: str) -> str | None:
        """A trigger this family's files cannot be saved under."""
        return None

    def output_layout(self, folder: Path, token: str) -> OutputLayout:
        """The names of what a run of this family writes into ``folder``."""
        return OutputLayout(folder, bare_trigger(token), len(self.encoders))

    def save_files(
        self, folder: Path, token: str, vectors: Sequence[torch.Tensor], step: int, model: str,
        *, snapshot: bool = False,
    ) -> None:
        """Every layout of the embedding into ``folder``; ``snapshot`` names them after ``step``."""
        raise NotImplementedError

    def read_saved(self, folder: Path, token: str) -> tuple[torch.Tensor, ...]:
        """The vectors ``save_files`` wrote into ``folder`` (final names), one per encoder."""
        # The diffusers files, ``{token: tensor[n, width]}``, one per encoder.
        files = self.output_layout(folder, token).embeddings().diffusers
        return tuple(load_file(str(path))[token] for path in files)

    def install(self, output_dir: Path, embedding_dir: Path, token: str, step: int | None = None) -> Path:
        """Put the trained embedding (or the snapshot of ``step``) where InvokeAI finds it;
        returns the installed file.

        Every family's output folder holds the InvokeAI file as ``learned_embeds.bin`` (SD's 1-D
        or A1111 layout, SDXL's ``clip_l``/``clip_g``), its snapshots as ``-steps-N.bin``; it is
        installed as its folder's only file.
        """
        return install_embedding(output_dir, embedding_dir, step)

    def read_initial(self, path: Path, widths: Sequence[int], model: str) -> tuple[torch.Tensor, ...]:
        """``--initial_embedding``'s vectors, one per encoder; a file for other widths is refused."""
        return read_initial_vectors(path, widths, model)


class StableDiffusionFamily(ModelFamily):
    """SD-1 and SD-2: one CLIP text encoder whose last hidden state is the UNet's context."""

    name = "SD-1/SD-2"
    encoders = (EncoderSlot("text_encoder", "tokenizer"),)

    def conditioning(
        self, text_encoders: Sequence, ids: Sequence[torch.Tensor], time_ids: torch.Tensor | None
    ) -> dict[str, Any]:
        return {"encoder_hidden_states": text_encoders[0](ids[0])[0]}

    def save_files(
        self, folder: Path, token: str, vectors: Sequence[torch.Tensor], step: int, model: str,
        *, snapshot: bool = False,
    ) -> None:
        save_embedding_files(folder, Embedding(token, vectors[0], step, model), snapshot=snapshot)


class StableDiffusionXLFamily(ModelFamily):
    """SDXL: CLIP ViT-L and OpenCLIP bigG, both learned, and size and crop conditioning.

    The UNet's context is both encoders' penultimate hidden states side by side; the second
    encoder's pooled, projected output and each image's six time ids (original height and width,
    crop top and left, target height and width) go in through ``added_cond_kwargs``, as SDXL was
    trained and as its pipelines call it.
    """

    name = "SDXL"
    encoders = (
        EncoderSlot("text_encoder", "tokenizer"),
        EncoderSlot("text_encoder_2", "tokenizer_2", "CLIPTextModelWithProjection"),
    )
    uses_time_ids = True

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

    def trigger_problem(self, token: str) -> str | None:
        return sdxl_trigger_problem(token)

    def save_files(
        self, folder: Path, token: str, vectors: Sequence[torch.Tensor], step: int, model: str,
        *, snapshot: bool = False,
    ) -> None:
        save_sdxl_embeddings(folder, token, SDXLVectors(*vectors), step=step if snapshot else None)


def family_for(model: ModelInfo) -> ModelFamily:
    return StableDiffusionXLFamily() if model.base == BASE_SDXL else StableDiffusionFamily()
