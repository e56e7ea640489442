"""The interface every masked-LM backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np


class MaskedLMBackend(ABC):
    """A masked language model that scores sentences containing one mask token.

    Attributes:
        name: the id the user gave (hub id, local folder, ``recorded:DIR``).
        mask_token: the model's own mask token; sentences passed in must contain it once.
        vocab: display string of every token id; ``len(vocab)`` is the output size.
        info: provenance (resolved revision / commit hash, class, dtype, device, ...).
    """

    name: str
    mask_token: str
    vocab: list[str]
    info: dict[str, Any]

    @abstractmethod
    def mask_logprobs(self, sentences: Sequence[str]) -> np.ndarray:
        """Full-vocabulary log-softmax at the mask of each sentence.

        Args:
            sentences: texts, each with exactly one ``mask_token``.

        Returns:
            float32 array (len(sentences), len(vocab)).
        """

    @abstractmethod
    def target_pieces(self, sentence: str, word: str) -> list[int]:
        """Token ids that ``word`` becomes when written in place of the mask of ``sentence``.

        Raises:
            VocabularyError: the word cannot be represented (e.g. it becomes the unknown token).
        """

    @abstractmethod
    def chain_logprobs(self, requests: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
        """log p(pieces) at the mask of each sentence, by the chain rule over consecutive masks.

        The single mask is widened to ``n = len(pieces)`` masks and
        ``log p(w) = Σ_i log p(piece_i | sentence, piece_1..piece_{i−1}, masks after)``: piece i
        is read at the i-th mask with the earlier pieces filled in and the later ones still
        masked. For one piece this equals the plain log-prob at the mask.

        Returns:
            float64 array (len(requests),).
        """

    #: Whether :meth:`prior_logprobs` works (it needs the model: several masks per input).
    scores_priors: bool = False

    def prior_logprobs(self, requests: Sequence[tuple[str, str, int, str]]) -> np.ndarray:
        """log p(word | prior sentence) for prior-normalised scores (Kurita et al. 2019).

        Each request is ``(prior_sentence, attribute, mask_index, word)``: the prior sentence
        in the backend's mask token, with one mask per whitespace-separated word of
        ``attribute`` wherever the attribute was, the target's mask being number
        ``mask_index`` (reading order). Every attribute mask is widened to one mask per piece
        of its word and the target read by the chain rule at its own mask.

        Returns:
            float64 array (len(requests),).

        Raises:
            UsageError: this backend cannot score several masks in one input (a format-1
                recording holds one mask per sentence; format 2 stores the prior log-probs).
        """
        from biasprobe.errors import UsageError

        raise UsageError(
            f"model {self.name} cannot score prior sentences (several masks in one input): "
            "prior-normalised (attribute) pairs need the live model or a recording that holds "
            "their priors (biasprobe record, format 2)"
        )

    def token_ids(self, sentences: Sequence[str]) -> list[list[int]] | None:
        """Model input ids of each sentence (special tokens included), or None when the backend
        has no tokenizer to tell (recorded outputs): used to refuse pairs whose two sides are
        the same input."""
        return None

    def unknown_words(self, sentence: str) -> list[str]:
        """Words of ``sentence`` that become the tokenizer's unknown token (none if unknown)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release memory held by the model (optional)."""
