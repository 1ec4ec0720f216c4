"""Pictures of a prompt drawn by a world model with any trigger vectors put in.

How the learning benchmark and the learning tests read an embedding: a plain diffusers pipeline
(``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline``, as the folder's ``model_index.json``
says; not the trainer's previews, so a fault the previews share with training cannot hide), the
previews' sampler and guidance, and the same seed for every set of vectors, so two embeddings
drawn here differ only by what was learned. Any trainer's file works: only the vectors are read.

Vectors are a tensor (``[vectors, width]`` or ``[width]``) for an SD-1 model, and for SDXL a
mapping with one tensor per text encoder under the keys AUTOMATIC1111 and ComfyUI read from a
single-file embedding: ``clip_l`` goes into the first encoder, ``clip_g`` into the second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from PIL import Image

from invokeai_ti.quiet import quiet_imports, quiet_library_progress
from invokeai_ti.training.previews import DENOISING_STEPS, GUIDANCE_SCALE

TRIGGER = "<blicket>"
SDXL_KEYS = ("clip_l", "clip_g")

Vectors = torch.Tensor | Mapping[str, torch.Tensor]


def is_sdxl(model: Path) -> bool:
    index = json.loads((Path(model) / "model_index.json").read_text(encoding="utf-8"))
    return index.get("_class_name") == "StableDiffusionXLPipeline"


def load_pipeline(model: Path):
    """The folder's own pipeline class with the previews' sampler, quiet, in float32."""
    with quiet_imports():
        from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
    with quiet_library_progress():
        if is_sdxl(model):
            pipeline = StableDiffusionXLPipeline.from_pretrained(str(model), torch_dtype=torch.float32)
        else:
            pipeline = StableDiffusionPipeline.from_pretrained(
                str(model), safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32)
    pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class TriggerSampler:
    def __init__(self, model: Path, *, num_vectors: int = 1, prompt: str = "a photo of a {}",
                 trigger: str = TRIGGER) -> None:
        self.pipeline = load_pipeline(model)
        self.sdxl = is_sdxl(model)
        pairs = [(self.pipeline.tokenizer, self.pipeline.text_encoder)]
        if self.sdxl:
            pairs.append((self.pipeline.tokenizer_2, self.pipeline.text_encoder_2))
        tokens = [trigger] + [f"{trigger}_{i}" for i in range(1, num_vectors)]
        self.encoders = []
        for tokenizer, encoder in pairs:
            tokenizer.add_tokens(tokens)
            encoder.resize_token_embeddings(len(tokenizer))
            self.encoders.append((tokenizer, encoder, tokenizer.convert_tokens_to_ids(tokens)))
        self.prompt = prompt.replace("{}", " ".join(tokens))

    def word(self, word: str) -> Vectors:
        """A word's own embedding in every vector (in each encoder): where trainers start from an
        initializer."""
        found = []
        for tokenizer, encoder, rows in self.encoders:
            (token,) = tokenizer.encode(word, add_special_tokens=False)
            weight = encoder.get_input_embeddings().weight
            found.append(weight[token].detach().clone().expand(len(rows), -1).contiguous())
        return dict(zip(SDXL_KEYS, found)) if self.sdxl else found[0]

    def draw(self, vectors: Vectors, count: int, seed: int = 0) -> list[Image.Image]:
        """``count`` pictures of the prompt with ``vectors`` as the trigger."""
        per_encoder = [vectors[key] for key in SDXL_KEYS] if self.sdxl else [vectors]
        with torch.no_grad():
            for (_, encoder, rows), tensor in zip(self.encoders, per_encoder):
                weight = encoder.get_input_embeddings().weight
                weight[rows] = tensor.reshape(len(rows), -1).to(weight.dtype)
            return self.pipeline(
                self.prompt,
                num_images_per_prompt=count,
                generator=torch.Generator().manual_seed(seed),
                num_inference_steps=DENOISING_STEPS,
                guidance_scale=GUIDANCE_SCALE,
            ).images


def saved_vectors(path: Path) -> Vectors:
    """The vectors of an embedding file, whoever wrote it.

    A single file with ``clip_l`` and ``clip_g`` (AUTOMATIC1111's and ComfyUI's SDXL layout) gives
    both; a diffusers-layout file gives its one tensor, whatever its key, joined by its SDXL
    partner (``learned_embeds_2...`` beside ``learned_embeds...``) when there is one.
    """
    from safetensors.torch import load_file

    path = Path(path)
    state = load_file(str(path))
    if set(SDXL_KEYS) <= set(state):
        return {key: state[key].float() for key in SDXL_KEYS}
    (tensor,) = state.values()
    partner = path.with_name(path.name.replace("learned_embeds", "learned_embeds_2", 1))
    if partner != path and partner.exists():
        (second,) = load_file(str(partner)).values()
        return {"clip_l": tensor.float(), "clip_g": second.float()}
    return tensor.float()
