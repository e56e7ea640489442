"""Replay of recorded model outputs: score probe sets with no model and no network.

A recorded-model folder holds, for a fixed list of sentences, the model's output at the mask
(raw logits or log-probs) plus the vocabulary and a short model card::

    DIR/
      model.json   {"format": "biasprobe-recorded/1", "model": "<original model id>",
                    "mask_token": "[MASK]", "values": "logits" | "logprobs",
                    "tokenizer": {"type": "wordpiece", "do_lower_case": true} | null,
                    "source": "...", "license": "...", "n_sentences": N, "vocab_size": V}
      vocab.txt    one token per line, line i = token id i
      outputs.npz  sentences (N,) str, values (N, V) float32
      README.md    the model card: what model, where the numbers come from, licence

``biasprobe record`` writes such a folder from any model run; ``--model recorded:DIR`` reads
it. Log-probs are ``values − logsumexp(values)`` when the folder stores logits. Sentences are
matched exactly (the text with the model's mask token).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biasprobe.backends.base import MaskedLMBackend
from biasprobe.errors import ModelLoadError, UsageError, VocabularyError

FORMAT = "biasprobe-recorded/1"
PREFIX = "recorded:"


def builtin_recorded_dir() -> Path:
    """Folder of the recorded models shipped with biasprobe."""
    return Path(__file__).resolve().parent.parent / "data" / "recorded"


def builtin_recorded_models() -> list[str]:
    """Names of the shipped recorded models (usable as ``recorded:NAME``)."""
    root = builtin_recorded_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "model.json").is_file())


def _log_softmax(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.float64)
    m = v.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(v - m).sum(axis=-1, keepdims=True))
    return (v - lse).astype(np.float32)


def resolve_recorded(spec: str) -> Path:
    """``recorded:DIR`` or ``recorded:NAME`` (a shipped recording) → its folder."""
    target = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
    if not target:
        raise ModelLoadError("recorded: needs a folder, e.g. --model recorded:./my-recording")
    path = Path(target).expanduser()
    if path.is_dir():
        return path
    shipped = builtin_recorded_dir() / target
    if (shipped / "model.json").is_file():
        return shipped
    names = ", ".join(builtin_recorded_models()) or "none"
    raise ModelLoadError(
        f"recorded model folder {target} does not exist (shipped recordings: {names})"
    )


class RecordedMaskedLM(MaskedLMBackend):
    """A backend that looks sentences up in a recorded-model folder."""

    def __init__(self, spec: str) -> None:
        folder = resolve_recorded(spec)
        card_path = folder / "model.json"
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(
                f"{folder} is not a recorded-model folder: model.json is missing"
            ) from None
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot read {card_path}: {e}") from None
        if card.get("format") != FORMAT:
            raise ModelLoadError(
                f"{card_path}: format is {card.get('format')!r}, expected {FORMAT!r}"
            )
        try:
            vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
            if vocab and vocab[-1] == "":
                vocab.pop()
            with np.load(folder / "outputs.npz", allow_pickle=False) as z:
                sentences = [str(s) for s in z["sentences"]]
                values = np.asarray(z["values"], dtype=np.float32)
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ModelLoadError(
                f"recorded model folder {folder} is incomplete or corrupt: {e}"
            ) from None
        if values.shape != (len(sentences), len(vocab)):
            raise ModelLoadError(
                f"recorded model folder {folder}: outputs are {values.shape}, expected "
                f"({len(sentences)}, {len(vocab)}) for {len(sentences)} sentences and a "
                f"{len(vocab)}-token vocab.txt"
            )
        kind = card.get("values", "logits")
        if kind not in ("logits", "logprobs"):
            raise ModelLoadError(
                f"{card_path}: values must be 'logits' or 'logprobs', got {kind!r}"
            )
        self.folder = folder
        self.card = card
        self.name = spec
        self.mask_token = str(card.get("mask_token", "[MASK]"))
        self.vocab = vocab
        self._token_ids: dict[str, list[int]] = {}
        for i, t in enumerate(vocab):
            self._token_ids.setdefault(t, []).append(i)
        self._index = {s: i for i, s in enumerate(sentences)}
        self._logprobs = values if kind == "logprobs" else _log_softmax(values)
        self._tokenizer: Any = None
        self.info = {
            "requested": spec,
            "source": "recorded",
            "path": str(folder.resolve()),
            "model": card.get("model"),
            "values": kind,
            "recorded_from": card.get("source"),
            "license": card.get("license"),
            "mask_token": self.mask_token,
            "vocab_size": len(vocab),
            "n_sentences": len(sentences),
            "device": "none (recorded outputs)",
        }

    @property
    def sentences(self) -> list[str]:
        """The sentences this recording holds."""
        return list(self._index)

    def mask_logprobs(self, sentences: Sequence[str]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.mask_logprobs`.

        Raises:
            UsageError: a sentence is not in the recording (all missing ones are listed).
        """
        missing = [s for s in dict.fromkeys(sentences) if s not in self._index]
        if missing:
            shown = "\n".join(f"  {s!r}" for s in missing[:10])
            more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise UsageError(
                f"recorded model {self.name} holds no output for {len(missing)} sentence(s):\n"
                f"{shown}{more}\nIt holds {len(self._index)} sentences; record them with "
                "`biasprobe record` or select other pairs with --pairs/--exclude."
            )
        return self._logprobs[[self._index[s] for s in sentences]]

    def _load_tokenizer(self) -> Any:
        spec = self.card.get("tokenizer") or {}
        if self._tokenizer is not None or spec.get("type") not in ("wordpiece", "hf"):
            return self._tokenizer
        try:
            if spec["type"] == "wordpiece":
                from transformers import BertTokenizer

                self._tokenizer = BertTokenizer.from_pretrained(
                    str(self.folder), do_lower_case=bool(spec.get("do_lower_case", True))
                )
            else:
                from transformers import AutoTokenizer

                where = (self.folder / str(spec.get("path", "tokenizer"))).resolve()
                if not where.is_relative_to(self.folder.resolve()):
                    raise ModelLoadError(
                        f"{self.folder}/model.json: tokenizer path {spec.get('path')!r} "
                        "points outside the recording"
                    )
                # Never run code shipped with a recording.
                self._tokenizer = AutoTokenizer.from_pretrained(
                    str(where), local_files_only=True, trust_remote_code=False
                )
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(
                f"the tokenizer of recorded model {self.name} cannot be loaded: "
                f"{type(e).__name__}: {e}"
            ) from None
        return self._tokenizer

    def target_pieces(self, sentence: str, word: str) -> list[int]:
        """See :meth:`MaskedLMBackend.target_pieces`.

        With a tokenizer in the recording, words are split as the model would split them;
        without one, a word must be a whole entry of vocab.txt.
        """
        tokenizer = self._load_tokenizer()
        if tokenizer is not None:
            from biasprobe.backends.tokens import pieces_in_context

            return pieces_in_context(tokenizer, self.mask_token, sentence, word, self.name)
        ids = self._token_ids.get(word, [])
        if not ids:
            raise VocabularyError(
                f"target word {word!r} is not in the vocabulary of recorded model {self.name}"
            )
        if len(ids) > 1:
            raise VocabularyError(
                f"target word {word!r} matches {len(ids)} tokens ({ids}) of recorded model "
                f"{self.name}, which holds no tokenizer to tell them apart; record it from "
                "the model (biasprobe record PROBE_FILE -m MODEL) to score targets"
            )
        return ids

    def chain_logprobs(self, requests: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
        """Single-piece targets only: a recording holds one mask per sentence.

        Raises:
            VocabularyError: a target has several pieces.
        """
        out = np.empty(len(requests), dtype=np.float64)
        for r, (sentence, pieces) in enumerate(requests):
            if len(pieces) != 1:
                shown = [self.vocab[p] for p in pieces]
                raise VocabularyError(
                    f"recorded model {self.name} holds one mask per sentence, so the "
                    f"{len(pieces)}-piece target {shown} cannot be scored from it; use a "
                    "single-token target or the live model"
                )
            out[r] = float(self.mask_logprobs([sentence])[0, pieces[0]])
        return out


def write_recorded(
    folder: str | Path,
    *,
    model: str,
    sentences: Sequence[str],
    logprobs: np.ndarray,
    vocab: Sequence[str],
    mask_token: str,
    source: str,
    license: str = "unknown",
    tokenizer: dict[str, Any] | None = None,
    values: str = "logprobs",
    card_text: str = "",
    hf_tokenizer: Any = None,
) -> Path:
    """Write a recorded-model folder (atomically) from outputs at the mask.

    Args:
        folder: folder to create (must not exist or be empty). It gets biasprobe's manifest
            (kind ``"recording"``).
        model: the original model id.
        sentences: exact texts (with ``mask_token``).
        logprobs: (N, V) values at the mask.
        vocab: token string of each id, written as vocab.txt.
        mask_token: the model's mask token.
        source: where the numbers come from.
        license: licence of the numbers.
        tokenizer: how to split target words (``{"type": "wordpiece", "do_lower_case": true}``)
            or None to look words up whole.
        values: ``"logprobs"`` or ``"logits"``.
        card_text: extra Markdown for README.md.
        hf_tokenizer: a ``transformers`` tokenizer to store in ``tokenizer/`` so that target
            words are split as the model splits them (overrides ``tokenizer``).
    """
    from biasprobe import fsio

    out = Path(folder)
    fsio.check_output_folder(out, False, kinds=("recording",), what="recording")
    arr = np.asarray(logprobs, dtype=np.float32)
    if arr.shape != (len(sentences), len(vocab)):
        raise ValueError(
            f"values {arr.shape} do not match {len(sentences)} sentences × {len(vocab)}"
        )
    if any("\n" in t for t in vocab):
        raise ValueError("vocabulary tokens must not contain newlines")
    card = {
        "format": FORMAT,
        "model": model,
        "mask_token": mask_token,
        "values": values,
        "tokenizer": tokenizer,
        "source": source,
        "license": license,
        "n_sentences": len(sentences),
        "vocab_size": len(vocab),
    }
    if hf_tokenizer is not None:
        card["tokenizer"] = {"type": "hf", "path": "tokenizer"}
    with fsio.staging_dir(out) as tmp:
        if hf_tokenizer is not None:
            hf_tokenizer.save_pretrained(str(tmp / "tokenizer"))
        (tmp / "model.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        (tmp / "vocab.txt").write_text("".join(f"{t}\n" for t in vocab), encoding="utf-8")
        np.savez_compressed(
            tmp / "outputs.npz", sentences=np.array(list(sentences), dtype=np.str_), values=arr
        )
        (tmp / "README.md").write_text(_readme(card, sentences, card_text), encoding="utf-8")
        files = [f for f in fsio.list_files(tmp) if f != fsio.STAGING_MARKER]
        fsio.write_manifest(tmp, "recording", f"{model} ({len(sentences)} sentences)", files)
        fsio.replace_dir(tmp, out)
    return out


def _readme(card: dict[str, Any], sentences: Sequence[str], card_text: str) -> str:
    """The model card of a recording (README.md)."""
    lines = [
        f"# Recorded outputs of `{card['model']}`",
        "",
        f"{len(sentences)} sentences, {card['vocab_size']}-token vocabulary, values: "
        f"{card['values']} at the mask ({card['mask_token']}).",
        "",
        f"Source: {card['source']}",
        "",
        f"Licence: {card['license']}",
        "",
    ]
    if card_text:
        lines += [card_text.strip(), ""]
    lines += ["## Sentences", ""] + [f"- `{s}`" for s in sentences]
    return "\n".join(lines) + "\n"
