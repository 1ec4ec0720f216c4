"""``--initializer_token`` takes a phrase: its tokens are spread over the trigger's vectors.

One token per vector when the counts match (A1111, OneTrainer, invoke-training's
``initial_phrase``), an equal run of vectors per token when there are fewer tokens, and one
sentence when there are more. A single word starts every vector at its row, as it always did.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from invokeai_ti.cli import main
from invokeai_ti.errors import UserError
from invokeai_ti.training.initializer import spread
from invokeai_ti.training.tokens import add_tokens, new_tokens


def parts(model: Path, tokenizer: str = "tokenizer", encoder: str = "text_encoder", kind: str = "CLIPTextModel"):
    import transformers
    from transformers import CLIPTokenizer

    return (CLIPTokenizer.from_pretrained(str(model / tokenizer)),
            getattr(transformers, kind).from_pretrained(str(model / encoder)))


def row(tokenizer, encoder, word: str) -> torch.Tensor:
    (token,) = tokenizer.encode(word, add_special_tokens=False)
    return encoder.get_input_embeddings().weight[token].detach()


def start(tokenizer, encoder, initializer: str, num_vectors: int) -> torch.Tensor:
    _, vectors = add_tokens(tokenizer, encoder, new_tokens("<t>", num_vectors), initializer, None)
    return vectors.detach()


def test_each_token_of_a_phrase_starts_its_own_vector(tiny_model):
    tokenizer, encoder = parts(tiny_model)
    rows = [row(tokenizer, encoder, word) for word in ("orange", "cat", "painting")]
    vectors = start(tokenizer, encoder, "orange cat painting", 3)
    assert all(torch.equal(vectors[i], rows[i]) for i in range(3))


def test_a_single_word_starts_every_vector_as_before(tiny_model):
    tokenizer, encoder = parts(tiny_model)
    vectors = start(tokenizer, encoder, "painting", 3)
    assert all(torch.equal(vector, row(tokenizer, encoder, "painting")) for vector in vectors)


def test_fewer_tokens_than_vectors_give_each_token_an_equal_run_of_vectors(tiny_model):
    tokenizer, encoder = parts(tiny_model)
    vectors = start(tokenizer, encoder, "orange cat", 4)
    orange, cat = row(tokenizer, encoder, "orange"), row(tokenizer, encoder, "cat")
    assert [torch.equal(v, orange) for v in vectors] == [True, True, False, False]
    assert [torch.equal(v, cat) for v in vectors] == [False, False, True, True]
    assert spread([7, 8, 9], 5) == [7, 7, 8, 8, 9], "A1111's rule: token i * n // vectors"


def test_a_phrase_with_more_tokens_than_vectors_is_refused_in_one_sentence(make_root, capsys):
    root = make_root()
    argv = [f"--root={root}", "--model=stable-diffusion-1.5", "--placeholder_token=psychedelic",
            "--initializer_token=orange cat", "--num_vectors=1", "--max_train_steps=1", "--resolution=64"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "The initializer 'orange cat' is 2 tokens for this model (orange</w> cat</w>) but the trigger "
        "has 1 vector, one token each; use a phrase of at most 1 common word, or --num_vectors 2."
    )
    assert not (root / "embeddings").exists()


def test_sdxl_spreads_the_phrase_in_both_encoders(tiny_sdxl_model):
    for tokenizer, encoder, kind in (("tokenizer", "text_encoder", "CLIPTextModel"),
                                     ("tokenizer_2", "text_encoder_2", "CLIPTextModelWithProjection")):
        tok, enc = parts(tiny_sdxl_model, tokenizer, encoder, kind)
        vectors = start(tok, enc, "orange cat", 2)
        assert torch.equal(vectors[0], row(tok, enc, "orange")) and torch.equal(vectors[1], row(tok, enc, "cat"))
        with pytest.raises(UserError, match="is 2 tokens for this model"):
            start(*parts(tiny_sdxl_model, tokenizer, encoder, kind), "orange cat", 1)
