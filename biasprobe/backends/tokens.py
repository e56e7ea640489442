"""Splitting probe words into a tokenizer's pieces, without torch.

Shared by the Hugging Face backend and recorded outputs that carry their tokenizer, so that the
``recorded:`` path never imports torch.
"""

from __future__ import annotations

from typing import Any

from biasprobe.errors import VocabularyError


def pieces_in_context(
    tokenizer: Any,
    mask_token: str,
    sentence: str,
    word: str,
    model_name: str,
    *,
    last: bool = False,
) -> list[int]:
    """Token ids of ``word`` written where the mask of ``sentence`` is.

    The word is tokenized in context (the text before the mask, then the word), so tokenizers
    that mark word starts (``Ġword``, ``▁word``) see it as a separate word, not the start of
    a text. ``last``: write it at the last mask of ``sentence`` instead of the first (the
    text before it may hold other masks).

    Raises:
        VocabularyError: the word becomes (or contains) the unknown token.
    """
    cut = sentence.rfind(mask_token) if last else sentence.find(mask_token)
    left = sentence[:cut] if cut >= 0 else ""
    stem = left.rstrip()
    space = left[len(stem) :]
    before = tokenizer(stem, add_special_tokens=False)["input_ids"] if stem else []
    both = tokenizer(stem + space + word, add_special_tokens=False)["input_ids"]
    if both[: len(before)] == before and len(both) > len(before):
        pieces = both[len(before) :]
    else:
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
    unk = tokenizer.unk_token_id
    if not pieces or (unk is not None and unk in pieces):
        shown = tokenizer.convert_ids_to_tokens(pieces)
        raise VocabularyError(
            f"target word {word!r} is not in the vocabulary of model {model_name}: it "
            f"tokenizes to {shown} (the unknown token); choose another word or a model "
            "whose vocabulary has it"
        )
    return [int(p) for p in pieces]
