"""Run-folder plumbing shared by the CrowS-Pairs and downstream runs.

A run folder is written in one piece (:func:`save_run_folder`: the folder is checked, the files
go to a hidden staging sibling, ``results.json`` and biasprobe's manifest are added, and the
folder is renamed into place) and read back with :func:`read_meta` (``results.json`` of the
expected kind; :func:`read_json` for any JSON file of a run folder) and :func:`read_table` (CSV tables whose text columns stay text). Provenance
comes from :func:`provenance` (run id, date, installed versions read from package metadata, so
that asking never imports torch). Standard library, pandas and :mod:`biasprobe.fsio` only.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import uuid
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

from biasprobe import __version__, fsio
from biasprobe.errors import RunFolderError

__all__ = [
    "RESULTS_JSON",
    "provenance",
    "read_json",
    "read_meta",
    "read_table",
    "save_run_folder",
    "versions",
]

RESULTS_JSON = "results.json"
VERSIONED = ("torch", "transformers", "numpy", "pandas", "scipy")


def versions(modules: Iterable[str] = VERSIONED) -> dict[str, str]:
    """Installed versions of biasprobe, Python and ``modules`` (from package metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"biasprobe": __version__, "python": platform.python_version()}
    for mod in modules:
        try:
            out[mod] = version(mod)
        except PackageNotFoundError:  # pragma: no cover - optional
            out[mod] = "not installed"
    return out


def provenance(now: _dt.datetime | None = None) -> dict[str, Any]:
    """``run_id`` (date, time and a random suffix), ``created`` (UTC, ISO) and ``versions``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return {
        "run_id": f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        "created": now.isoformat(timespec="seconds"),
        "versions": versions(),
    }


def save_run_folder(
    out_dir: str | Path,
    meta: dict[str, Any],
    write: Callable[[Path], Any],
    *,
    kind: str,
    what: str,
    overwrite: bool = False,
) -> Path:
    """Write a run folder atomically: ``write(tmp)`` fills it, then ``results.json`` (``meta``)
    and biasprobe's manifest (``kind``, listing every file) are added and it is moved into place.

    Raises:
        OutputError: the folder exists without ``overwrite`` or cannot be written.
        NotOwnedError: ``overwrite`` was asked for a folder biasprobe did not write.
    """
    out = Path(out_dir)
    fsio.check_output_folder(out, overwrite, kinds=(kind,), what=what)
    with fsio.staging_dir(out) as tmp:
        write(tmp)
        text = json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n"
        (tmp / RESULTS_JSON).write_text(text, encoding="utf-8")
        files = [f for f in fsio.list_files(tmp) if f != fsio.STAGING_MARKER]
        fsio.write_manifest(tmp, kind, str(meta.get("run_id", "")), files)
        fsio.replace_dir(tmp, out, overwrite=overwrite, kinds=(kind,), what=what)
    return out


def read_json(run_dir: str | Path, name: str, *, missing: str) -> dict[str, Any]:
    """The JSON object in the file ``name`` of the folder ``run_dir``.

    Raises:
        RunFolderError: the folder does not exist; the file is missing (message ``missing``),
            unreadable or not a JSON object.
    """
    d = Path(run_dir)
    path = d / name
    if not d.is_dir():
        raise RunFolderError(f"run folder {d} does not exist")
    if not path.is_file():
        raise RunFolderError(missing)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunFolderError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} is not a JSON object")
    return data


def read_meta(run_dir: str | Path, kind: str | None, what: str) -> dict[str, Any]:
    """The ``results.json`` of a run folder whose ``kind`` is ``kind`` (``what`` names it;
    ``kind=None``: any JSON object, as for fill-mask run folders, whose results.json has none).

    Raises:
        RunFolderError: the folder or its ``results.json`` is missing, unreadable or of another
            kind.
    """
    d = Path(run_dir)
    missing = f"{d} is not a biasprobe run folder: {RESULTS_JSON} is missing"
    meta = read_json(d, RESULTS_JSON, missing=missing)
    if kind is not None and meta.get("kind") != kind:
        raise RunFolderError(f"{d} is not a {what} ({RESULTS_JSON} has no kind: {kind})")
    return meta


def read_table(path: Path, text_columns: Collection[str]) -> Any:
    """Read a run table: empty cells are missing numbers, but ``text_columns`` stay text
    (tokens such as ``null``, ``nan`` or ``1908`` are words, not missing values or numbers)."""
    import pandas as pd

    columns = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(
        path,
        keep_default_na=False,
        na_values={c: [""] for c in columns if c not in text_columns},
        dtype={c: str for c in columns if c in text_columns},
    )
