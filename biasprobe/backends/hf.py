"""Hugging Face ``transformers`` masked language models: hub ids, the HF cache, local folders.

Where a model comes from is decided by :mod:`biasprobe.hub` (a local folder must hold config,
weights and tokenizer files; a hub id is looked up in the local Hugging Face cache first, then
on the hub if it can be reached) and the device by :mod:`biasprobe.device`. Nothing from the model repository is executed
(``trust_remote_code`` stays off unless the caller asks), and safetensors weights are preferred
by ``transformers`` when a checkpoint has both formats.

Speed: sentences are de-duplicated, sorted by length and batched; everything runs under
``torch.inference_mode()``; and the LM head (hidden → vocabulary projection) is applied only
at the mask positions, not at every token. That last step uses a forward hook on the base model
that keeps only the hidden states at the requested positions; at load time a self-check compares
it with a plain full forward pass and falls back to the plain pass if they ever differ.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biasprobe.backends.base import MaskedLMBackend
from biasprobe.backends.tokens import pieces_in_context
from biasprobe.device import resolve_device
from biasprobe.errors import DeviceError, ModelLoadError, UsageError
from biasprobe.hub import (
    TOKENIZER_FILES,
    ModelSource,
    check_config_plausible,
    check_finite_weights,
    describe_error,
    explain_load_error,
    local_help,
    quiet_transformers,
    record_commit,
    resolve_model_source,
)

__all__ = [
    "HFMaskedLM",
    "check_vocab_size",
    "load_hf_masked_lm",
    "load_pretrained",
    "max_input_length",
    "output_vocab",
    "pieces_in_context",
]


#: Rows an embedding matrix may have beyond the tokenizer (vocabularies padded to a multiple).
VOCAB_PADDING = 128


def check_vocab_size(tokenizer: Any, model: Any, src: ModelSource) -> None:
    """The tokenizer must cover the model's input embedding matrix (up to padding rows).

    A tokenizer built from the wrong or missing files (a 5-token ``BertTokenizer`` when
    ``vocab.txt`` is absent) turns every word into the unknown token, so that both sides of a
    pair become the same input and every score is 0. That is an error, never a silent result.

    Raises:
        ModelLoadError: naming the model, its folder and which tokenizer files are missing.
    """
    emb = model.get_input_embeddings()
    rows = int(emb.weight.shape[0]) if emb is not None else int(model.config.vocab_size)
    n_tok = len(tokenizer)
    if rows - VOCAB_PADDING < n_tok <= rows:
        return
    where = src.info.get("path") or src.load_from
    missing = [f for f in TOKENIZER_FILES if not (Path(where) / f).is_file()]
    raise ModelLoadError(
        f"{src.describe()}: its tokenizer has {n_tok} tokens but the model's input embedding "
        f"matrix has {rows} rows, so the tokenizer does not belong to this model (folder "
        f"{where}; tokenizer files missing there: {', '.join(missing) or 'none'}). Save the "
        "model's own tokenizer into the folder (tokenizer.save_pretrained(folder))"
    )


def load_hf_masked_lm(
    name: str,
    *,
    revision: str | None = None,
    device: str | None = None,
    batch_size: int = 32,
    trust_remote_code: bool = False,
    source: ModelSource | None = None,
) -> HFMaskedLM:
    """Load a masked LM by hub id (cache first, then hub) or from a local folder.

    Args:
        name: hub id (``bert-base-uncased``, ``org/model``) or a local checkpoint folder.
        revision: branch, tag or commit of a hub model.
        device: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: sentences per forward pass.
        trust_remote_code: allow custom model code from the repository (off by default).
        source: where to load from, if already resolved by
            :func:`biasprobe.hub.resolve_model_source` (it checks config, weights and
            tokenizer files without loading anything).

    Raises:
        ModelLoadError: the model cannot be found or loaded, or its tokenizer does not match
            it; the message says how to point at a local copy.
        DeviceError: the device is not available.
    """
    from transformers import AutoModelForMaskedLM

    quiet_transformers()
    dev = resolve_device(device)
    src = source or resolve_model_source(name, revision=revision)
    model, tokenizer, loading = load_pretrained(
        src, AutoModelForMaskedLM, "masked language model", trust_remote_code=trust_remote_code
    )
    check_trained_weights(loading, src)
    check_finite_weights(model, src.describe())
    record_commit(src, model.config)
    if tokenizer.mask_token is None:
        raise ModelLoadError(f"model {name!r} has no mask token: it is not a masked language model")
    check_vocab_size(tokenizer, model, src)
    return HFMaskedLM(model, tokenizer, name=name, device=dev, batch_size=batch_size, info=src.info)


def load_pretrained(
    src: ModelSource, auto_class: Any, what: str, *, trust_remote_code: bool = False
) -> tuple[Any, Any, dict[str, Any] | None]:
    """Config, tokenizer and weights of a resolved model, loaded by ``auto_class`` (an
    ``AutoModelFor…``) in float32: ``(model, tokenizer, loading info)``. Shared by every
    Hugging Face backend; ``what`` names the kind of model in messages.

    Raises:
        ModelLoadError: the config cannot be read or is implausible, or the tokenizer or the
            weights cannot be loaded; the message says how to point at a local copy.
    """
    from transformers import AutoConfig, AutoTokenizer

    kw = {"revision": src.revision, "trust_remote_code": trust_remote_code, **src.kwargs}
    hint = "" if src.is_local else f" {local_help(src.name)}"
    with warnings.catch_warnings():
        # torch and transformers warn with a source line (pickle protocol, ...) before the
        # error that matters: biasprobe says what is wrong in its own message.
        warnings.simplefilter("ignore")
        try:
            config = AutoConfig.from_pretrained(src.load_from, **kw)
        except Exception as e:
            raise ModelLoadError(
                f"{src.describe()}: cannot read its config.json ({describe_error(e)}).{hint}"
            ) from None
        check_config_plausible(src, config, auto_class, trust_remote_code=trust_remote_code)
        try:
            tokenizer = AutoTokenizer.from_pretrained(src.load_from, **kw)
            model, loading = auto_class.from_pretrained(
                src.load_from, config=config, output_loading_info=True, **kw
            )
            # Score in float32 whatever precision the checkpoint was saved in: half precision
            # would create ties in the top-k and coarse log-probs.
            if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
                model = model.float()
        except Exception as e:
            raise ModelLoadError(
                f"{src.describe()} could not be loaded ({explain_load_error(e)}). Its files may "
                f"be missing or corrupt, or it is not a {what}.{hint}"
            ) from None
    return model, tokenizer, loading


def check_trained_weights(
    loading: dict[str, Any] | None,
    src: Any,
    what: str = "masked language model",
    advice: str = (
        "masked-LM head (e.g. BertForMaskedLM); sequence classifiers are run on "
        "counterfactual probe sets (kind: counterfactual)"
    ),
) -> None:
    """Refuse a checkpoint whose head weights are not all in its files.

    transformers initialises missing weights at random and only warns: a sequence classifier
    or a bare encoder loaded as a masked (or causal) LM would get a random LM head, and every
    score would describe that noise instead of the model. ``what`` names the kind of model,
    ``advice`` completes "Use a checkpoint saved with its …".

    Raises:
        ModelLoadError: naming the model and the missing weights.
    """
    missing = sorted(
        k for k in (loading or {}).get("missing_keys") or [] if not k.endswith("position_ids")
    )
    if missing:
        shown = ", ".join(missing[:4]) + (
            f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        )
        raise ModelLoadError(
            f"{src.describe()} is not a complete {what}: its files have no "
            f"weights for {shown}, which would be random. Use a checkpoint saved with its "
            f"{advice}"
        )


#: Models whose position ids start after the padding index (positions = pad + 1 + i).
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text"}


def max_input_length(model: Any, tokenizer: Any) -> int:
    """Longest input (in tokens, specials included) the model can embed."""
    config = model.config
    limit = int(getattr(config, "max_position_embeddings", 512) or 512)
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 10**6:
        limit = min(limit, declared)
    return limit


#: The byte-level BPE stand-in for a space ("Ġ", byte 0x20 in the GPT-2 / RoBERTa byte alphabet).
_BYTE_LEVEL_SPACE = "\u0120"
#: Where transformers' ``clean_up_tokenization`` can change a text: every one of its patterns
#: (" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're") starts with one of these.
_CLEANUP_SITE = re.compile(r" [.?!,'n]")


def _single_token_rule(tokenizer: Any) -> str | None:
    """Which exact rule :func:`decode_each` may use for ``tokenizer`` (``None``: none).

    Only for a ``tokenizers``-backed tokenizer whose decode path is transformers' own (no
    ``decode``, ``batch_decode``, ``_decode`` or ``clean_up_tokenization`` of its own): there,
    decoding ids is ``backend.decode(ids)`` followed, when the tokenizer asks for it, by
    ``clean_up_tokenization`` — and the rule is picked from the backend's decoder type.
    """
    try:
        from tokenizers import decoders
        from transformers import PreTrainedTokenizerFast
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase
    except ImportError:  # pragma: no cover - transformers without the fast tokenizers
        return None
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        return None
    cls = type(tokenizer)
    own = vars(tokenizer)
    for name, base in (
        ("decode", PreTrainedTokenizerBase),
        ("batch_decode", PreTrainedTokenizerBase),
        ("clean_up_tokenization", PreTrainedTokenizerBase),
        ("_decode", PreTrainedTokenizerFast),
    ):
        if name in own or getattr(cls, name, None) is not getattr(base, name, None):
            return None
    decoder = tokenizer.backend_tokenizer.decoder
    if decoder is None:
        return "join"  # one token joined with " " is the token
    if type(decoder) is decoders.WordPiece:
        return "wordpiece"
    if type(decoder) is decoders.ByteLevel:
        return "byte-level"
    return None


def _byte_level_text(token: str) -> str | None:
    """What a byte-level decoder makes of ``token`` alone, where that is plain: printable ASCII
    stands for itself and "Ġ" for a space; ``None`` for anything else (other byte stand-ins, a
    raw space — outside the byte alphabet, decoded as raw bytes — or a text transformers'
    clean-up could act on)."""
    if not token or " " in token:
        return None
    text = token.replace(_BYTE_LEVEL_SPACE, " ")
    if text.isascii() and text.isprintable() and not _CLEANUP_SITE.search(text):
        return text
    return None


def output_vocab(model: Any, tokenizer: Any) -> list[str]:
    """The display string of every id the model's output layer scores (its size, which may
    exceed the tokenizer's: those extra rows are shown as ``<id N>``)."""
    out = model.get_output_embeddings()
    size = int(out.weight.shape[0]) if out is not None else int(model.config.vocab_size)
    raw = tokenizer.convert_ids_to_tokens(list(range(min(size, len(tokenizer)))))
    shown = decode_each(tokenizer, raw)
    vocab = [(s.strip() or str(r)) for s, r in zip(shown, raw)]
    return vocab + [f"<id {i}>" for i in range(len(vocab), size)]


