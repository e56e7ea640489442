"""The model interfaces: one public protocol per model family, and the masked-LM base class.

Every member a caller uses is declared here, so that callers call it directly (no ``getattr``
or ``hasattr`` probing, no private methods from outside):

* :class:`MaskedLM` — full-vocabulary log-probs at a mask, target pieces and chain-rule
  log-probs, prior-normalised requests, and :meth:`MaskedLM.token_logprobs` (the log-prob of
  one token of a sentence with that token masked: what pseudo-log-likelihood scoring and
  CrowS-Pairs need). :class:`MaskedLMBackend` implements it, with defaults for the optional
  members (a backend that cannot do something says so through them).
* :class:`Classifier` — class probabilities of whole sentences (counterfactual probe sets).
  :class:`biasprobe.backends.classifiers.ClassifierBackend` implements it.
* :class:`SentenceScorer` — the log-likelihood of a sentence and of each of its tokens: what
  causal LMs and pseudo-log-likelihood-scored masked LMs offer
  (:class:`biasprobe.backends.pll.PseudoLogLikelihood`).

The protocols are ``runtime_checkable``: ``isinstance(x, MaskedLM)`` checks that every member
is present (not their signatures).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "CallRunner",
    "Classifier",
    "MaskedLM",
    "MaskedLMBackend",
    "SentenceLogprobs",
    "SentenceScorer",
]

#: A progress callback ``(done, total)`` called after every forward batch.
BatchReport = Callable[[int, int], None]


@runtime_checkable
class MaskedLM(Protocol):
    """A masked language model (the fill-mask and CrowS-Pairs tasks need one).

    Attributes:
        name: the id the user gave (hub id, local folder, ``recorded:DIR``), or its alias.
        mask_token: the model's own mask token; sentences passed in must contain it once.
        vocab: display string of every token id; ``len(vocab)`` is the output size.
        info: provenance (resolved revision / commit hash, class, dtype, device, ...).
        on_batch: optional progress callback ``(done, total)`` after every forward batch.
        reports_batches: whether setting :attr:`on_batch` makes the backend report batches.
        scores_priors: whether :meth:`prior_logprobs` works (several masks per input).
        unk_id: id of the unknown token (None: no tokenizer, or none in the vocabulary).
        unk_token: text of the unknown token (None likewise).
        max_length: longest input in tokens, special tokens included (None: not known).
        special_tokens: texts of the tokenizer's special tokens (``[CLS]``, ``<mask>`` ...).
        special_ids: their ids (pseudo-log-likelihood scoring leaves them out).
        tokenizer: the Hugging Face tokenizer, when there is one (None for recorded outputs);
            written into recordings so that they can split new words later.
        batch_size: inputs per forward batch.
    """

    name: str
    batch_size: int
    mask_token: str
    vocab: list[str]
    info: dict[str, Any]
    on_batch: BatchReport | None
    reports_batches: bool
    scores_priors: bool
    unk_id: int | None
    unk_token: str | None
    max_length: int | None
    special_tokens: tuple[str, ...]
    special_ids: frozenset[int]
    tokenizer: Any

    def mask_logprobs(self, sentences: Sequence[str]) -> np.ndarray: ...

    def target_pieces(self, sentence: str, word: str) -> list[int]: ...

    def chain_logprobs(self, requests: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray: ...

    def prior_logprobs(self, requests: Sequence[tuple[str, str, int, str]]) -> np.ndarray: ...

    def prior_request(
        self, prior_sentence: str, attribute: str, mask_index: int, word: str
    ) -> tuple[list[int], int, list[int]] | None: ...

    def prior_text(
        self, prior_sentence: str, attribute: str, mask_index: int, word: str
    ) -> str: ...

    def token_ids(self, sentences: Sequence[str]) -> list[list[int]] | None: ...

    def token_logprobs(self, requests: Sequence[tuple[Sequence[int], int]]) -> np.ndarray: ...

    def unknown_words(self, sentence: str) -> list[str]: ...

    def missing(
        self, sentence: str, words: Sequence[str], prior: Sequence[Any] | None = None
    ) -> str | None: ...

    def stored_masks(self, sentences: Sequence[str]) -> np.ndarray | None: ...

    def tokens_stored(self, requests: Sequence[tuple[Sequence[int], int]]) -> np.ndarray: ...

    def provenance(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class Classifier(Protocol):
    """A sequence classifier (the counterfactual task needs one).

    Attributes:
        name: what the user gave (hub id or folder), or its alias.
        kind: ``"sentiment-run"``, ``"hf-sequence-classification"``, ...
        labels: class names, by class index.
        positive: index of the positive class in :attr:`labels`.
        positive_label: ``labels[positive]``.
        info: provenance (source, path, revision/commit, file checksums, accuracy if known).
        batch_size: texts per forward pass.
    """

    name: str
    kind: str
    labels: tuple[str, ...]
    positive: int
    info: dict[str, Any]
    batch_size: int

    @property
    def positive_label(self) -> str: ...

    @property
    def text_tokenizer(self) -> Any: ...

    def p_label(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]: ...

    def provenance(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SentenceLogprobs:
    """The log-likelihood of one sentence under a model.

    Attributes:
        total: the sentence's log-likelihood (the sum of :attr:`logprobs`), float64.
        token_ids: the ids of the scored tokens, in sentence order.
        tokens: their display strings.
        logprobs: float64 (len(token_ids),): the log-prob of each scored token.
    """

    total: float
    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    logprobs: np.ndarray


@runtime_checkable
class SentenceScorer(Protocol):
    """A model that scores whole sentences: log P(sentence) and log P(each token).

    Causal LMs give the chain-rule log-likelihood; masked LMs the pseudo-log-likelihood
    (:class:`biasprobe.backends.pll.PseudoLogLikelihood`).

    Attributes:
        name: the model's name.
        scoring: how the sentence log-likelihood is computed (e.g. ``"pll"``).
        info: provenance.
    """

    name: str
    scoring: str
    info: dict[str, Any]

    def sentence_logprobs(self, sentences: Sequence[str]) -> list[SentenceLogprobs]: ...

    def provenance(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class CallRunner(Protocol):
    """Runs a model's requests elsewhere (e.g. replicas on Ray) while the driver keeps the
    result cache: the cache wrappers hand it every batch they miss as one list of calls.

    ``run_calls(method, calls)`` computes ``getattr(model, method)(*args)`` for every ``args``
    of ``calls`` on a copy of the model loaded from the same files, and yields
    ``(index into calls, result)`` once per call, in any order, as each one finishes. Each
    call is one of the batches the local model would compute, so its numbers are the local
    model's (see ``docs/ray.md`` for when they are bit-identical). ``provenance()`` says
    where the calls ran (recorded in the model's block of ``results.json`` as ``engine``).
    """

    def provenance(self) -> dict[str, Any]: ...

    def run_calls(
        self, method: str, calls: Sequence[tuple[Any, ...]]
    ) -> Iterator[tuple[int, Any]]: ...


class MaskedLMBackend(ABC):
    """A masked language model that scores sentences containing one mask token (implements
    :class:`MaskedLM`; the optional members have the defaults of a backend that cannot do
    what they ask, see each one).

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

    #: Progress callback ``(done, total)``, called after every forward batch by backends whose
    #: :attr:`reports_batches` is True (setting it on another backend does nothing).
    on_batch: BatchReport | None = None
    #: Whether this backend calls :attr:`on_batch` after its forward batches.
    reports_batches: bool = False
    #: Inputs per forward batch (a cache wrapper forms the same batches).
    batch_size: int = 32
    #: Whether :meth:`prior_logprobs` works (it needs the model: several masks per input).
    scores_priors: bool = False
    #: Id and text of the unknown token (None: no tokenizer to tell, or no such token).
    unk_id: int | None = None
    unk_token: str | None = None
    #: Longest input in tokens, special tokens included (None: not known, e.g. recordings).
    max_length: int | None = None
    #: Texts and ids of the tokenizer's special tokens (empty when there is no tokenizer).
    special_tokens: tuple[str, ...] = ()
    special_ids: frozenset[int] = frozenset()
    #: The Hugging Face tokenizer, if the backend has one.
    tokenizer: Any = None

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

    def prior_request(
        self, prior_sentence: str, attribute: str, mask_index: int, word: str
    ) -> tuple[list[int], int, list[int]] | None:
        """The token-id request a prior log-prob is computed from, or None for a backend that
        builds none (recorded outputs look the prior up). Callers use it to tokenize every
        prior before any forward pass, so that a bad word fails early.

        Raises:
            UsageError / VocabularyError: the request cannot be built (see
                :meth:`biasprobe.backends.hf.HFMaskedLM.prior_request`).
        """
        del prior_sentence, attribute, mask_index, word
        return None

    def prior_text(self, prior_sentence: str, attribute: str, mask_index: int, word: str) -> str:
        """The prior sentence as the model scores it (attribute masks widened to one mask per
        piece), for ``targets.csv``; ``""`` when the backend cannot tell."""
        del prior_sentence, attribute, mask_index, word
        return ""

    def token_ids(self, sentences: Sequence[str]) -> list[list[int]] | None:
        """Model input ids of each sentence (special tokens included), or None when the backend
        has no tokenizer to tell (recorded outputs): used to refuse pairs whose two sides are
        the same input."""
        return None

    def token_logprobs(self, requests: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
        """log p(token | the input with that token masked), one per request.

        Each request is ``(ids, position)``: model input ids (special tokens included, as
        :meth:`token_ids` gives them) and the position of the token to score. The token at
        ``position`` is replaced by the mask and the model's log-softmax of the original token
        read there. Requests are batched by length (``float32`` forward pass, ``float64``
        result): pseudo-log-likelihood scoring (Salazar et al. 2020) and CrowS-Pairs call it.

        Returns:
            float64 array (len(requests),).

        Raises:
            UsageError: this backend cannot score token-id inputs (recorded outputs hold only
                the sentences they were recorded on), or an input is too long.
        """
        from biasprobe.errors import UsageError

        raise UsageError(
            f"model {self.name} cannot score the tokens of arbitrary sentences (recorded "
            "outputs only hold the sentences they were recorded on); use the live model"
        )

    def unknown_words(self, sentence: str) -> list[str]:
        """Words of ``sentence`` that become the tokenizer's unknown token (none if unknown)."""
        return []

    def missing(
        self, sentence: str, words: Sequence[str], prior: Sequence[Any] | None = None
    ) -> str | None:
        """What this backend lacks to score one side of a pair (a sentence, target or prior it
        does not hold), or None. A live model lacks nothing; recorded outputs may."""
        del sentence, words, prior
        return None

    def stored_masks(self, sentences: Sequence[str]) -> np.ndarray | None:
        """Stored full-vocabulary vectors of ``sentences`` when every one is stored (a cache
        wrapper, :class:`biasprobe.backends.cached.CachedMaskedLM`), else None: the caller
        computes them."""
        del sentences
        return None

    def tokens_stored(self, requests: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
        """Which :meth:`token_logprobs` requests a cache wrapper holds (bool per request;
        all False here): how much of a resumed run is served without the model."""
        return np.zeros(len(requests), dtype=bool)

    def provenance(self) -> dict[str, Any]:
        """The model's provenance block (a copy of :attr:`info`)."""
        return dict(self.info)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release memory held by the model (optional)."""
