"""Writing the expanded HolisticBias sentences to a CSV or Parquet file, atomically and without
ever replacing an existing file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from biasprobe import fsio
from biasprobe.errors import OutputError, UsageError
from biasprobe.holistic.dataset import data_dir, sentences

#: File suffix → format.
FORMATS = {".csv": "csv", ".parquet": "parquet"}
#: What to install for Parquet (the optional extra of pyproject.toml).
PARQUET_HINT = "pip install 'biasprobe[parquet]' (pyarrow)"


def output_format(path: str | Path) -> str:
    """``csv`` or ``parquet`` from the file name's suffix.

    Raises:
        UsageError: another suffix, or Parquet without pyarrow installed (the message names the
            ``parquet`` extra).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"cannot tell the format of {path}: the file name must end in "
            f"{' or '.join(FORMATS)} (got {suffix or 'no suffix'!r})"
        )
    fmt = FORMATS[suffix]
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError(
                f"writing Parquet ({path}) needs pyarrow, which is not installed: "
                f"{PARQUET_HINT}; or write a .csv file"
            ) from None
    return fmt


def write_sentences(path: str | Path, version: str = "v1.1") -> Path:
    """Write :func:`~biasprobe.holistic.dataset.sentences` to ``path`` (``.csv`` or
    ``.parquet``) and return the path.

    The file is written into a staging folder beside ``path`` and linked into place only when
    complete; the link never replaces anything, so an existing file (or one that appears while
    the table is written) is left untouched. CSV: UTF-8, a header row, no index, booleans as
    ``True``/``False`` (as the dataset's generator writes it); read it back with
    ``pandas.read_csv(path, keep_default_na=False)`` so that the axis ``null`` stays a string.

    Raises:
        UsageError: unknown suffix or version, Parquet without pyarrow.
        NotOwnedError: ``path`` exists (exit code 2): biasprobe replaces only files it can tell
            are its own, and it cannot tell that of a data file.
        OutputError: the file cannot be written.
    """
    out = Path(path)
    fmt = output_format(out)
    data_dir(version)  # an unknown version fails before any work
    _refuse_existing(out)
    fsio.check_can_create(out, what="output file")
    frame = sentences(version)
    with fsio.staging_dir(out) as tmp:
        part = tmp / "sentences"
        try:
            if fmt == "csv":
                frame.to_csv(part, index=False, encoding="utf-8")
            else:
                frame.to_parquet(part, index=False, engine="pyarrow")
            os.chmod(part, fsio.shared_mode())
        except OSError as e:
            raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
        _link_into_place(part, out)
    return out


def _refuse_existing(out: Path) -> None:
    if os.path.lexists(out):
        kind = "a folder" if out.is_dir() else "a file"
        raise fsio.NotOwnedError(
            f"refusing to overwrite {out}: {kind} is already there and biasprobe never replaces "
            f"a data file; choose another output path (or remove it yourself)"
        )


def _link_into_place(part: Path, out: Path) -> None:
    """Put the finished ``part`` at ``out`` without replacing anything that is there."""
    try:
        os.link(part, out)  # fails if anything is at ``out``
        return
    except FileExistsError:
        _refuse_existing(out)
        raise
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    # No hard links here: a rename onto a path checked just before.
    _refuse_existing(out)
    try:
        os.rename(part, out)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
