"""``--no-only_save_embeds``: a complete diffusers pipeline that already knows the trigger.

Some users load a pipeline folder rather than an embedding; this writes the model with the new
tokens added to its tokenizer and their vectors placed in its text encoder. The UNet, VAE and
scheduler are unchanged and copied as they are.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from .quiet import quiet_imports, quiet_library_progress

UNCHANGED_PARTS = ("unet", "vae", "scheduler", "feature_extractor", "safety_checker")


def export_pipeline(model_folder: Path, tokenizer, token_ids: list[int], vectors: torch.Tensor, target: Path) -> Path:
    with quiet_imports():
        from transformers import CLIPTextModel

    target.mkdir(parents=True, exist_ok=True)
    with quiet_library_progress():
        text_encoder = CLIPTextModel.from_pretrained(str(model_folder / "text_encoder"))
        text_encoder.resize_token_embeddings(len(tokenizer))
        with torch.no_grad():
            weight = text_encoder.get_input_embeddings().weight
            weight[token_ids] = vectors.to(weight.dtype)
        text_encoder.save_pretrained(str(target / "text_encoder"))
        tokenizer.save_pretrained(str(target / "tokenizer"))
    for part in UNCHANGED_PARTS:
        if (model_folder / part).is_dir():
            shutil.copytree(model_folder / part, target / part, dirs_exist_ok=True)
    shutil.copy2(model_folder / "model_index.json", target / "model_index.json")
    return target
