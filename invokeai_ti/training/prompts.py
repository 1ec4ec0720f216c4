"""The text each sample is trained with: its image's caption, or a template drawn by the plan.

Fixed texts (the templates and unshuffled captions) are tokenised once at start, so a step with
them touches no tokenizer. A shuffled caption differs per sample; it is built from the sample's
own seed, like every other random choice, and tokenised when used.
"""

from __future__ import annotations

import torch

from ..data.captions import varied
from .plan import Batch, sample_seed


class Prompts:
    """Token ids of every sample's text, one tensor per text encoder."""

    def __init__(
        self,
        tokenizers: list,
        templates: list[str],
        captions: list[str | None],
        *,
        placeholder: str,
        seed: int,
        shuffle: bool = False,
        keep_tokens: int = 0,
        dropout: float = 0.0,
        device: torch.device | None = None,
    ) -> None:
        self.tokenizers = tokenizers
        self.templates = templates
        self.captions = captions
        self.placeholder = placeholder
        self.seed = seed
        self.varies = shuffle or dropout > 0
        self.shuffle = shuffle
        self.keep_tokens = keep_tokens
        self.dropout = dropout
        self.device = device
        self.rows = {text: row for row, text in enumerate(dict.fromkeys(templates + [c for c in captions if c]))}
        self.table = self.tokenize(list(self.rows))

    def tokenize(self, texts: list[str]) -> list[torch.Tensor]:
        return [
            tokenizer(
                texts, padding="max_length", truncation=True, max_length=tokenizer.model_max_length,
                return_tensors="pt",
            ).input_ids.to(self.device)
            for tokenizer in self.tokenizers
        ]

    def text(self, number: int, image: int, template: int) -> str:
        """What sample ``number`` (of ``image``, drawn ``template``) is trained with."""
        caption = self.captions[image]
        if caption is None:
            return self.templates[template]
        if not self.varies:
            return caption
        generator = torch.Generator().manual_seed(sample_seed(self.seed, "caption", number))
        return varied(
            caption, self.placeholder, shuffle=self.shuffle, keep=self.keep_tokens,
            dropout=self.dropout, generator=generator,
        )

    def ids(self, batch: Batch) -> list[torch.Tensor]:
        texts = [
            self.text(n, image, template)
            for n, image, template in zip(batch.numbers, batch.images, batch.templates)
        ]
        if all(text in self.rows for text in texts):
            rows = torch.tensor([self.rows[text] for text in texts], device=self.device)
            return [table[rows] for table in self.table]
        return self.tokenize(texts)
