"""Replay of recorded model outputs: score probe sets with no model and no network.

A recorded-model folder holds everything a probe set asks of the model: for a fixed list of
sentences, the model's output at the mask (raw logits or log-probs); for each target word, its
pieces and, for a word of several pieces, its chain-rule log-prob; for prior-normalised
(attribute) pairs, the log-prob of each target in its prior sentence. Plus the vocabulary and a
short model card::

    DIR/
      model.json     {"format": "biasprobe-recorded/2", "model": "<original model id>",
                      "mask_token": "[MASK]", "values": "logits" | "logprobs",
                      "tokenizer": {"type": "wordpiece", "do_lower_case": true}
                                   | {"type": "hf", "path": "tokenizer"} | null,
                      "source": "...", "license": "...", "n_sentences": N, "vocab_size": V,
                      "n_targets": T, "n_priors": P, "model_info": {...}}
      vocab.txt      one token per line, line i = token id i
      outputs.npz    sentences (N,) str, values (N, V) float32
      requests.json  {"targets": [{"sentence", "word", "pieces": [ids], "logprob"}],
                      "priors": [{"prior_sentence", "attribute", "mask_index", "word",
                                  "logprob", "scored_sentence" (optional: the prior as
                                  the model scored it, attribute masks widened)}]}
      tokenizer/     the model's tokenizer, when recorded from the model (optional)
      README.md      the model card: what model, where the numbers come from, licence

Format 1 (``biasprobe-recorded/1``, the shipped PAIR recordings) is the same without
``requests.json``: one mask per sentence, so no multi-piece target and no prior sentence.

``biasprobe record`` writes such a folder (format 2) from a probe file (the model answers every
request the probe set makes, through :class:`Recorder`) or from a run folder (what the run
stored); ``--model recorded:DIR`` reads it. Log-probs are ``values − logsumexp(values)`` when the
folder stores logits. Sentences are matched exactly (the text with the model's mask token).
Every float is stored exactly (float32 vectors in ``.npz``, float64 scalars as shortest
round-trip JSON), so replaying reproduces the recorded run bit for bit.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biasprobe.backends.base import MaskedLMBackend
from biasprobe.errors import BiasprobeError, ModelLoadError, UsageError, VocabularyError

FORMAT_1 = "biasprobe-recorded/1"
FORMAT = "biasprobe-recorded/2"
FORMATS = (FORMAT_1, FORMAT)
PREFIX = "recorded:"
REQUESTS_JSON = "requests.json"

#: (prior sentence, attribute, target mask number, word): a request of ``prior_logprobs``.
PriorKey = tuple[str, str, int, str]


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


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _prior_key(request: Sequence[Any]) -> PriorKey:
    sentence, attribute, mask_index, word = request
    return str(sentence), str(attribute), int(mask_index), str(word)


class RecordedRequests:
    """What a format-2 recording holds beyond the outputs at the mask (``requests.json``).

    Attributes:
        pieces: (sentence, word) → the word's token ids at the mask of that sentence.
        chains: (sentence, pieces) → chain-rule log-prob of a target of several pieces.
        priors: (prior sentence, attribute, target mask number, word) → log p(word | prior).
        prior_texts: the same key → the prior sentence as the live model scored it (attribute
            masks widened to the word's pieces; optional ``scored_sentence`` of an entry).
    """

    def __init__(self) -> None:
        self.pieces: dict[tuple[str, str], list[int]] = {}
        self.chains: dict[tuple[str, tuple[int, ...]], float] = {}
        self.priors: dict[PriorKey, float] = {}
        self.prior_texts: dict[PriorKey, str] = {}

    @classmethod
    def read(
        cls, path: Path, vocab_size: int, index: dict[str, int], logprobs: np.ndarray
    ) -> RecordedRequests:
        """Read and check ``requests.json``.

        Raises:
            ModelLoadError: the file is missing, unreadable, or an entry is malformed (named by
                its position, e.g. ``targets[3].pieces``).
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(
                f"recorded model folder {path.parent} is incomplete: {REQUESTS_JSON} (target "
                "pieces, chain-rule and prior log-probs) is missing"
            ) from None
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot read {path}: {e}") from None
        if not (
            isinstance(data, dict)
            and isinstance(data.get("targets"), list)
            and isinstance(data.get("priors"), list)
        ):
            raise ModelLoadError(
                f"{path}: expected an object with the lists 'targets' and 'priors'"
            )
        out = cls()
        for n, entry in enumerate(data["targets"]):
            out._add_target(path, f"targets[{n}]", entry, vocab_size, index, logprobs)
        for n, entry in enumerate(data["priors"]):
            out._add_prior(path, f"priors[{n}]", entry)
        return out

    def _add_target(self, path, where, entry, vocab_size, index, logprobs) -> None:
        def bad(what: str) -> ModelLoadError:
            return ModelLoadError(f"{path}: {where}: {what}")

        if not isinstance(entry, dict):
            raise bad("not an object")
        sentence, word = entry.get("sentence"), entry.get("word")
        ids, value = entry.get("pieces"), entry.get("logprob")
        if not isinstance(sentence, str) or sentence not in index:
            raise bad(f"sentence {sentence!r} is not one of the recorded sentences")
        if not isinstance(word, str) or not word:
            raise bad(f"word must be a non-empty string, got {word!r}")
        if not (
            isinstance(ids, list) and ids and all(_is_int(i) and 0 <= i < vocab_size for i in ids)
        ):
            raise bad(
                f"pieces must be a non-empty list of token ids below {vocab_size}, got {ids!r}"
            )
        if not _is_number(value):
            raise bad(f"logprob must be a number, got {value!r}")
        if self.pieces.setdefault((sentence, word), ids) != ids:
            raise bad(f"{word!r} in {sentence!r} is recorded twice with different pieces")
        if len(ids) == 1:
            at_mask = float(logprobs[index[sentence], ids[0]])
            if float(value) != at_mask:
                raise bad(
                    f"logprob {value!r} of {word!r} differs from the value at the mask in "
                    f"outputs.npz ({at_mask!r})"
                )
        else:
            self.chains[(sentence, tuple(ids))] = float(value)

    def _add_prior(self, path, where, entry) -> None:
        if not isinstance(entry, dict):
            raise ModelLoadError(f"{path}: {where}: not an object")
        fields = {k: entry.get(k) for k in ("prior_sentence", "attribute", "word")}
        for key, value in fields.items():
            if not isinstance(value, str) or not value:
                raise ModelLoadError(f"{path}: {where}: {key} must be a non-empty string")
        index, value = entry.get("mask_index"), entry.get("logprob")
        if not _is_int(index) or index < 0:
            raise ModelLoadError(f"{path}: {where}: mask_index must be an integer ≥ 0")
        if not _is_number(value):
            raise ModelLoadError(f"{path}: {where}: logprob must be a number, got {value!r}")
        key = (fields["prior_sentence"], fields["attribute"], index, fields["word"])
        self.priors[key] = float(value)
        scored = entry.get("scored_sentence")
        if scored is not None:
            if not isinstance(scored, str):
                raise ModelLoadError(f"{path}: {where}: scored_sentence must be a string")
            self.prior_texts[key] = scored


class RecordedMaskedLM(MaskedLMBackend):
    """A backend that looks requests up in a recorded-model folder (format 1 or 2)."""

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
        if not isinstance(card, dict):
            raise ModelLoadError(f"{card_path} is not a JSON object")
        fmt = card.get("format")
        if fmt not in FORMATS:
            raise ModelLoadError(
                f"{card_path}: format is {fmt!r}, expected {FORMAT!r} or {FORMAT_1!r} (a newer "
                "biasprobe may have written it)"
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
        self.format = fmt
        self.name = spec
        self.mask_token = str(card.get("mask_token", "[MASK]"))
        self.vocab = vocab
        self._token_ids: dict[str, list[int]] = {}
        for i, t in enumerate(vocab):
            self._token_ids.setdefault(t, []).append(i)
        self._index = {s: i for i, s in enumerate(sentences)}
        self._logprobs = values if kind == "logprobs" else _log_softmax(values)
        self._tokenizer: Any = None
        self._requests = (
            RecordedRequests()
            if fmt == FORMAT_1
            else RecordedRequests.read(
                folder / REQUESTS_JSON, len(vocab), self._index, self._logprobs
            )
        )
        #: Format 2 holds prior log-probs (the live model scored the prior sentences).
        self.scores_priors = fmt != FORMAT_1
        self.info = {
            "requested": spec,
            "source": "recorded",
            "path": str(folder.resolve()),
            "format": fmt,
            "model": card.get("model"),
            "values": kind,
            "recorded_from": card.get("source"),
            "license": card.get("license"),
            "mask_token": self.mask_token,
            "vocab_size": len(vocab),
            "n_sentences": len(sentences),
            "n_targets": len(self._requests.pieces),
            "n_priors": len(self._requests.priors),
            "device": "none (recorded outputs)",
        }
        if card.get("model_info"):
            self.info["model_info"] = card["model_info"]

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

        A word recorded at this sentence gets its recorded pieces. Otherwise, with a tokenizer
        in the recording, words are split as the model would split them; without one, a word
        must be a whole entry of vocab.txt.
        """
        recorded = self._requests.pieces.get((sentence, word))
        if recorded is not None:
            return list(recorded)
        tokenizer = self._load_tokenizer()
        if tokenizer is not None:
            from biasprobe.backends.tokens import pieces_in_context

            return pieces_in_context(tokenizer, self.mask_token, sentence, word, self.name)
        ids = self._token_ids.get(word, [])
        if not ids and self.format != FORMAT_1:
            raise VocabularyError(
                f"recorded model {self.name} holds no pieces for the target word {word!r} in "
                f"{sentence!r}, and no tokenizer to split it (it was recorded from a run "
                "folder that did not score this word); record the probe file instead "
                "(biasprobe record PROBE_FILE -m MODEL -o DIR)"
            )
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

    def _no_chain(self, sentence: str, pieces: Sequence[int]) -> str:
        shown = [self.vocab[p] for p in pieces]
        if self.format == FORMAT_1:
            return (
                f"recorded model {self.name} holds one mask per sentence (recording format 1), "
                f"so the {len(pieces)}-piece target {shown} in {sentence!r} cannot be scored "
                "from it; record the probe file with this biasprobe (biasprobe record "
                "PROBE_FILE -m MODEL -o DIR), use a single-token target or the live model"
            )
        return (
            f"recorded model {self.name} holds no chain-rule log-prob for the "
            f"{len(pieces)}-piece target {shown} in {sentence!r}; record the probe file again "
            "(biasprobe record PROBE_FILE -m MODEL -o DIR) or use the live model"
        )

    def chain_logprobs(self, requests: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.chain_logprobs`: one piece is read off the outputs at the
        mask, several pieces are the recorded chain-rule log-prob (format 2).

        Raises:
            VocabularyError: a target of several pieces was not recorded.
        """
        out = np.empty(len(requests), dtype=np.float64)
        for r, (sentence, pieces) in enumerate(requests):
            if len(pieces) == 1:
                out[r] = float(self.mask_logprobs([sentence])[0, pieces[0]])
                continue
            value = self._requests.chains.get((sentence, tuple(int(p) for p in pieces)))
            if value is None:
                raise VocabularyError(self._no_chain(sentence, pieces))
            out[r] = value
        return out

    def _no_prior(self, key: PriorKey) -> str:
        prior, attribute, mask_index, word = key
        return (
            f"recorded model {self.name} holds no prior log-prob of {word!r} in the prior "
            f"sentence {prior!r} (attribute {attribute!r}, target mask number {mask_index})"
        )

    def prior_logprobs(self, requests: Sequence[tuple[str, str, int, str]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.prior_logprobs`: the recorded values (format 2).

        Raises:
            UsageError: a format-1 recording (no prior sentences), or a request not recorded.
        """
        if self.format == FORMAT_1:
            return super().prior_logprobs(requests)
        out = np.empty(len(requests), dtype=np.float64)
        for r, request in enumerate(requests):
            key = _prior_key(request)
            value = self._requests.priors.get(key)
            if value is None:
                raise UsageError(self._no_prior(key))
            out[r] = value
        return out

    def prior_text(self, prior_sentence: str, attribute: str, mask_index: int, word: str) -> str:
        """The prior sentence as the recorded model scored it ("" when the recording does not
        say: recordings made before biasprobe kept it)."""
        key = _prior_key((prior_sentence, attribute, mask_index, word))
        return self._requests.prior_texts.get(key, "")

    def missing(
        self, sentence: str, words: Sequence[str], prior: Sequence[Any] | None = None
    ) -> str | None:
        """What this recording lacks to score one side of a pair, or None if it holds it all:
        the output at the mask of ``sentence``, the pieces (and chain-rule log-prob) of each
        target word there, and the prior log-prob of request ``prior``."""
        if sentence not in self._index:
            return f"recorded model {self.name} holds no output for the sentence {sentence!r}"
        for word in words:
            try:
                pieces = self.target_pieces(sentence, word)
            except BiasprobeError as e:
                return e.message
            key = (sentence, tuple(pieces))
            if len(pieces) > 1 and key not in self._requests.chains:
                return self._no_chain(sentence, pieces)
        if prior is not None and _prior_key(prior) not in self._requests.priors:
            return self._no_prior(_prior_key(prior))
        return None


class Recorder(MaskedLMBackend):
    """Passes every request on to a live backend and keeps each answer, to write a recording.

    Scoring a probe set through it (:func:`biasprobe.runner.score_model`) makes exactly the
    requests a run of that set makes, in the same batches, so its recording (:meth:`write`)
    replays that run bit for bit (on the same device, with the same batch size: a forward pass
    over another batch may differ in the last bits).
    """

    def __init__(self, backend: MaskedLMBackend) -> None:
        self.backend = backend
        self.name = backend.name
        self.mask_token = backend.mask_token
        self.vocab = backend.vocab
        self.info = backend.info
        self.scores_priors = backend.scores_priors
        self.masks: dict[str, np.ndarray] = {}
        self.requests = RecordedRequests()

    def __getattr__(self, attr: str) -> Any:
        # what the live backend has beyond the MaskedLM protocol
        if attr == "backend":
            raise AttributeError(attr)
        return getattr(self.backend, attr)

    # -- the live backend's declared members --------------------------------------------------
    @property
    def reports_batches(self) -> bool:  # type: ignore[override]
        return self.backend.reports_batches

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.backend.batch_size

    @property
    def unk_id(self) -> int | None:  # type: ignore[override]
        return self.backend.unk_id

    @property
    def unk_token(self) -> str | None:  # type: ignore[override]
        return self.backend.unk_token

    @property
    def max_length(self) -> int | None:  # type: ignore[override]
        return self.backend.max_length

    @property
    def special_tokens(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.backend.special_tokens

    @property
    def special_ids(self) -> frozenset[int]:  # type: ignore[override]
        return self.backend.special_ids

    @property
    def tokenizer(self) -> Any:  # type: ignore[override]
        return self.backend.tokenizer

    def prior_request(
        self, prior_sentence: str, attribute: str, mask_index: int, word: str
    ) -> tuple[list[int], int, list[int]] | None:
        return self.backend.prior_request(prior_sentence, attribute, mask_index, word)

    def missing(
        self, sentence: str, words: Sequence[str], prior: Sequence[Any] | None = None
    ) -> str | None:
        return self.backend.missing(sentence, words, prior)

    def token_logprobs(self, requests: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
        return self.backend.token_logprobs(requests)

    def mask_logprobs(self, sentences: Sequence[str]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.mask_logprobs`."""
        values = self.backend.mask_logprobs(sentences)
        for sentence, row in zip(sentences, values):
            self.masks.setdefault(sentence, np.array(row, dtype=np.float32))
        return values

    def target_pieces(self, sentence: str, word: str) -> list[int]:
        """See :meth:`MaskedLMBackend.target_pieces`."""
        pieces = self.backend.target_pieces(sentence, word)
        self.requests.pieces[(sentence, word)] = [int(p) for p in pieces]
        return pieces

    def chain_logprobs(self, requests: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.chain_logprobs`."""
        values = self.backend.chain_logprobs(requests)
        for (sentence, pieces), value in zip(requests, values):
            self.requests.chains[(sentence, tuple(int(p) for p in pieces))] = float(value)
        return values

    def prior_text(self, prior_sentence: str, attribute: str, mask_index: int, word: str) -> str:
        """The wrapped model's :meth:`prior_text`, kept for the recording."""
        request = (prior_sentence, attribute, mask_index, word)
        scored = self.backend.prior_text(*request)
        self.requests.prior_texts[_prior_key(request)] = scored
        return scored

    def prior_logprobs(self, requests: Sequence[tuple[str, str, int, str]]) -> np.ndarray:
        """See :meth:`MaskedLMBackend.prior_logprobs`."""
        values = self.backend.prior_logprobs(requests)
        for request, value in zip(requests, values):
            self.requests.priors[_prior_key(request)] = float(value)
        return values

    def token_ids(self, sentences: Sequence[str]) -> list[list[int]] | None:
        """See :meth:`MaskedLMBackend.token_ids`."""
        return self.backend.token_ids(sentences)

    def unknown_words(self, sentence: str) -> list[str]:
        """See :meth:`MaskedLMBackend.unknown_words`."""
        return self.backend.unknown_words(sentence)

    def write(self, folder: str | Path, **kw: Any) -> Path:
        """Write what was asked and answered as a recording (:func:`write_recorded`; ``kw``:
        its ``model``, ``source``, ``hf_tokenizer``, ... ).

        Raises:
            ValueError: a target of several pieces was never scored.
        """
        sentences = list(self.masks)
        matrix = (
            np.stack([self.masks[s] for s in sentences])
            if sentences
            else np.empty((0, len(self.vocab)), np.float32)
        )
        targets = []
        for (sentence, word), pieces in self.requests.pieces.items():
            if len(pieces) == 1:
                value = float(self.masks[sentence][pieces[0]])
            else:
                value = self.requests.chains[(sentence, tuple(pieces))]
            targets.append({"sentence": sentence, "word": word, "pieces": pieces, "logprob": value})
        priors = [
            {"prior_sentence": p, "attribute": a, "mask_index": m, "word": w, "logprob": v}
            | {"scored_sentence": self.requests.prior_texts.get((p, a, m, w), "")}
            for (p, a, m, w), v in self.requests.priors.items()
        ]
        return write_recorded(
            folder,
            sentences=sentences,
            logprobs=matrix,
            vocab=self.vocab,
            mask_token=self.mask_token,
            targets=targets,
            priors=priors,
            **kw,
        )


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
    targets: Sequence[Mapping[str, Any]] = (),
    priors: Sequence[Mapping[str, Any]] = (),
    model_info: Mapping[str, Any] | None = None,
) -> Path:
    """Write a recorded-model folder (format 2, atomically) from outputs at the mask.

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
        targets: ``{"sentence", "word", "pieces", "logprob"}`` per target word and sentence
            (``logprob``: the chain-rule log-prob for several pieces, the value at the mask
            for one).
        priors: ``{"prior_sentence", "attribute", "mask_index", "word", "logprob"}`` per
            prior request (:meth:`MaskedLMBackend.prior_logprobs`), optionally with
            ``"scored_sentence"`` (the prior as the model scored it).
        model_info: the original model's provenance (commit hash, class, ...).

    Raises:
        ValueError: the shapes disagree, a token holds a newline, or a target's sentence is
            not one of ``sentences``.
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
    known = set(sentences)
    stray = next((t["sentence"] for t in targets if t["sentence"] not in known), None)
    if stray is not None:
        raise ValueError(f"target sentence {stray!r} is not one of the recorded sentences")
    card: dict[str, Any] = {
        "format": FORMAT,
        "model": model,
        "mask_token": mask_token,
        "values": values,
        "tokenizer": tokenizer,
        "source": source,
        "license": license,
        "n_sentences": len(sentences),
        "vocab_size": len(vocab),
        "n_targets": len(targets),
        "n_priors": len(priors),
    }
    if model_info:
        card["model_info"] = dict(model_info)
    if hf_tokenizer is not None:
        card["tokenizer"] = {"type": "hf", "path": "tokenizer"}
    with fsio.staging_dir(out) as tmp:
        if hf_tokenizer is not None:
            hf_tokenizer.save_pretrained(str(tmp / "tokenizer"))
        card_json = json.dumps(card, indent=2, ensure_ascii=False, default=str)
        (tmp / "model.json").write_text(card_json + "\n", encoding="utf-8")
        (tmp / "vocab.txt").write_text("".join(f"{t}\n" for t in vocab), encoding="utf-8")
        np.savez_compressed(
            tmp / "outputs.npz", sentences=np.array(list(sentences), dtype=np.str_), values=arr
        )
        (tmp / REQUESTS_JSON).write_text(_requests_json(targets, priors), encoding="utf-8")
        (tmp / "README.md").write_text(
            _readme(card, sentences, card_text, targets), encoding="utf-8"
        )
        files = [f for f in fsio.list_files(tmp) if f != fsio.STAGING_MARKER]
        fsio.write_manifest(tmp, "recording", f"{model} ({len(sentences)} sentences)", files)
        fsio.replace_dir(tmp, out, overwrite=False, kinds=("recording",), what="recording")
    return out


def _requests_json(targets: Sequence[Mapping[str, Any]], priors: Sequence[Mapping[str, Any]]):
    """``requests.json``: one entry per line. Floats are written as Python's shortest repr,
    which reads back to the same float64."""

    def entry(fields: Mapping[str, Any]) -> str:
        return json.dumps(fields, ensure_ascii=False)

    t = [
        entry(
            {
                "sentence": str(x["sentence"]),
                "word": str(x["word"]),
                "pieces": [int(p) for p in x["pieces"]],
                "logprob": float(x["logprob"]),
            }
        )
        for x in targets
    ]
    p = [
        entry(
            {
                "prior_sentence": str(x["prior_sentence"]),
                "attribute": str(x["attribute"]),
                "mask_index": int(x["mask_index"]),
                "word": str(x["word"]),
                "logprob": float(x["logprob"]),
            }
            | ({"scored_sentence": str(x["scored_sentence"])} if x.get("scored_sentence") else {})
        )
        for x in priors
    ]

    def block(rows: list[str]) -> str:
        return "[\n" + ",\n".join(f"  {r}" for r in rows) + "\n ]" if rows else "[]"

    return '{\n "targets": ' + block(t) + ',\n "priors": ' + block(p) + "\n}\n"


def _readme(
    card: dict[str, Any],
    sentences: Sequence[str],
    card_text: str,
    targets: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The model card of a recording (README.md)."""
    multi = sorted({str(t["word"]) for t in targets if len(t["pieces"]) > 1})
    lines = [
        f"# Recorded outputs of `{card['model']}`",
        "",
        f"{len(sentences)} sentences, {card['vocab_size']}-token vocabulary, values: "
        f"{card['values']} at the mask ({card['mask_token']}).",
        "",
        f"Recording format: {card['format']}. {card.get('n_targets', 0)} target words at their "
        f"sentences ({len(multi)} distinct words of several pieces, scored by the chain rule"
        f"{': ' + ', '.join(multi) if multi else ''}); {card.get('n_priors', 0)} prior "
        "log-probs (attribute pairs). They are in requests.json.",
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
