"""Sentence log-likelihood of a masked LM by pseudo-log-likelihood (Salazar et al. 2020) or
PLL-word-l2r (Kauf & Ivanova 2023).

``PLL(S) = Σ_t log P(w_t | S with w_t masked)``: every token of the sentence (the special
tokens ``[CLS]``/``[SEP]``/``<s>``… left out) is masked in turn and the model's log-softmax of
the original token read at its position ("Masked Language Model Scoring", ACL 2020, eq. 2).

PLL-word-l2r ("A Better Way to Do Masked Language Model Scoring", ACL 2023) masks, besides
token ``t``, every later token of the same word: ``Σ_t log P(w_t | S with w_t and w_{t'} masked
for every t' > t in t's word)``. A word split into pieces (``so ##ue ##ful``) is then scored
left to right, each piece seeing the pieces before it but not those after it, which PLL
over-rewards (they give the word away). A one-piece word is scored exactly as by PLL. A "word"
is what the fast tokenizer's pre-tokenizer makes one (its ``word_ids()``, as in the authors'
minicons library): for BERT WordPiece, a run of letters/digits between whitespace and
punctuation (every punctuation mark is a word of its own); for byte-level BPE (RoBERTa), a
leading space with the letters, digits or punctuation run that follows it.

:class:`PseudoLogLikelihood` wraps any :class:`~biasprobe.backends.base.MaskedLM` and implements
:class:`~biasprobe.backends.base.SentenceScorer`. The masked inputs of every sentence are built
up front, identical ones scored once, and scored in length-sorted chunks by the masked LM's
:meth:`~biasprobe.backends.base.MaskedLM.token_logprobs` (the batched path CrowS-Pairs uses;
through a :class:`~biasprobe.backends.cached.CachedMaskedLM` they are served from the result
cache). PLL-word-l2r requests are ``(ids with the later pieces of the word already masked,
position)``: the masked LM masks ``position`` itself and reads the original token there, and the
cache keys on exactly those ids, so both metrics share the cache (a request for the last piece
of a word is the same under both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from biasprobe.backends.base import MaskedLM, SentenceLogprobs
from biasprobe.errors import UsageError

__all__ = ["CHUNK", "METRICS", "PseudoLogLikelihood", "score_tokens"]

#: Masked inputs handed to the masked LM per call (progress is reported between calls).
CHUNK = 2048

#: ``metric`` → (:attr:`PseudoLogLikelihood.scoring`, the ``sentence_scoring`` provenance text).
METRICS: dict[str, tuple[str, str]] = {
    "original": ("pll", "pseudo-log-likelihood (Salazar et al. 2020)"),
    "word_l2r": (
        "pll-word-l2r",
        "PLL-word-l2r: pseudo-log-likelihood with the later pieces of the scored token's word "
        "masked too (Kauf & Ivanova 2023)",
    ),
}


def score_tokens(
    masked: MaskedLM,
    requests: Sequence[tuple[Sequence[int], int]],
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """:meth:`~biasprobe.backends.base.MaskedLM.token_logprobs` of many requests, asked in
    length-sorted chunks of :data:`CHUNK` (the masked LM batches each chunk by length), with
    ``progress(done, total)`` between chunks. Pseudo-log-likelihood and CrowS-Pairs use it.

    Returns:
        float64 array (len(requests),), in the order of ``requests``.
    """
    out = np.empty(len(requests), dtype=np.float64)
    order = sorted(range(len(requests)), key=lambda i: len(requests[i][0]))
    if progress is not None:
        progress(0, len(order))
    for start in range(0, len(order), CHUNK):
        idx = order[start : start + CHUNK]
        out[idx] = masked.token_logprobs([requests[i] for i in idx])
        if progress is not None:
            progress(min(start + CHUNK, len(order)), len(order))
    return out


class PseudoLogLikelihood:
    """A masked LM scoring whole sentences by pseudo-log-likelihood (a
    :class:`~biasprobe.backends.base.SentenceScorer`).

    Args:
        masked: the masked LM (closed by :meth:`close`).
        metric: ``"original"`` (PLL, Salazar et al. 2020) or ``"word_l2r"`` (PLL-word-l2r,
            Kauf & Ivanova 2023: the later pieces of the scored token's word masked too; needs
            a fast tokenizer, whose ``word_ids()`` say what a word is).
        progress: optional callback ``(done, total)`` over the masked inputs of a call.

    Attributes:
        scoring: ``"pll"`` or ``"pll-word-l2r"``.

    Raises:
        UsageError: an unknown ``metric``.
    """

    def __init__(
        self,
        masked: MaskedLM,
        *,
        metric: str = "original",
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        if metric not in METRICS:
            raise UsageError(
                f"unknown pseudo-log-likelihood metric {metric!r}; expected one of "
                f"{', '.join(METRICS)}"
            )
        self.masked = masked
        self.name = masked.name
        self.metric = metric
        self.scoring = METRICS[metric][0]
        self.progress = progress

    @property
    def info(self) -> dict[str, Any]:
        return {**self.masked.info, "sentence_scoring": METRICS[self.metric][1]}

    def sentence_logprobs(self, sentences: Sequence[str]) -> list[SentenceLogprobs]:
        """PLL (or PLL-word-l2r) of each sentence and the log-prob of each of its
        (non-special) tokens.

        Raises:
            UsageError: the masked LM has no tokenizer (recorded outputs), PLL-word-l2r is
                asked of a model without a fast tokenizer, or a sentence is longer than the
                model accepts.
        """
        sentences = list(sentences)
        encoded = self.masked.token_ids(sentences) if sentences else []
        if encoded is None:
            raise UsageError(
                f"model {self.name} has no tokenizer: pseudo-log-likelihood scoring needs a "
                "masked LM that scores any sentence (not recorded outputs)"
            )
        words = self._word_ids(sentences, encoded) if self.metric == "word_l2r" else None
        special = self.masked.special_ids
        mask_id = self._mask_id() if words is not None else -1
        index: dict[tuple[tuple[int, ...], int], int] = {}
        requests: list[tuple[tuple[int, ...], int]] = []
        per_sentence: list[list[int]] = []
        for k, ids in enumerate(encoded):
            ids = tuple(int(i) for i in ids)
            refs = []
            for p, token in enumerate(ids):
                if token in special:
                    continue
                key = (ids, p)
                if words is not None and words[k][p] is not None:
                    end = p + 1  # a word's pieces are contiguous
                    while end < len(ids) and words[k][end] == words[k][p]:
                        end += 1
                    if end > p + 1:
                        key = (ids[: p + 1] + (mask_id,) * (end - p - 1) + ids[end:], p)
                if key not in index:
                    index[key] = len(requests)
                    requests.append(key)
                refs.append(index[key])
            per_sentence.append(refs)
        values = score_tokens(self.masked, requests, self.progress)
        out = []
        for refs in per_sentence:
            lp = values[refs] if refs else np.zeros(0)
            token_ids = tuple(requests[r][0][requests[r][1]] for r in refs)
            out.append(
                SentenceLogprobs(
                    total=float(np.sum(lp)),
                    token_ids=token_ids,
                    tokens=tuple(self.masked.vocab[t] for t in token_ids),
                    logprobs=lp,
                )
            )
        return out

    def _word_ids(
        self, sentences: Sequence[str], encoded: Sequence[Sequence[int]]
    ) -> list[list[int | None]]:
        """The fast tokenizer's word index of every token of each encoded sentence (None for
        special tokens).

        Raises:
            UsageError: the model has no fast tokenizer, or its encoding differs from
                :meth:`~biasprobe.backends.base.MaskedLM.token_ids`.
        """
        tokenizer = self.masked.tokenizer
        if tokenizer is None or not getattr(tokenizer, "is_fast", False):
            kind = (
                "no tokenizer"
                if tokenizer is None
                else f"a slow tokenizer ({type(tokenizer).__name__})"
            )
            raise UsageError(
                f"model {self.name} has {kind}: PLL-word-l2r takes word boundaries from a fast "
                "(Rust) tokenizer's word_ids(); use metric 'original' or a model with a "
                "tokenizer.json"
            )
        if not sentences:
            return []
        enc = tokenizer(list(sentences))
        out = []
        for k, (text, ids) in enumerate(zip(sentences, encoded)):
            if [int(i) for i in enc["input_ids"][k]] != [int(i) for i in ids]:
                raise UsageError(
                    f"model {self.name}: the tokenizer's encoding of {text!r} differs from the "
                    "model's token ids; cannot find its word boundaries"
                )
            out.append(list(enc.word_ids(k)))
        return out

    def _mask_id(self) -> int:
        """The id of the masked LM's mask token (its fast tokenizer is checked by
        :meth:`_word_ids`)."""
        return int(self.masked.tokenizer.convert_tokens_to_ids(self.masked.mask_token))

    def provenance(self) -> dict[str, Any]:
        """The masked LM's provenance with the sentence scoring named."""
        return dict(self.info)

    def close(self) -> None:
        """Close the masked LM."""
        self.masked.close()
