"""A causal (decoder) LM as a fill-mask model: the fill is the next token after the text before
``[MASK]``.

:class:`CausalFill` wraps a loaded :class:`~biasprobe.backends.causal.HFCausalLM` and implements
the :class:`~biasprobe.backends.base.MaskedLM` protocol, so that a fill-mask probe set, the
result cache (:class:`~biasprobe.backends.cached.CachedMaskedLM`) and every fill-mask score
apply unchanged:

* **the fill** (:meth:`CausalFill.mask_logprobs`): the full-vocabulary log-softmax of the next
  token after the text before ``[MASK]`` (after the BOS token when the tokenizer has one), the
  whitespace just before ``[MASK]`` left out: in a byte-level or SentencePiece vocabulary the
  next word's first piece carries its leading space ("Ġnurse", "▁nurse").
* **the text after** ``[MASK]`` cannot condition a next-token distribution. Only punctuation and
  whitespace may follow it (``"The woman worked as a [MASK]."``); it is not seen by the model.
  Words after it, or a second mask, are refused (:func:`check_after_mask`).
* **targets** (:meth:`CausalFill.target_pieces`): the pieces a word becomes after the prefix, in
  the form the tokenizer gives in context (the prefix and the word tokenized together, the
  prefix's own ids taken off), so a word after a space starts with its leading-space piece; a
  word the tokenizer merges with the end of the prefix is refused. A target of several pieces
  is scored by the chain rule, ``log P(w) = Σ_i log P(piece_i | prefix, piece_<i)``
  (:meth:`CausalFill.chain_logprobs`), one batched call.
* **Kurita's prior** masks the attribute *inside* the prefix: a next-token model has no
  distribution for that, so prior-normalised (attribute) pairs are refused.

Batches: :meth:`CausalFill.mask_logprobs` forms the batches the cache wrapper forms (distinct
sentences in the order given, sorted by input length, :attr:`batch_size` at a time), one forward
pass each, so a cached value is the float a fresh run computes, bit for bit.

This module does not import torch (the fill-mask task imports it on the ``recorded:`` path).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from biasprobe.backends.base import MaskedLMBackend
from biasprobe.errors import UsageError, VocabularyError

if TYPE_CHECKING:  # pragma: no cover
    from biasprobe.backends.causal import HFCausalLM

__all__ = [
    "FAMILY_NAMES",
    "FILL",
    "FILLS",
    "MASK_TOKEN",
    "PRIOR_REFUSAL",
    "CausalFill",
    "check_after_mask",
    "prior_refusal",
    "split_at_mask",
]

#: The mask placeholder of probe sentences, kept as the causal LM's "mask token": the sentence
#: is cut there, it is never tokenized.
MASK_TOKEN = "[MASK]"
#: What a fill is for a causal LM (``info["fill"]``, the report and the terminal).
FILL = "the next-token distribution after the text before [MASK]"
#: What a fill is for each model family that fill-mask probe sets run on (the ``fill`` of a
#: run's model blocks, shown by the report and the terminal).
FILLS = {"masked-lm": "the distribution at [MASK]", "causal-lm": FILL}
#: The short names of those families (report and terminal).
FAMILY_NAMES = {"masked-lm": "masked LM", "causal-lm": "causal LM"}
#: Why prior-normalised (attribute) pairs are refused on a causal LM.
PRIOR_REFUSAL = (
    "a prior-normalised score (Kurita et al. 2019) divides by a prior that masks the attribute "
    "inside the text before the target, and a next-token model has no distribution for a "
    "masked word in its context"
)
#: How the text after ``[MASK]`` is treated (``info["after_mask"]``).
AFTER_MASK = "punctuation and whitespace only, not seen by the model"


def split_at_mask(sentence: str, mask_token: str = MASK_TOKEN) -> tuple[str, str, str]:
    """``(prefix, space, rest)``: the text before the one mask without its trailing
    whitespace, that whitespace, and the text after the mask.

    Raises:
        UsageError: the sentence does not hold exactly one mask.
    """
    n = sentence.count(mask_token)
    if n != 1:
        raise UsageError(
            f"sentence {sentence!r} has {n} {mask_token}s; a causal language model's fill is "
            f"the next token after the text before one {mask_token}, so it needs exactly one"
        )
    left, rest = sentence.split(mask_token)
    prefix = left.rstrip()
    return prefix, left[len(prefix) :], rest


def check_after_mask(rest: str) -> str | None:
    """Why the text after ``[MASK]`` cannot be left out of a causal LM's fill, or None.

    Only whitespace and punctuation (Unicode categories ``P*``: ``.``, ``!``, closing quotes
    and brackets …) may follow the mask: a next-token distribution cannot be conditioned on
    them, and they carry no words whose meaning the fill would miss.
    """
    if MASK_TOKEN in rest:
        return f"it holds a second {MASK_TOKEN}"
    bad = [c for c in rest if not (c.isspace() or unicodedata.category(c).startswith("P"))]
    if bad:
        return (
            f"text follows {MASK_TOKEN} ({rest.strip()!r}): a causal language model predicts "
            f"the next token from the text before {MASK_TOKEN} only, so only punctuation and "
            "whitespace may follow it"
        )
    return None


class CausalFill(MaskedLMBackend):
    """A causal LM serving fill-mask probe sets (family ``causal-lm``; see the module
    docstring for what a fill is).

    Args:
        causal: the loaded causal LM (closed by :meth:`close`).

    Attributes:
        family: ``"causal-lm"``.
        causal: the wrapped :class:`~biasprobe.backends.causal.HFCausalLM`.
        mask_token: ``"[MASK]"``: where a sentence is cut (never tokenized).
        unk_id: the tokenizer's unknown token, unless it is also its BOS/EOS/padding token
            (GPT-2's ``<|endoftext|>``: a byte-level BPE spells any text and never emits it).
    """

    family = "causal-lm"
    reports_batches = True
    scores_priors = False
    mask_token = MASK_TOKEN

    def __init__(self, causal: HFCausalLM) -> None:
        self.causal = causal
        self.name = causal.name
        self.tokenizer = causal.tokenizer
        self.vocab = causal.vocab
        self.batch_size = int(causal.batch_size)
        self.max_length = int(causal.max_length)
        self.on_batch = None
        tok = causal.tokenizer
        self.special_tokens = tuple(t for t in (tok.all_special_tokens or ()) if t)
        self.special_ids = frozenset(int(i) for i in (tok.all_special_ids or ()))
        unk = tok.unk_token_id if tok.unk_token is not None else None
        others = {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}
        self.unk_id = int(unk) if unk is not None and unk not in others else None
        self.unk_token = tok.unk_token if self.unk_id is not None else None
        self.info = {
            **causal.info,
            "fill": FILL,
            "after_mask": AFTER_MASK,
            "multi_piece_targets": "chain rule over the word's pieces after the prefix",
            "mask_token": MASK_TOKEN,
        }

    # -- inputs -------------------------------------------------------------------------------
    def _prefix_ids(self, sentence: str) -> tuple[int, ...]:
        """The model input the fill is read after: the BOS (if any) and the text before the
        mask, without the whitespace just before it."""
        prefix, _, rest = split_at_mask(sentence, self.mask_token)
        why = check_after_mask(rest)
        if why is not None:
            raise UsageError(f"sentence {sentence!r} for model {self.name}: {why}")
        return tuple(self.causal.input_ids([prefix], "text before [MASK]")[0])

    def _check_context(self, sentence: str, ids: Sequence[int]) -> None:
        if not ids:
            raise UsageError(
                f"sentence {sentence!r}: nothing comes before {self.mask_token} and model "
                f"{self.name}'s tokenizer has no BOS token, so there is nothing to predict the "
                "fill from; put words before the mask"
            )

    def token_ids(self, sentences: Sequence[str]) -> list[list[int]]:
        """The model input of each sentence's fill: the BOS (if any) and the text before the
        mask (see :meth:`MaskedLMBackend.token_ids`): two sides that differ only after the
        mask are the same input."""
        return [list(self._prefix_ids(s)) for s in sentences]

    def unknown_words(self, sentence: str) -> list[str]:
        """Words before the mask that become the unknown token (none for byte-level BPE)."""
        if self.unk_id is None:
            return []
        prefix = split_at_mask(sentence, self.mask_token)[0]
        words = prefix.split()
        enc = self.tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
        return [w for w, ids in zip(words, enc) if self.unk_id in ids]

    # -- the fill -------------------------------------------------------------------------------
    def mask_logprobs(self, sentences: Sequence[str]) -> np.ndarray:
        """Full-vocabulary log-softmax of the next token after the text before the mask (see
        the module docstring), float32 (len(sentences), len(vocab)).

        Distinct sentences are sorted by input length (stable) and scored
        :attr:`batch_size` at a time, one forward pass per batch: the batches the cache
        wrapper forms, so cached and fresh numbers are the same bits.

        Raises:
            UsageError: a sentence without exactly one mask, with words after it, with no
                context (no text before the mask and no BOS token), or too long.
        """
        unique = list(dict.fromkeys(sentences))
        prefixes = [self._prefix_ids(s) for s in unique]
        for s, ids in zip(unique, prefixes):
            self._check_context(s, ids)
        order = sorted(range(len(unique)), key=lambda i: len(prefixes[i]))
        out = np.empty((len(unique), len(self.vocab)), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            texts = [split_at_mask(unique[i], self.mask_token)[0] for i in idx]
            out[idx] = self._quiet(self.causal.next_token_logprobs, texts)
            if self.on_batch is not None:
                self.on_batch(start + len(idx), len(order))
        if len(unique) == len(sentences):
            return out
        where = {s: i for i, s in enumerate(unique)}
        return out[[where[s] for s in sentences]]

    def _quiet(self, method: Any, arg: Any) -> Any:
        """``method(arg)`` on the causal LM with its own batch reports off (this backend
        reports against its own call)."""
        report, self.causal.on_batch = self.causal.on_batch, None
        try:
            return method(arg)
        finally:
            self.causal.on_batch = report

    def target_pieces(self, sentence: str, word: str) -> list[int]:
        """Token ids of ``word`` written after the text before the mask, as the tokenizer
        gives them there: the prefix, the whitespace before the mask and the word tokenized
        together, the prefix's own ids taken off (a word after a space starts with its
        leading-space piece, "Ġnurse"; after a quote or bracket, with none).

        Raises:
            VocabularyError: the tokenizer merges the word with the end of the prefix (its
                pieces are not separate from the prefix's), or a piece is the unknown token.
        """
        prefix, space, _ = split_at_mask(sentence, self.mask_token)
        tok = self.tokenizer
        before = tok(prefix, add_special_tokens=False)["input_ids"] if prefix else []
        both = tok(prefix + space + word, add_special_tokens=False)["input_ids"]
        if both[: len(before)] != before or len(both) <= len(before):
            shown = tok.convert_ids_to_tokens(both[max(0, len(before) - 2) :])
            raise VocabularyError(
                f"target word {word!r} in {sentence!r}: model {self.name}'s tokenizer merges "
                f"it with the end of the text before {self.mask_token} ({shown}), so it is not "
                "a next token after that text; put a space or punctuation before the mask, or "
                "choose another word"
            )
        pieces = [int(p) for p in both[len(before) :]]
        if self.unk_id is not None and self.unk_id in pieces:
            raise VocabularyError(
                f"target word {word!r} is not in the vocabulary of model {self.name}: it "
                f"tokenizes to {tok.convert_ids_to_tokens(pieces)} (the unknown token); "
                "choose another word or a model whose vocabulary has it"
            )
        return pieces

    def chain_logprobs(self, requests: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
        """``log P(pieces | prefix) = Σ_i log P(piece_i | prefix, piece_<i)``: the last
        ``len(pieces)`` token log-probs of the prefix followed by the pieces, every request in
        one batched call (float32 forward pass, float64 sums).

        Raises:
            UsageError: a request has no context (see :meth:`mask_logprobs`), no pieces, or
                is longer than the model accepts.
        """
        inputs: list[tuple[int, ...]] = []
        sizes: list[int] = []
        for sentence, pieces in requests:
            ids = self._prefix_ids(sentence)
            self._check_context(sentence, ids)
            pieces = tuple(int(p) for p in pieces)
            if not pieces:
                raise UsageError(f"a target of {sentence!r} has no pieces (model {self.name})")
            if len(ids) + len(pieces) > self.max_length:
                raise UsageError(
                    f"sentence {sentence!r} with a {len(pieces)}-piece target is longer than "
                    f"model {self.name} accepts ({self.max_length} tokens)"
                )
            inputs.append(ids + pieces)
            sizes.append(len(pieces))
        if not inputs:
            return np.zeros(0, dtype=np.float64)
        rows = self._quiet(self.causal.sequence_logprobs, inputs)
        out = np.array([float(np.sum(r[-n:])) for r, n in zip(rows, sizes)], dtype=np.float64)
        if self.on_batch is not None:
            total = sum(sizes)
            self.on_batch(total, total)
        return out

    # -- what a next-token model cannot do ------------------------------------------------------
    def prior_logprobs(self, requests: Sequence[tuple[str, str, int, str]]) -> np.ndarray:
        """Refused: Kurita's prior masks the attribute inside the prefix.

        Raises:
            UsageError: always (when there are requests).
        """
        if not requests:
            return np.zeros(0, dtype=np.float64)
        raise UsageError(prior_refusal(self.name))

    def token_logprobs(self, requests: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
        """Refused: a causal LM has no mask to put in place of a token; its sentences are
        scored by their chain-rule log-likelihood (family ``sentence-scorer``,
        :class:`~biasprobe.backends.causal.HFCausalLM`).

        Raises:
            UsageError: always (when there are requests).
        """
        if not requests:
            return np.zeros(0, dtype=np.float64)
        raise UsageError(
            f"model {self.name} is a causal language model: it cannot score a token with that "
            "token masked (pseudo-log-likelihood); score its sentences by their log-likelihood "
            "(the chain rule) instead"
        )

    def provenance(self) -> dict[str, Any]:
        """The causal LM's provenance with what a fill is for it."""
        return dict(self.info)

    def close(self) -> None:
        """Close the causal LM."""
        self.causal.close()


def prior_refusal(model: str) -> str:
    """Why prior-normalised (attribute) pairs cannot run on causal LM ``model``."""
    return (
        f"model {model} is a causal language model: {PRIOR_REFUSAL}. Leave these pairs out "
        "(--exclude), or run them on masked language models only"
    )
