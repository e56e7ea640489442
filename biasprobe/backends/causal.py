"""Hugging Face ``transformers`` causal (decoder) language models as sentence scorers.

:class:`HFCausalLM` wraps an ``AutoModelForCausalLM`` (GPT-2, Pythia, Llama, Qwen, ...) and
implements :class:`~biasprobe.backends.base.SentenceScorer`: the chain-rule log-likelihood of a
sentence, ``log P(S) = Σ_t log P(w_t | w_<t)``, and the log-prob of each of its tokens. It is
loaded exactly like a masked LM (:func:`biasprobe.backends.hf.load_hf_masked_lm`): a hub id
(``NAME@REVISION`` pins a revision), the local Hugging Face cache first, or a local folder
(:mod:`biasprobe.hub`); safetensors preferred; no repository code unless the caller asks; the
forward pass in float32.

The first token. A sentence is tokenized without special tokens. When the tokenizer has a BOS
token, it is prepended and every token of the sentence is scored (``log P(w_1 | BOS)`` included),
as lm-evaluation-harness does. When it has none, nothing conditions the first token: it is left
out of the scored tokens (and of the total), so the sentence log-likelihood is
``Σ_{t≥2} log P(w_t | w_<t)``; :attr:`HFCausalLM.info` says which rule applies
(``first_token``). (lm-evaluation-harness falls back to the end-of-text token as a prefix in
that case; biasprobe does not invent a context the model's tokenizer does not declare.)

Batching: sentences are de-duplicated, sorted by length and scored in fixed batches of
``batch_size``, padded on the right with an attention mask, so a sentence's numbers do not
depend on the other sentences of a call beyond float noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from biasprobe.backends.base import SentenceLogprobs
from biasprobe.backends.hf import (
    check_trained_weights,
    check_vocab_size,
    load_pretrained,
    max_input_length,
    output_vocab,
)
from biasprobe.device import resolve_device
from biasprobe.errors import UsageError
from biasprobe.hub import (
    ModelSource,
    check_finite_weights,
    quiet_transformers,
    record_commit,
    resolve_model_source,
)

__all__ = ["HFCausalLM", "load_hf_causal_lm"]


def load_hf_causal_lm(
    name: str,
    *,
    revision: str | None = None,
    device: str | None = None,
    batch_size: int = 32,
    trust_remote_code: bool = False,
    source: ModelSource | None = None,
) -> HFCausalLM:
    """Load a causal LM by hub id (cache first, then hub) or from a local folder.

    Args:
        name: hub id (``gpt2``, ``org/model``) or a local checkpoint folder.
        revision: branch, tag or commit of a hub model.
        device: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: sentences per forward pass.
        trust_remote_code: allow custom model code from the repository (off by default).
        source: where to load from, if already resolved by
            :func:`biasprobe.hub.resolve_model_source`.

    Raises:
        ModelLoadError: the model cannot be found or loaded, its weights are incomplete or
            damaged, or its tokenizer does not match it.
        DeviceError: the device is not available.
    """
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    dev = resolve_device(device)
    src = source or resolve_model_source(name, revision=revision)
    model, tokenizer, loading = load_pretrained(
        src, AutoModelForCausalLM, "causal language model", trust_remote_code=trust_remote_code
    )
    check_trained_weights(
        loading, src, "causal language model", "language-model head (e.g. GPT2LMHeadModel)"
    )
    check_finite_weights(model, src.describe())
    record_commit(src, model.config)
    check_vocab_size(tokenizer, model, src)
    return HFCausalLM(model, tokenizer, name=name, device=dev, batch_size=batch_size, info=src.info)


class HFCausalLM:
    """A loaded ``AutoModelForCausalLM`` with its tokenizer, scoring sentences by the chain
    rule (a :class:`~biasprobe.backends.base.SentenceScorer`; see the module docstring for how
    the first token is scored).

    Attributes:
        name: the id the user gave.
        scoring: ``"causal"``.
        info: provenance (source, revision / commit hash, files, class, dtype, device,
            ``first_token``: how the first token of a sentence is scored).
        vocab: display string of every token id (``len(vocab)`` is the output size).
        bos_id: the id prepended to every input (None: the tokenizer has no BOS token, and
            the first token of a sentence is not scored).
        batch_size: sentences per forward pass.
        max_length: longest input in tokens, the BOS included.
        on_batch: optional progress callback ``(done, total)`` after every forward batch.
    """

    scoring = "causal"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        device: torch.device | str = "cpu",
        batch_size: int = 32,
        info: dict[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        self.name = name
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.on_batch: Callable[[int, int], None] | None = None
        bos = tokenizer.bos_token_id if tokenizer.bos_token is not None else None
        self.bos_id: int | None = int(bos) if bos is not None else None
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        # Padding sits to the right of every real token and is masked out: its id never
        # reaches a score.
        self.pad_id = int(pad) if pad is not None else 0
        self.max_length = max_input_length(model, tokenizer)
        self.vocab = output_vocab(self.model, tokenizer)
        size = len(self.vocab)
        first = (
            f"scored after the BOS token {tokenizer.bos_token!r} (prepended to every sentence)"
            if self.bos_id is not None
            else "not scored: the tokenizer has no BOS token, so nothing conditions it"
        )
        self.info = {
            **(info or {}),
            "name": name,
            "class": type(model).__name__,
            "model_type": getattr(model.config, "model_type", None),
            "num_parameters": int(sum(p.numel() for p in model.parameters())),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "device": str(self.device),
            "vocab_size": size,
            "tokenizer": type(tokenizer).__name__,
            "sentence_scoring": "causal chain rule, log P(w_t | w_<t)",
            "first_token": first,
        }

    # -- encoding -------------------------------------------------------------------------------
    def input_ids(self, texts: Sequence[str], what: str = "sentence") -> list[list[int]]:
        """Model inputs of ``texts``: their tokens (no special tokens added by the tokenizer),
        after the BOS token when there is one (``what`` names them in messages).

        Raises:
            UsageError: an input is longer than the model accepts.
        """
        texts = list(texts)
        enc = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        head = [self.bos_id] if self.bos_id is not None else []
        out = []
        for text, ids in zip(texts, enc):
            ids = head + [int(i) for i in ids]
            if len(ids) > self.max_length:
                raise UsageError(
                    f"{what} {text!r} is {len(ids)} tokens long; model {self.name} takes at "
                    f"most {self.max_length}"
                )
            out.append(ids)
        return out

    def _batches(self, inputs: Sequence[tuple[int, ...]]) -> Any:
        """Yield ``(batch of distinct inputs, log-softmax (B, T, V) float32)``: the distinct
        non-empty inputs sorted by length, in batches of :attr:`batch_size`, right-padded."""
        distinct = sorted({s for s in inputs if s}, key=lambda s: (len(s), s))
        total = len(distinct)
        for start in range(0, total, self.batch_size):
            batch = distinct[start : start + self.batch_size]
            width = max(len(s) for s in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            att = torch.zeros((len(batch), width), dtype=torch.long)
            for i, s in enumerate(batch):
                ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
                att[i, : len(s)] = 1
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids.to(self.device), attention_mask=att.to(self.device)
                ).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
            yield batch, logp
            if self.on_batch is not None:
                self.on_batch(min(start + self.batch_size, total), total)

    # -- SentenceScorer -------------------------------------------------------------------------
    def sentence_logprobs(self, sentences: Sequence[str]) -> list[SentenceLogprobs]:
        """The chain-rule log-likelihood of each sentence and the log-prob of each scored
        token: every token after the BOS when the tokenizer has one, else every token but the
        first. Log-probs come from a float32 forward pass and are returned as float64.

        Raises:
            UsageError: a sentence is longer than the model accepts.
        """
        sentences = list(sentences)
        inputs = [tuple(s) for s in self.input_ids(sentences, "sentence")]
        scored = dict(zip(inputs, self.sequence_logprobs(inputs)))
        out = []
        for s in inputs:
            lp = scored[s].copy()
            token_ids = tuple(s[1:])
            out.append(
                SentenceLogprobs(
                    total=float(np.sum(lp)),
                    token_ids=token_ids,
                    tokens=tuple(self.vocab[t] for t in token_ids),
                    logprobs=lp,
                )
            )
        return out

    def sequence_logprobs(self, inputs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """log P(id_t | id_<t) of every id of each input but the first (model input ids as
        :meth:`input_ids` gives them, the BOS included when there is one), batched like
        :meth:`sentence_logprobs`.

        Returns:
            one float64 array of ``len(input) - 1`` values per input (empty for inputs of
            fewer than two ids).
        """
        keys = [tuple(int(i) for i in s) for s in inputs]
        scored: dict[tuple[int, ...], np.ndarray] = {}
        for batch, logp in self._batches([s for s in keys if len(s) > 1]):
            for i, s in enumerate(batch):
                target = torch.as_tensor(s[1:], dtype=torch.long, device=logp.device)
                rows = logp[i, : len(s) - 1].gather(1, target[:, None])[:, 0]
                scored[s] = rows.cpu().numpy().astype(np.float64)
        empty = np.zeros(0, dtype=np.float64)
        return [scored.get(s, empty) for s in keys]

    def next_token_logprobs(self, prefixes: Sequence[str]) -> np.ndarray:
        """Full-vocabulary log-softmax of the next token after each prefix (after the BOS
        token when the tokenizer has one). A word that follows the prefix usually starts with
        a space in a byte-level vocabulary ("Ġnurse"), so a prefix should not end with one.

        Returns:
            float32 array (len(prefixes), len(vocab)).

        Raises:
            UsageError: a prefix is empty and the tokenizer has no BOS token (nothing to
                condition on), or it is longer than the model accepts.
        """
        prefixes = list(prefixes)
        inputs = [tuple(s) for s in self.input_ids(prefixes, "prefix")]
        for text, s in zip(prefixes, inputs):
            if not s:
                raise UsageError(
                    f"prefix {text!r} has no tokens and model {self.name}'s tokenizer has no "
                    "BOS token: there is nothing to predict the next token from"
                )
        rows: dict[tuple[int, ...], np.ndarray] = {}
        for batch, logp in self._batches(inputs):
            for i, s in enumerate(batch):
                rows[s] = logp[i, len(s) - 1].cpu().numpy()
        out = np.empty((len(inputs), len(self.vocab)), dtype=np.float32)
        for k, s in enumerate(inputs):
            out[k] = rows[s]
        return out

    def provenance(self) -> dict[str, Any]:
        """The model's provenance block (a copy of :attr:`info`)."""
        return dict(self.info)

    def close(self) -> None:
        """Free GPU memory (the model moves back to the CPU)."""
        if self.device.type == "cuda":
            self.model.to("cpu")
            torch.cuda.empty_cache()
