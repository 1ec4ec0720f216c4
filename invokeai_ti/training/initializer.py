"""Where the trigger's vectors start: a word, or a phrase spread over the vectors.

``--initializer_token "blue triangle"`` with two vectors starts the first at *blue* and the
second at *triangle*, as AUTOMATIC1111 (``create_embedding``), OneTrainer and invoke-training's
``initial_phrase`` do: a concept that needs several words to describe gets one vector per word
instead of every vector a copy of one (kohya repeats or cuts the words instead). With fewer
tokens than vectors each token covers an equal run of vectors (A1111's rule), so a single word
fills every vector exactly as the diffusers example does. More tokens than vectors would have to
drop words silently, so it is refused.
"""

from __future__ import annotations


def phrase_ids(tokenizer, phrase: str) -> list[int]:
    return tokenizer.encode(phrase.strip(), add_special_tokens=False)


def spread(ids: list[int], num_vectors: int) -> list[int]:
    """The token each vector starts from: A1111's ``ids[i * len(ids) // num_vectors]``."""
    return [ids[i * len(ids) // num_vectors] for i in range(num_vectors)]


def initializer_problem(tokenizer, phrase: str, num_vectors: int) -> str | None:
    """A phrase this tokenizer makes into more tokens than there are vectors, in one sentence."""
    ids = phrase_ids(tokenizer, phrase)
    if not ids:
        return f"The initializer '{phrase}' makes no token at all; use a word such as '*', 'toy' or 'painting'."
    if len(ids) <= num_vectors:
        return None
    pieces = " ".join(tokenizer.convert_ids_to_tokens(ids))
    vectors = f"{num_vectors} vector{'s' if num_vectors != 1 else ''}"
    return (
        f"The initializer '{phrase}' is {len(ids)} tokens for this model ({pieces}) but the trigger "
        f"has {vectors}, one token each; use a phrase of at most {num_vectors} common "
        f"word{'s' if num_vectors != 1 else ''}, or --num_vectors {len(ids)}."
    )


def initializer_rows(tokenizer, phrase: str, num_vectors: int) -> list[int]:
    """The vocabulary row each of the ``num_vectors`` vectors starts from (checked beforehand)."""
    return spread(phrase_ids(tokenizer, phrase), num_vectors)
