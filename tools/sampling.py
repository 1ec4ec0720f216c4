"""Pictures of a prompt drawn by the world model with any trigger vectors put in.

How the learning benchmark and the learning tests read an embedding: a plain diffusers
``StableDiffusionPipeline`` (not the trainer's previews, so a fault the previews share with
training cannot hide), the previews' sampler and guidance, and the same seed for every set of
vectors, so two embeddings drawn here differ only by what was learned. Any trainer's file works:
only the vectors are read.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from invokeai_ti.quiet import quiet_imports, quiet_library_progress
from invokeai_ti.training.previews import DENOISING_STEPS, GUIDANCE_SCALE

TRIGGER = "<blicket>"


class TriggerSampler:
    def __init__(self, model: Path, *, num_vectors: int = 1, prompt: str = "a photo of a {}",
                 trigger: str = TRIGGER) -> None:
        with quiet_imports():
            from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
        with quiet_library_progress():
            self.pipeline = StableDiffusionPipeline.from_pretrained(
                str(model), safety_checker=None, requires_safety_checker=False
            )
        self.pipeline.scheduler = DPMSolverMultistepScheduler.from_config(self.pipeline.scheduler.config)
        self.pipeline.set_progress_bar_config(disable=True)
        tokenizer, encoder = self.pipeline.tokenizer, self.pipeline.text_encoder
        tokens = [trigger] + [f"{trigger}_{i}" for i in range(1, num_vectors)]
        tokenizer.add_tokens(tokens)
        encoder.resize_token_embeddings(len(tokenizer))
        self.rows = tokenizer.convert_tokens_to_ids(tokens)
        self.placeholder = " ".join(tokens)
        self.prompt = prompt.replace("{}", self.placeholder)

    def word(self, word: str) -> torch.Tensor:
        """A word's own embedding in every vector: where both trainers start from an initializer."""
        (token,) = self.pipeline.tokenizer.encode(word, add_special_tokens=False)
        weight = self.pipeline.text_encoder.get_input_embeddings().weight
        return weight[token].detach().clone().expand(len(self.rows), -1).contiguous()

    def draw(self, vectors: torch.Tensor, count: int, seed: int = 0, prompt: str | None = None) -> list[Image.Image]:
        """``count`` pictures of the prompt (or of ``prompt``, ``{}`` the trigger) with ``vectors``
        ([vectors, width] or [width]) as the trigger."""
        with torch.no_grad():
            weight = self.pipeline.text_encoder.get_input_embeddings().weight
            weight[self.rows] = vectors.reshape(len(self.rows), -1).to(weight.dtype)
            return self.pipeline(
                self.prompt if prompt is None else prompt.replace("{}", self.placeholder),
                num_images_per_prompt=count,
                generator=torch.Generator().manual_seed(seed),
                num_inference_steps=DENOISING_STEPS,
                guidance_scale=GUIDANCE_SCALE,
            ).images


def saved_vectors(path: Path) -> torch.Tensor:
    """The vectors of an embedding file in the diffusers layout (either trainer's), whatever its key."""
    from safetensors.torch import load_file

    (tensor,) = load_file(str(path)).values()
    return tensor.float()