def decode_each(tokenizer: Any, raw: Sequence[str | None]) -> list[str]:
    """``tokenizer.batch_decode([[i] for i in range(len(raw))])`` (every id decoded on its own),
    where ``raw`` is ``tokenizer.convert_ids_to_tokens(range(len(raw)))`` — without decoding
    most ids one by one (a Python call each: 0.2-0.4 s for a 30,522-token vocabulary).

    A token is taken as it stands only where that is provably what its decode returns (see
    :func:`_single_token_rule`): with a WordPiece decoder (BERT family; the ``##`` prefix is
    dropped only after a first token) or none, one token decodes to itself, and neither the
    decoder's clean-up nor transformers' acts on a text without a space; with a byte-level
    decoder (GPT-2 / RoBERTa family), a token of printable ASCII and "Ġ" decodes to itself with
    "Ġ" read as a space, unless that text holds a spot transformers' clean-up acts on. Every
    other token — and every token of any other tokenizer — is decoded the slow way.
    """
    rule = _single_token_rule(tokenizer)
    shown: list[str | None]
    if rule in ("join", "wordpiece"):
        shown = [r if type(r) is str and " " not in r else None for r in raw]
    elif rule == "byte-level":
        shown = [_byte_level_text(r) if type(r) is str else None for r in raw]
    else:
        shown = [None] * len(raw)
    slow = [i for i, s in enumerate(shown) if s is None]
    if slow:
        for i, s in zip(slow, tokenizer.batch_decode([[i] for i in slow])):
            shown[i] = s
    return shown  # type: ignore[return-value]


