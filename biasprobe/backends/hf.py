"""Hugging Face ``transformers`` masked language models: hub ids, the HF cache, local folders.

Loading order for an id that is not a local folder: the local Hugging Face cache first (no
network), then the hub if it can be reached. Nothing from the model repository is executed
(``trust_remote_code`` stays off unless the caller asks), and safetensors weights are preferred
by ``transformers`` when a checkpoint has both formats.

Speed: sentences are de-duplicated, sorted by length and batched; everything runs under
``torch.inference_mode()``; and the LM head (hidden → vocabulary projection) is applied only
at the mask positions, not at every token. That last step uses a forward hook on the base model
that keeps only the hidden states at the requested positions; at load time a self-check compares
it with a plain full forward pass and falls back to the plain pass if they ever differ.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from biasprobe.backends.base import MaskedLMBackend
from biasprobe.errors import DeviceError, ModelLoadError, UsageError, VocabularyError

_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_device(device: str | None) -> torch.device:
    """Turn ``None``/``"auto"``/``"cpu"``/``"cuda"``/``"cuda:1"``/``"mps"`` into a device.

    Raises:
        DeviceError: the device is not available on this machine or the name is unknown.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise DeviceError(
            f"unknown device {device!r}; expected auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch build has no CUDA"
                if torch.version.cuda is None
                else "no GPU is visible"
            )
            raise DeviceError(
                f"--device {device} was requested but CUDA is not available ({why}); "
                "use --device cpu or --device auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError(f"--device {device} was requested but MPS is not available")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {device!r}; expected auto, cpu, cuda, cuda:N or mps")
    return dev


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub host accepts a TCP connection (fast offline detection)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # only the proxy can tell; let huggingface_hub try through it
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a folder."""
    return (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or "\\" in name
        or not _HUB_ID.match(name)
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _local_help(name: str) -> str:
    return (
        f"To use a local copy, pass its folder instead: --model /path/to/{name.split('/')[-1]} "
        "(a folder with config.json, model.safetensors or pytorch_model.bin, and the tokenizer "
        "files, as written by save_pretrained), or point HF_HOME / HF_HUB_CACHE at a Hugging "
        "Face cache that holds it."
    )


def load_hf_masked_lm(
    name: str,
    *,
    revision: str | None = None,
    device: str | None = None,
    batch_size: int = 32,
    trust_remote_code: bool = False,
) -> HFMaskedLM:
    """Load a masked LM by hub id (cache first, then hub) or from a local folder.

    Args:
        name: hub id (``bert-base-uncased``, ``org/model``) or a local checkpoint folder.
        revision: branch, tag or commit of a hub model.
        device: ``auto`` (CUDA if present), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: sentences per forward pass.
        trust_remote_code: allow custom model code from the repository (off by default).

    Raises:
        ModelLoadError: the model cannot be found or loaded; the message says how to point
            at a local copy.
        DeviceError: the device is not available.
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dev = resolve_device(device)
    path = Path(name).expanduser()
    info: dict[str, Any] = {"requested": name, "revision": revision}
    if path.exists() or _looks_like_path(name):
        if not path.exists():
            raise ModelLoadError(f"model folder {name} does not exist")
        if not path.is_dir():
            raise ModelLoadError(
                f"model path {name} is a file; expected a checkpoint folder "
                "(config.json, weights and tokenizer files)"
            )
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{name} is not a model checkpoint folder: config.json is missing (expected "
                "config.json, model.safetensors or pytorch_model.bin, and tokenizer files)"
            )
        weights = [path / f for f in _WEIGHT_FILES if (path / f).is_file()]
        if not weights:
            raise ModelLoadError(
                f"model folder {name} has no weights: expected model.safetensors or "
                "pytorch_model.bin (or a sharded index)"
            )
        source, kwargs = "local", {"local_files_only": True}
        files = sorted({f for pattern in ("*.safetensors", "*.bin") for f in path.glob(pattern)})
        info.update(
            source="local",
            path=str(path.resolve()),
            revision=None,  # a local folder has no hub revision
            files_sha256={f.name: _sha256(f) for f in files},
        )
        revision = None
        load_from: str = str(path)
    else:
        load_from = name
        source, kwargs = "hub-cache", {"local_files_only": True}
        try:
            from transformers.utils import cached_file

            cached_file(name, "config.json", revision=revision, local_files_only=True)
        except Exception:
            if not hub_reachable():
                raise ModelLoadError(
                    f"model {name!r} is not in the local Hugging Face cache and the hub cannot "
                    f"be reached (offline). {_local_help(name)}"
                ) from None
            source, kwargs = "hub", {}
        info["source"] = source
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            load_from, revision=revision, trust_remote_code=trust_remote_code, **kwargs
        )
        model = AutoModelForMaskedLM.from_pretrained(
            load_from, revision=revision, trust_remote_code=trust_remote_code, **kwargs
        )
        # Score in float32 whatever precision the checkpoint was saved in: half precision
        # would create ties in the top-k and coarse log-probs.
        if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
            model = model.float()
    except Exception as e:
        where = f"model folder {name}" if source == "local" else f"model {name!r}"
        hint = "" if source == "local" else f" {_local_help(name)}"
        raise ModelLoadError(
            f"{where} could not be loaded ({_first_line(e)}). Its files may be missing or "
            f"corrupt, or it is not a masked language model.{hint}"
        ) from None
    if source != "local":
        try:
            from transformers.utils import cached_file

            cfg_path = cached_file(name, "config.json", revision=revision, local_files_only=True)
            m = re.search(r"snapshots[/\\]([0-9a-f]{40})[/\\]", str(cfg_path))
            info["commit_hash"] = m.group(1) if m else None
            info["path"] = str(Path(cfg_path).parent)
        except Exception:
            info["commit_hash"] = getattr(model.config, "_commit_hash", None)
    if tokenizer.mask_token is None:
        raise ModelLoadError(f"model {name!r} has no mask token: it is not a masked language model")
    return HFMaskedLM(model, tokenizer, name=name, device=dev, batch_size=batch_size, info=info)


