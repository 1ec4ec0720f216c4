"""The trigger's new tokens: naming them, checking they can be added, and reading their vectors.

The text encoder's embedding matrix is never resized or modified. The new vectors live in one
small parameter beside it (``ExtendedEmbedding``), so every original row stays bit-identical and
AdamW's state is a few kilobytes instead of two copies of a 49408-row matrix.
"""

from __future__ import annotations

import torch

from ..errors import Problem, UserError


def new_tokens(token: str, num_vectors: int) -> list[str]:
    """``<t>``, ``<t>_1``, ...: the diffusers naming that ``load_textual_inversion`` expands."""
    return [token] + [f"{token}_{i}" for i in range(1, num_vectors)]


def token_problems(tokenizer, tokens: list[str], initializer: str) -> list[Problem]:
    """What stops these tokens from being added to this tokenizer."""
    problems = []
    vocab = tokenizer.get_vocab()
    taken = [t for t in tokens if t in vocab]
    if taken:
        problems.append(Problem(
            f"The trigger {taken[0]} is already a token of this model's vocabulary; choose "
            "another trigger term.",
            "placeholder_token",
        ))
    init_ids = tokenizer.encode(initializer, add_special_tokens=False)
    if len(init_ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(init_ids)
        problems.append(Problem(
            f"The initializer '{initializer}' is not a single token: the tokenizer makes "
            f"{len(pieces)} of it ({' '.join(pieces) or 'nothing'}); choose a single common word "
            "such as '*', 'cat' or 'painting'.",
            "initializer_token",
        ))
    return problems


class ExtendedEmbedding(torch.nn.Module):
    """The text encoder's token embedding plus the new vectors, without resizing the matrix.

    Ids below the original vocabulary size read the frozen matrix; ids at or above it read the
    trainable vectors. The choice is made element-wise on the device: asking the host whether any
    new id is present would stop the GPU every step and break CUDA-graph capture.
    """

    def __init__(self, original: torch.nn.Embedding, vectors: torch.nn.Parameter) -> None:
        super().__init__()
        self.original = original
        self.vectors = vectors
        self.vocab_size = original.num_embeddings

    @property
    def weight(self) -> torch.Tensor:
        return self.original.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        base = self.original(ids.clamp(max=self.vocab_size - 1))
        is_new = ids >= self.vocab_size
        new = self.vectors.to(base.dtype)[(ids - self.vocab_size).clamp(min=0, max=self.vectors.shape[0] - 1)]
        return torch.where(is_new.unsqueeze(-1), new, base)


def add_tokens(
    tokenizer, text_encoder, tokens: list[str], initializer: str, initial: torch.Tensor | None
) -> tuple[list[int], torch.nn.Parameter]:
    """Add ``tokens`` after the vocabulary and return their ids and their starting vectors.

    The vectors start from ``initial`` when given (``--initial_embedding``), else every one from
    the initializer token's row.
    """
    problems = token_problems(tokenizer, tokens, initializer)
    if problems:
        raise UserError(problems[0].text)
    init_ids = tokenizer.encode(initializer, add_special_tokens=False)
    original_size = text_encoder.get_input_embeddings().num_embeddings
    if len(tokenizer) != original_size:
        raise UserError(
            f"The tokenizer has {len(tokenizer)} tokens but the text encoder has {original_size} "
            "embeddings; use the model's own tokenizer (leave --tokenizer_name out)."
        )
    tokenizer.add_tokens(tokens)
    token_ids = tokenizer.convert_tokens_to_ids(tokens)
    if token_ids != list(range(original_size, original_size + len(tokens))):
        raise UserError(
            "The tokenizer did not number the new tokens after its vocabulary; use the model's "
            "own tokenizer."
        )
    with torch.no_grad():
        start = text_encoder.get_input_embeddings().weight[init_ids[0]].float()
        data = initial.float() if initial is not None else start.repeat(len(tokens), 1)
    return token_ids, torch.nn.Parameter(data.clone())
