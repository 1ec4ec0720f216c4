"""``--no-only_save_embeds``: a complete diffusers pipeline that already knows the trigger.

Some users load a pipeline folder rather than an embedding; this writes the model with the new
tokens added to each tokenizer and their vectors placed in each text encoder (both of SDXL's).
The UNet, VAE and scheduler are unchanged and copied as they are.

Each text encoder's weights are written under the names every released SD checkpoint uses
(``text_model.embeddings...``, and ``text_projection.weight`` for SDXL's second encoder). Recent
transformers releases build ``CLIPTextModel`` without its ``text_model`` level and save it without
that prefix; the transformers InvokeAI 6.14 pins (5.5) reads such a file with every weight
"missing" and leaves the encoder random, silently. Files with the prefix load in both.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..files import writing
from ..quiet import quiet_imports, quiet_library_progress

WEIGHTS_FILE = "model.safetensors"
# The top-level names of a CLIP text encoder's weights in released checkpoints.
RELEASED_PREFIXES = ("text_model.", "text_projection.")

UNCHANGED_PARTS = ("unet", "vae", "scheduler", "feature_extractor", "safety_checker")


@dataclass(frozen=True)
class TrainedEncoder:
    """One text encoder's share of the result: where it lives and what was added to it."""

    encoder_folder: str
    tokenizer_folder: str
    kind: str
    tokenizer: object
    token_ids: list[int]
    vectors: torch.Tensor


def export_pipeline(model_folder: Path, encoders: Sequence[TrainedEncoder], target: Path) -> Path:
    """A full diffusers pipeline in ``target`` that knows the trigger; a failed write (a full disk)
    is one sentence, and the embeddings written before it stay."""
    with writing(target / "model_index.json"):
        return _export(model_folder, encoders, target)


def _export(model_folder: Path, encoders: Sequence[TrainedEncoder], target: Path) -> Path:
    with quiet_imports():
        import transformers

    target.mkdir(parents=True, exist_ok=True)
    with quiet_library_progress():
        for trained in encoders:
            text_encoder = getattr(transformers, trained.kind).from_pretrained(
                str(model_folder / trained.encoder_folder)
            )
            text_encoder.resize_token_embeddings(len(trained.tokenizer))
            with torch.no_grad():
                weight = text_encoder.get_input_embeddings().weight
                weight[trained.token_ids] = trained.vectors.to(weight.dtype)
            save_text_encoder(text_encoder, target / trained.encoder_folder)
            trained.tokenizer.save_pretrained(str(target / trained.tokenizer_folder))
    for part in UNCHANGED_PARTS:
        if (model_folder / part).is_dir():
            shutil.copytree(model_folder / part, target / part, dirs_exist_ok=True)
    shutil.copy2(model_folder / "model_index.json", target / "model_index.json")
    return target


def released_name(name: str) -> str:
    return name if name.startswith(RELEASED_PREFIXES) else f"text_model.{name}"


def save_text_encoder(text_encoder: torch.nn.Module, folder: Path) -> None:
    """``save_pretrained`` for the config, then one weights file under the released names.

    Whatever weights files ``save_pretrained`` wrote (unprefixed, or in shards with an index) are
    replaced.
    """
    from safetensors.torch import save_file

    text_encoder.save_pretrained(str(folder))
    for written in [*folder.glob("model*.safetensors"), *folder.glob("model*.safetensors.index.json")]:
        written.unlink()
    state = {released_name(name): tensor.detach().contiguous() for name, tensor in text_encoder.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
