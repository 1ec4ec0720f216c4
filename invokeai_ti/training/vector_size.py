"""The size of the learned vectors: measured against the vocabulary, and held where asked.

Textual inversion's vectors grow: nothing in the loss keeps them at the size of the words around
them, and a vector many times larger than any word drowns the rest of the prompt (Cross
Initialization, Pang et al. 2024). The reference is the median row norm of the text encoder's own
vocabulary, one per encoder (SDXL's clip_l and clip_g have their own).

Two ways to hold the size, both acting on the optimizer step only, so the vectors are always the
embedding as saved and a checkpoint's vectors and AdamW state continue a run exactly:

- ``preserve`` (OneTrainer's ``preserve_embedding_norm``): a plain AdamW step, then each vector is
  rescaled to the reference norm.
- ``direction`` (in the spirit of Directional Textual Inversion, Kim et al. 2025): the size is
  fixed from the start and only the direction is learned. Before each step the vectors are
  divided by the reference, so AdamW works on unit directions at its own learning rate; the
  gradient is taken along the sphere (its radial part removed); after the step the direction is
  renormalised and scaled back to the reference norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

MODES = ("free", "preserve", "direction")


def vocabulary_median_norm(embedding: torch.Tensor) -> float:
    """The median L2 norm of the vocabulary's rows (the original ones; new rows are not in it)."""
    return float(embedding.detach().float().norm(dim=1).median())


def mode_of(preserve_embedding_norm: bool, learn_direction_only: bool) -> str:
    if learn_direction_only:
        return "direction"
    return "preserve" if preserve_embedding_norm else "free"


@dataclass(frozen=True)
class VectorSize:
    """How the optimizer step treats the vectors' size; ``references`` has one norm per encoder."""

    mode: str
    references: tuple[float, ...]

    def start(self, vectors: Sequence[torch.nn.Parameter]) -> None:
        """Fix the size before the first step (direction mode: the size never changes)."""
        if self.mode == "direction":
            self._rescale(vectors)

    def before_step(self, vectors: Sequence[torch.nn.Parameter]) -> None:
        """Direction mode: hand AdamW the unit directions and the gradient along the sphere."""
        if self.mode != "direction":
            return
        with torch.no_grad():
            for parameter, reference in zip(vectors, self.references, strict=True):
                parameter.div_(reference)
                if parameter.grad is None:
                    continue
                unit = parameter / parameter.norm(dim=1, keepdim=True)
                grad = parameter.grad.mul_(reference)
                grad.sub_((grad * unit).sum(dim=1, keepdim=True) * unit)

    def after_step(self, vectors: Sequence[torch.nn.Parameter]) -> None:
        if self.mode != "free":
            self._rescale(vectors)

    def _rescale(self, vectors: Sequence[torch.nn.Parameter]) -> None:
        with torch.no_grad():
            for parameter, reference in zip(vectors, self.references, strict=True):
                parameter.mul_(reference / parameter.norm(dim=1, keepdim=True))

