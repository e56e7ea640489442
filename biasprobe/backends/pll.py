"""Sentence log-likelihood of a masked LM by pseudo-log-likelihood (Salazar et al. 2020).

``PLL(S) = Σ_t log P(w_t | S with w_t masked)``: every token of the sentence (the special
tokens ``[CLS]``/``[SEP]``/``<s>``… left out) is masked in turn and the model's log-softmax of
the original token read at its position ("Masked Language Model Scoring", ACL 2020, eq. 2).

:class:`PseudoLogLikelihood` wraps any :class:`~biasprobe.backends.base.MaskedLM` and implements
:class:`~biasprobe.backends.base.SentenceScorer`. The masked inputs of every sentence are built
up front, identical ones scored once, and scored in length-sorted chunks by the masked LM's
:meth:`~biasprobe.backends.base.MaskedLM.token_logprobs` (the batched path CrowS-Pairs uses;
through a :class:`~biasprobe.backends.cached.CachedMaskedLM` they are served from the result
cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from biasprobe.backends.base import MaskedLM, SentenceLogprobs
from biasprobe.errors import UsageError

__all__ = ["CHUNK", "PseudoLogLikelihood", "score_tokens"]

#: Masked inputs handed to the masked LM per call (progress is reported between calls).
CHUNK = 2048


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
        progress: optional callback ``(done, total)`` over the masked inputs of a call.
    """

    scoring = "pll"

    def __init__(
        self, masked: MaskedLM, *, progress: Callable[[int, int], None] | None = None
    ) -> None:
        self.masked = masked
        self.name = masked.name
        self.progress = progress

    @property
    def info(self) -> dict[str, Any]:
        return {
            **self.masked.info,
            "sentence_scoring": "pseudo-log-likelihood (Salazar et al. 2020)",
        }

    def sentence_logprobs(self, sentences: Sequence[str]) -> list[SentenceLogprobs]:
        """PLL of each sentence and the log-prob of each of its (non-special) tokens.

        Raises:
            UsageError: the masked LM has no tokenizer (recorded outputs), or a sentence is
                longer than it accepts.
        """
        sentences = list(sentences)
        encoded = self.masked.token_ids(sentences) if sentences else []
        if encoded is None:
            raise UsageError(
                f"model {self.name} has no tokenizer: pseudo-log-likelihood scoring needs a "
                "masked LM that scores any sentence (not recorded outputs)"
            )
        special = self.masked.special_ids
        index: dict[tuple[tuple[int, ...], int], int] = {}
        requests: list[tuple[tuple[int, ...], int]] = []
        per_sentence: list[list[int]] = []
        for ids in encoded:
            ids = tuple(int(i) for i in ids)
            refs = []
            for p, token in enumerate(ids):
                if token in special:
                    continue
                key = (ids, p)
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

    def provenance(self) -> dict[str, Any]:
        """The masked LM's provenance with the sentence scoring named."""
        return dict(self.info)

    def close(self) -> None:
        """Close the masked LM."""
        self.masked.close()