class HFMaskedLM(MaskedLMBackend):
    """A loaded ``AutoModelForMaskedLM`` with its tokenizer (see :func:`load_hf_masked_lm`).

    ``on_batch``: an optional callback ``(done, total)`` called after every forward batch of
    :meth:`mask_logprobs`, :meth:`chain_logprobs`, :meth:`prior_logprobs` and
    :meth:`token_logprobs` (inputs done out of the call's total), for progress bars.

    Besides the :class:`~biasprobe.backends.base.MaskedLM` members it has ``mask_id`` (the mask
    token's id), ``pad_id``, ``batch_size``, ``device`` and ``model``.
    """

    on_batch: Any = None
    reports_batches = True

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
        self.mask_token = tokenizer.mask_token
        self.mask_id = int(tokenizer.mask_token_id)
        self.unk_id = tokenizer.unk_token_id  # None when the tokenizer has no unknown token
        self.unk_token = tokenizer.unk_token if self.unk_id is not None else None
        self.special_tokens = tuple(t for t in (tokenizer.all_special_tokens or ()) if t)
        self.special_ids = frozenset(int(i) for i in (tokenizer.all_special_ids or ()))
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.max_length = max_input_length(model, tokenizer)
        self.vocab = output_vocab(self.model, tokenizer)
        vocab_size = len(self.vocab)
        self._positions: tuple[torch.Tensor, torch.Tensor] | None = None
        self._hook = self.model.base_model.register_forward_hook(self._keep_positions)
        self.head_at_mask_only = True
        self.head_at_mask_only = self._check_head_path()
        self.info = {
            **(info or {}),
            "name": name,
            "class": type(model).__name__,
            "model_type": getattr(model.config, "model_type", None),
            "num_parameters": int(sum(p.numel() for p in model.parameters())),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "device": str(self.device),
            "mask_token": self.mask_token,
            "vocab_size": vocab_size,
            "head_at_mask_only": self.head_at_mask_only,
            "tokenizer": type(tokenizer).__name__,
        }

    # -- forward ------------------------------------------------------------------------------
    def _keep_positions(self, module: Any, args: Any, output: Any) -> Any:
        """Forward hook on the base model: keep only the hidden states the head must see."""
        if self._positions is None:
            return None
        rows, cols = self._positions
        hidden = output[0]  # (B, T, H)
        picked = hidden[rows, cols].unsqueeze(1)  # (N, 1, H)
        if isinstance(output, tuple):
            return (picked, *output[1:])
        output.last_hidden_state = picked
        return output

    def _forward_logits(
        self, seqs: Sequence[Sequence[int]], positions: Sequence[int], head_only: bool
    ) -> torch.Tensor:
        """Logits (N, V) at ``positions[i]`` of ``seqs[i]``, one padded batch."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        att = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
            att[i, : len(s)] = 1
        ids, att = ids.to(self.device), att.to(self.device)
        rows = torch.arange(len(seqs), device=self.device)
        cols = torch.as_tensor(list(positions), dtype=torch.long, device=self.device)
        if head_only:
            self._positions = (rows, cols)
            try:
                logits = self.model(input_ids=ids, attention_mask=att).logits  # (N, 1, V)
            finally:
                self._positions = None
            return logits[:, 0, :]
        logits = self.model(input_ids=ids, attention_mask=att).logits  # (N, T, V)
        return logits[rows, cols]

    def _check_head_path(self) -> bool:
        """True when applying the head at the mask only matches a full forward pass."""
        text = f"a {self.mask_token} b"
        ids = self._encode([text])[0]
        pos = [ids.index(self.mask_id)]
        with torch.inference_mode():
            try:
                fast = self._forward_logits([ids], pos, head_only=True)
            except Exception:
                return False
            full = self._forward_logits([ids], pos, head_only=False)
        return bool(fast.shape == full.shape and torch.allclose(fast, full, atol=1e-4, rtol=1e-4))

    def _logprobs_at(
        self,
        seqs: Sequence[Sequence[int]],
        positions: Sequence[int],
        pick: Sequence[int] | None = None,
    ) -> np.ndarray:
        """log-softmax at the given positions, batched by length.

        Returns (N, V) float32, or with ``pick`` only the (N,) float64 log-prob of token
        ``pick[i]`` in row i (without holding N × V values).
        """
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        if pick is None:
            out = np.empty((len(seqs), len(self.vocab)), dtype=np.float32)
        else:
            out = np.empty(len(seqs), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                try:
                    logits = self._forward_logits(
                        [seqs[i] for i in idx],
                        [positions[i] for i in idx],
                        self.head_at_mask_only,
                    )
                except torch.cuda.OutOfMemoryError:
                    raise DeviceError(
                        f"out of memory on {self.device} with batch size {self.batch_size}; "
                        "use a smaller --batch-size"
                    ) from None
                lp = torch.log_softmax(logits.float(), dim=-1)  # (b, V)
                if pick is None:
                    out[idx] = lp.cpu().numpy()
                else:
                    cols = torch.as_tensor([pick[i] for i in idx], device=lp.device)
                    rows = torch.arange(len(idx), device=lp.device)
                    out[idx] = lp[rows, cols].double().cpu().numpy()
                if self.on_batch is not None:
                    self.on_batch(start + len(idx), len(order))
        return out

    def _encode(self, sentences: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer(list(sentences), add_special_tokens=True)["input_ids"]
        for text, ids in zip(sentences, enc):
            n = ids.count(self.mask_id)
            if n != 1:
                raise UsageError(
                    f"sentence {text!r} has {n} mask tokens ({self.mask_token}) for model "
                    f"{self.name}; expected exactly one"
                )
            if len(ids) > self.max_length:
                raise UsageError(
                    f"sentence {text!r} is {len(ids)} tokens long; model {self.name} takes at "
                    f"most {self.max_length}"
                )
        return enc

    # -- public API -------------------------------------------------------------------------
    def mask_logprobs(self, sentences: Sequence[str]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.mask_logprobs`."""
        unique = list(dict.fromkeys(sentences))
        seqs = self._encode(unique)
        lp = self._logprobs_at(seqs, [s.index(self.mask_id) for s in seqs])
        if len(unique) == len(sentences):
            return lp
        where = {s: i for i, s in enumerate(unique)}
        return lp[[where[s] for s in sentences]]

    def token_ids(self, sentences: Sequence[str]) -> list[list[int]]:
        """See :meth:`MaskedLMBackend.token_ids`."""
        return [list(ids) for ids in self.tokenizer(list(sentences))["input_ids"]]

    def token_logprobs(self, requests: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.token_logprobs`: each input with its token at
        ``position`` replaced by the mask, read at that position, in length-sorted batches
        of :attr:`batch_size` (the order of ``requests`` among inputs of one length is kept).

        Raises:
            UsageError: an input is longer than the model accepts, or a position is outside it.
        """
        seqs: list[list[int]] = []
        positions: list[int] = []
        wanted: list[int] = []
        for r, (ids, p) in enumerate(requests):
            ids = [int(i) for i in ids]
            if not 0 <= p < len(ids):
                raise UsageError(
                    f"position {p} of request {r} is outside its {len(ids)} tokens "
                    f"(model {self.name})"
                )
            if len(ids) > self.max_length:
                raise UsageError(
                    f"an input of {len(ids)} tokens is longer than model {self.name} accepts "
                    f"({self.max_length} tokens)"
                )
            wanted.append(ids[p])
            ids[p] = self.mask_id
            seqs.append(ids)
            positions.append(int(p))
        if not seqs:
            return np.zeros(0, dtype=np.float64)
        return self._logprobs_at(seqs, positions, pick=wanted)

    def unknown_words(self, sentence: str) -> list[str]:
        """See :meth:`MaskedLMBackend.unknown_words`."""
        unk = self.tokenizer.unk_token_id
        if unk is None:
            return []
        words = [w for w in sentence.split() if self.mask_token not in w]
        enc = self.tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
        return [w for w, ids in zip(words, enc) if unk in ids]

    def target_pieces(self, sentence: str, word: str) -> list[int]:
        """See :meth:`MaskedLMBackend.target_pieces` and :func:`pieces_in_context`."""
        return pieces_in_context(self.tokenizer, self.mask_token, sentence, word, self.name)

    def chain_logprobs(self, requests: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.chain_logprobs`."""
        encoded = self._encode([s for s, _ in requests])
        return self.chain_logprobs_ids(
            [(ids, ids.index(self.mask_id), pieces) for (_, pieces), ids in zip(requests, encoded)]
        )

    def chain_logprobs_ids(
        self, requests: Sequence[tuple[Sequence[int], int, Sequence[int]]]
    ) -> np.ndarray:
        """log p(pieces) at one mask of token-id inputs that may hold other masks too.

        Each request is ``(ids, position, pieces)``: model input ids (special tokens included),
        the position of the mask to fill and the target's pieces. That mask is widened to
        ``n = len(pieces)`` masks and ``log p = Σ_i log p(piece_i | ids, piece_1..piece_{i−1})``
        (piece i read at the i-th mask, earlier pieces filled in, later ones still masked);
        every other mask of ``ids`` stays a mask throughout (the prior sentence of
        prior-normalised scores). One pass per piece, batched by length.

        Returns:
            float64 array (len(requests),).

        Raises:
            UsageError: a widened input is longer than the model accepts, or ``position`` is
                not a mask.
        """
        seqs: list[list[int]] = []
        positions: list[int] = []
        wanted: list[int] = []
        owner: list[int] = []
        for r, (ids, m, pieces) in enumerate(requests):
            ids = list(ids)
            if not 0 <= m < len(ids) or ids[m] != self.mask_id:
                raise UsageError(f"position {m} of request {r} is not a mask for model {self.name}")
            n = len(pieces)
            if len(ids) + n - 1 > self.max_length:
                shown = self.tokenizer.decode(ids, skip_special_tokens=False)
                raise UsageError(
                    f"sentence {shown!r} with a {n}-piece target is longer than model "
                    f"{self.name} accepts ({self.max_length} tokens)"
                )
            for i in range(n):
                seqs.append(ids[:m] + list(pieces[:i]) + [self.mask_id] * (n - i) + ids[m + 1 :])
                positions.append(m + i)
                wanted.append(int(pieces[i]))
                owner.append(r)
        total = np.zeros(len(requests), dtype=np.float64)
        if not seqs:
            return total
        picked = self._logprobs_at(seqs, positions, pick=wanted)
        np.add.at(total, np.asarray(owner), picked)
        return total

    scores_priors = True

    def prior_logprobs(self, requests: Sequence[tuple[str, str, int, str]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.prior_logprobs` (:meth:`prior_request`, then
        :meth:`chain_logprobs_ids`)."""
        return self.chain_logprobs_ids([self.prior_request(*r) for r in requests])

    def prior_request(
        self, prior_sentence: str, attribute: str, mask_index: int, word: str
    ) -> tuple[list[int], int, list[int]]:
        """The request of :meth:`chain_logprobs_ids` for ``log p(word | prior)``.

        ``prior_sentence`` holds the backend's mask token once per whitespace-separated word of
        ``attribute`` at every place the attribute was, plus the target's mask, number
        ``mask_index`` in reading order. Each attribute mask is widened to one mask per piece of
        its word (tokenized in context, as targets are), so the prior hides exactly the
        attribute's tokens; the target's mask stays single (the chain rule widens it).

        Raises:
            UsageError: the mask count does not fit the attribute.
            VocabularyError: an attribute or target word is unknown to the tokenizer.
        """
        mt = self.mask_token
        parts = prior_sentence.split(mt)
        n_masks = len(parts) - 1
        words = attribute.split()
        n_attr = n_masks - 1
        if not words or n_attr < 1 or n_attr % len(words) or not 0 <= mask_index < n_masks:
            raise UsageError(
                f"prior sentence {prior_sentence!r} has {n_masks} masks, which does not fit "
                f"the attribute {attribute!r} and target mask number {mask_index}"
            )
        encoded = self.tokenizer(prior_sentence, add_special_tokens=True)["input_ids"]
        where = [i for i, t in enumerate(encoded) if t == self.mask_id]
        if len(where) != n_masks:
            raise UsageError(
                f"prior sentence {prior_sentence!r} has {len(where)} mask tokens for model "
                f"{self.name}, expected {n_masks}"
            )
        ids: list[int] = []
        target_pos = -1
        target: list[int] = []
        prev = 0
        attr_seen = 0
        for j, at in enumerate(where):
            ids += encoded[prev:at]
            prev = at + 1
            left = mt.join(parts[: j + 1]) + mt  # the text up to this mask, in context
            if j == mask_index:
                target_pos = len(ids)
                ids.append(self.mask_id)
                target = pieces_in_context(self.tokenizer, mt, left, word, self.name, last=True)
            else:
                attr_word = words[attr_seen % len(words)]
                attr_seen += 1
                n = len(
                    pieces_in_context(self.tokenizer, mt, left, attr_word, self.name, last=True)
                )
                ids += [self.mask_id] * n
        ids += encoded[prev:]
        return ids, target_pos, target

    def prior_text(self, prior_sentence: str, attribute: str, mask_index: int, word: str) -> str:
        """The prior sentence as :meth:`prior_request` scores it, as text: each attribute mask
        widened to one mask per piece of its word (e.g. ``"[MASK] is a [MASK] [MASK]."`` for
        the one-word attribute "firefighter" that is two WordPieces); the target's mask stays
        single. Provenance for ``targets.csv``; the scores come from :meth:`prior_request`."""
        del word  # the target's mask is one mask whatever the target
        mt = self.mask_token
        parts = prior_sentence.split(mt)
        words = attribute.split() or [attribute]
        out = parts[0]
        attr_seen = 0
        for j in range(len(parts) - 1):
            n = 1
            if j != mask_index:
                left = mt.join(parts[: j + 1]) + mt
                attr_word = words[attr_seen % len(words)]
                attr_seen += 1
                n = len(
                    pieces_in_context(self.tokenizer, mt, left, attr_word, self.name, last=True)
                )
            out += " ".join([mt] * n) + parts[j + 1]
        return out

    def close(self) -> None:
        """Drop the forward hook and free GPU memory."""
        self._hook.remove()
        if self.device.type == "cuda":
            self.model.to("cpu")
            torch.cuda.empty_cache()
