"""The training text of ``biasprobe debias``: corpus, sentences, CDA, and token masking.

A corpus is a UTF-8 text file or a folder of ``*.txt`` files (read in sorted order, recursively);
each non-empty line is a document, split into sentences at ``.``, ``!`` or ``?`` followed by
a space and an upper-case letter or a quote. Its identity is a sha256: of the file's bytes, or,
for a folder, of the sorted list of (relative path, file sha256).

CDA is two-sided (Webster et al. 2020, bias-bench): each sentence holding an attribute word of
the axis is kept **and** followed by its counterfactual (:mod:`biasprobe.sentiment.cda`); for
an axis of k groups (race, religion: three) by its k − 1 counterfactuals, one per other group.
Sentences without any attribute word are kept by default (``neutral="keep"``): continued
training on them holds the model's general fill-mask quality, and a small corpus would lose
most of its text otherwise. ``neutral="drop"`` keeps only the attribute sentences and their
twins, as bias-bench does.

Masking follows BERT: 15% of the non-special tokens are chosen; of those 80% become the mask
token, 10% a random token and 10% stay. Every draw comes from a generator seeded by the run's
seed and the step, so a step's batch and masks depend on nothing else (resume is exact).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from biasprobe.errors import UsageError
from biasprobe.fsio import NotRegularFileError, read_regular_bytes

__all__ = [
    "METHODS",
    "Corpus",
    "build_texts",
    "mask_tokens",
    "read_corpus",
    "split_sentences",
    "step_seed",
]

METHODS = ("cda", "dropout", "none")
MASK_PROB = 0.15
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'“‘(\[]?[A-Z0-9])")
#: Largest corpus read (bytes): text beyond this belongs in a streaming pipeline.
MAX_CORPUS_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Corpus:
    """Sentences of a corpus and what identifies it."""

    path: str
    sha256: str
    files: int
    sentences: list[str]


def split_sentences(line: str) -> list[str]:
    """Split one line of text into sentences (whitespace collapsed, empty ones dropped)."""
    text = " ".join(line.split())
    return [s for s in _SENTENCE_END.split(text) if s.strip()] if text else []


def _read(path: Path, rel: str) -> bytes:
    try:
        return read_regular_bytes(path, limit=MAX_CORPUS_BYTES, what="corpus file")
    except NotRegularFileError:
        raise
    except OSError as e:
        raise UsageError(f"corpus file {rel}: cannot read it ({e.strerror or e})") from None


def read_corpus(path: str | Path) -> Corpus:
    """Read a text file or a folder of ``*.txt`` files into sentences.

    Raises:
        UsageError: the path is missing, not UTF-8 (``file:line``), or holds no text.
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"corpus {p} does not exist (give a text file or a folder of .txt files)")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.txt") if f.is_file())
        if not files:
            raise UsageError(f"corpus folder {p} holds no .txt files")
    else:
        files = [p]
    outer = hashlib.sha256()
    sentences: list[str] = []
    for f in files:
        rel = f.relative_to(p).as_posix() if p.is_dir() else str(p)
        data = _read(f, rel)
        digest = hashlib.sha256(data).hexdigest()
        if p.is_dir():
            outer.update(f"{rel}\t{digest}\n".encode())
        else:
            outer = hashlib.sha256(data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise UsageError(f"{f}:{line}: not UTF-8 text ({e.reason})") from None
        for line in text.splitlines():
            sentences.extend(split_sentences(line))
    if not sentences:
        raise UsageError(f"corpus {p} holds no text")
    return Corpus(str(p), outer.hexdigest(), len(files), sentences)


@dataclass(frozen=True)
class Texts:
    """The training texts and how they were made."""

    texts: list[str]
    with_terms: int  # sentences holding an attribute word
    added: int  # counterfactual twins added
    dropped: int  # sentences without attribute words dropped


def build_texts(
    sentences: Sequence[str], method: str, swapper=None, neutral: str = "keep"
) -> Texts:
    """The training texts of ``method``: for ``cda``, each sentence followed by its
    counterfactual twins (one per other group) when it holds an attribute word; sentences without one kept or dropped (``neutral``).

    Raises:
        UsageError: unknown method or ``neutral`` value, or CDA without a swapper.
    """
    if method not in METHODS:
        raise UsageError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if neutral not in ("keep", "drop"):
        raise UsageError(f"--neutral {neutral!r}: expected keep or drop")
    if method != "cda":
        return Texts(list(sentences), 0, 0, 0)
    if swapper is None:
        raise UsageError("CDA needs a word-pair list (an axis)")
    out: list[str] = []
    with_terms = added = dropped = 0
    for s in sentences:
        twins = swapper.counterfactuals(s)
        if twins or swapper.contains_term(s):
            with_terms += 1
            out.append(s)
            out.extend(twins)
            added += len(twins)
        elif neutral == "keep":
            out.append(s)
        else:
            dropped += 1
    if not out:
        raise UsageError(
            "CDA with --neutral drop left no training text: no sentence holds a word of the list"
        )
    return Texts(out, with_terms, added, dropped)


def step_seed(seed: int, step: int, stream: int) -> int:
    """A 63-bit seed for one purpose (``stream``) at one step of a run."""
    h = hashlib.sha256(f"{seed}:{step}:{stream}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def epoch_order(n: int, seed: int, epoch: int):
    """The order of the ``n`` examples in ``epoch`` (a permutation; depends on seed and epoch)."""
    import torch

    g = torch.Generator().manual_seed(step_seed(seed, epoch, 0))
    return torch.randperm(n, generator=g)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Example indices of the batch of ``step`` (0-based): the run walks through one shuffled
    epoch after another, so the data position is the step itself."""
    start = step * batch_size
    out: list[int] = []
    orders: dict[int, object] = {}
    for pos in range(start, start + batch_size):
        epoch, i = divmod(pos, n)
        if epoch not in orders:
            orders[epoch] = epoch_order(n, seed, epoch)
        out.append(int(orders[epoch][i]))  # type: ignore[index]
    return out


def mask_tokens(input_ids, special_mask, *, mask_id: int, vocab_size: int, generator):
    """BERT masking of a batch: returns ``(inputs, labels)``; labels are -100 where not chosen.

    Args:
        input_ids: ``(B, T)`` long tensor.
        special_mask: ``(B, T)`` bool tensor, True at special and padding tokens (never chosen).
        mask_id: the tokenizer's mask token id.
        vocab_size: random replacements are drawn from ``[0, vocab_size)``.
        generator: a seeded ``torch.Generator``.
    """
    import torch

    labels = input_ids.clone()
    prob = torch.full(input_ids.shape, MASK_PROB)
    prob.masked_fill_(special_mask, 0.0)
    chosen = torch.bernoulli(prob, generator=generator).bool()
    labels[~chosen] = -100
    inputs = input_ids.clone()
    to_mask = torch.bernoulli(torch.full(input_ids.shape, 0.8), generator=generator).bool() & chosen
    inputs[to_mask] = mask_id
    to_random = (
        torch.bernoulli(torch.full(input_ids.shape, 0.5), generator=generator).bool()
        & chosen
        & ~to_mask
    )
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, dtype=torch.long)
    inputs[to_random] = random_ids[to_random]
    return inputs, labels