def pieces_in_context(
    tokenizer: Any, mask_token: str, sentence: str, word: str, model_name: str
) -> list[int]:
    """Token ids of ``word`` written where the mask of ``sentence`` is.

    The word is tokenized in context (the text before the mask, then the word), so tokenizers
    that mark word starts (``Ġword``, ``▁word``) see it as a separate word, not the start of
    a text.

    Raises:
        VocabularyError: the word becomes (or contains) the unknown token.
    """
    cut = sentence.find(mask_token)
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


#: Models whose position ids start after the padding index (positions = pad + 1 + i).
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text"}


def _max_length(model: Any, tokenizer: Any) -> int:
    """Longest input (in tokens, specials included) the model can embed."""
    config = model.config
    limit = int(getattr(config, "max_position_embeddings", 512) or 512)
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 10**6:
        limit = min(limit, declared)
    return limit


class HFMaskedLM(MaskedLMBackend):
    """A loaded ``AutoModelForMaskedLM`` with its tokenizer (see :func:`load_hf_masked_lm`)."""

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
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.max_length = _max_length(model, tokenizer)
        out = self.model.get_output_embeddings()
        vocab_size = int(out.weight.shape[0]) if out is not None else int(model.config.vocab_size)
        self.vocab = self._display_vocab(vocab_size)
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

    # -- vocabulary -------------------------------------------------------------------------
    def _display_vocab(self, size: int) -> list[str]:
        tok = self.tokenizer
        raw = tok.convert_ids_to_tokens(list(range(min(size, len(tok)))))
        shown = tok.batch_decode([[i] for i in range(len(raw))])
        vocab = [(s.strip() or str(r)) for s, r in zip(shown, raw)]
        vocab += [f"<id {i}>" for i in range(len(vocab), size)]
        return vocab

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

    def target_pieces(self, sentence: str, word: str) -> list[int]:
        """See :meth:`MaskedLMBackend.target_pieces` and :func:`pieces_in_context`."""
        return pieces_in_context(self.tokenizer, self.mask_token, sentence, word, self.name)

    def chain_logprobs(self, requests: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.chain_logprobs`."""
        encoded = self._encode([s for s, _ in requests])
        seqs: list[list[int]] = []
        positions: list[int] = []
        wanted: list[int] = []
        owner: list[int] = []
        for r, ((_, pieces), ids) in enumerate(zip(requests, encoded)):
            m = ids.index(self.mask_id)
            n = len(pieces)
            for i in range(n):
                seq = ids[:m] + list(pieces[:i]) + [self.mask_id] * (n - i) + ids[m + 1 :]
                if len(seq) > self.max_length:
                    raise UsageError(
                        f"sentence {requests[r][0]!r} with a {n}-piece target is longer than "
                        f"model {self.name} accepts ({self.max_length} tokens)"
                    )
                seqs.append(seq)
                positions.append(m + i)
                wanted.append(int(pieces[i]))
                owner.append(r)
        total = np.zeros(len(requests), dtype=np.float64)
        if not seqs:
            return total
        picked = self._logprobs_at(seqs, positions, pick=wanted)
        np.add.at(total, np.asarray(owner), picked)
        return total

    def close(self) -> None:
        """Drop the forward hook and free GPU memory."""
        self._hook.remove()
        if self.device.type == "cuda":
            self.model.to("cpu")
            torch.cuda.empty_cache()
