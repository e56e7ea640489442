"""Run-folder plumbing shared by every kind of run (fill-mask, counterfactual, CrowS-Pairs).

A run folder is written in one piece (:func:`save_run_folder`: the folder is checked, the files
go to a hidden staging sibling, ``results.json`` and biasprobe's manifest are added, and the
folder is renamed into place) and read back with :func:`read_meta` (``results.json`` of the
expected kind; :func:`read_json` for any JSON file of a run folder) and :func:`read_table` (CSV tables whose text columns stay text). Provenance
comes from :func:`provenance` (run id, date, installed versions read from package metadata, so
that asking never imports torch). Standard library, numpy, pandas and :mod:`biasprobe.fsio` only.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import platform
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from biasprobe import fsio
from biasprobe.errors import BiasprobeError, RunFolderError
from biasprobe.version import __version__

__all__ = [
    "RESULTS_JSON",
    "check_meta",
    "default_report_path",
    "inside",
    "name_part",
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
    replaces: Collection[str] = (),
) -> Path:
    """Write a run folder atomically: ``write(tmp)`` fills it, then ``results.json`` (``meta``)
    and biasprobe's manifest (``kind``, listing every file) are added and it is moved into place.
    With ``overwrite``, a folder whose manifest has ``kind`` or one of ``replaces`` is replaced.

    Raises:
        OutputError: the folder exists without ``overwrite`` or cannot be written.
        NotOwnedError: ``overwrite`` was asked for a folder biasprobe did not write.
    """
    out = Path(out_dir)
    kinds = (kind, *replaces)
    fsio.check_output_folder(out, overwrite, kinds=kinds, what=what)
    with fsio.staging_dir(out) as tmp:
        write(tmp)
        text = json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n"
        (tmp / RESULTS_JSON).write_text(text, encoding="utf-8")
        files = [f for f in fsio.list_files(tmp) if f != fsio.STAGING_MARKER]
        fsio.write_manifest(tmp, kind, str(meta.get("run_id", "")), files)
        fsio.replace_dir(tmp, out, overwrite=overwrite, kinds=kinds, what=what)
    return out


def save_tables(
    out_dir: str | Path,
    meta: dict[str, Any],
    tables: Mapping[str, Any],
    *,
    report: Callable[[Path], Any] | None = None,
    **options: Any,
) -> Path:
    """:func:`save_run_folder` of a folder of tables: each DataFrame of ``tables`` as
    ``NAME.csv``, then ``report(path)`` (when given) writes ``report.html``. ``options``: those
    of :func:`save_run_folder` (``kind``, ``what``, ``overwrite``, ``replaces``)."""

    def write(tmp: Path) -> None:
        for name, frame in tables.items():
            frame.to_csv(tmp / f"{name}.csv", index=False)
        if report is not None:
            report(tmp / "report.html")

    return save_run_folder(out_dir, meta, write, **options)


#: Deepest nesting of lists and objects accepted in a run folder's JSON (biasprobe writes < 10).
MAX_JSON_DEPTH = 64
#: Settings a report uses as numbers: (smallest, largest, integer?) when the setting is present.
SETTING_RANGES: dict[str, tuple[float, float, bool]] = {
    "confidence": (0.0, 1.0, False),
    "bootstrap_resamples": (1, 100_000, True),
    "n_bootstrap": (1, 100_000, True),
    "seed": (0, 2**32 - 1, True),
    "top_k": (1, 10**9, True),
    "store_top_n": (1, 10**9, True),
    "rbo_p": (0.0, 1.0, False),
}


def _too_deep(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists/objects more than ``limit`` levels (no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def inside(folder: Path, rel: Any) -> Path:
    """``folder / rel``, refusing any path that leads outside ``folder`` (symlinks resolved).

    A run folder's ``results.json`` names its files; a shared or edited folder must not be able
    to pull another file's contents into a report.
    """
    if not isinstance(rel, str) or not rel:
        raise RunFolderError(f"{folder / RESULTS_JSON}: bad file entry {rel!r}")
    root = folder.resolve()
    path = (folder / rel).resolve()
    if not path.is_relative_to(root):
        raise RunFolderError(
            f"{folder / RESULTS_JSON} names {rel!r}, which lies outside the run folder "
            f"({path}); only files inside {folder} are read"
        )
    return path


#: Longest part of a default file name taken from a run folder's text.
MAX_NAME_PART = 60


def name_part(text: Any, fallback: str) -> str:
    """A safe piece of a file name made from text read out of a run folder (a probe set's name,
    a run id): letters, digits, ``.``, ``_`` and ``-`` only, never starting with a dot (so no
    ``..``, no ``/``, no absolute path, no hidden file), at most :data:`MAX_NAME_PART`
    characters; ``fallback`` when nothing is left."""
    import re

    part = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text) if isinstance(text, str | int) else "")
    part = part[:MAX_NAME_PART].strip("._-")
    return part or fallback


def default_report_path(set_name: Any, run_id: Any) -> Path:
    """``reports/<set>-<run id>.html`` with both parts made safe by :func:`name_part`: always a
    file directly inside ``reports/``, whatever a shared or edited ``results.json`` holds."""
    return Path("reports") / f"{name_part(set_name, 'probes')}-{name_part(run_id, 'run')}.html"


def read_json(run_dir: str | Path, name: str, *, missing: str) -> dict[str, Any]:
    """The JSON object in the file ``name`` of the folder ``run_dir``.

    Only a regular file is read (a FIFO in its place is refused at once, never waited on).

    Raises:
        RunFolderError: the folder does not exist; the file is missing (message ``missing``),
            not a regular file, unreadable, not a JSON object, or nested more than
            :data:`MAX_JSON_DEPTH` levels.
    """
    d = Path(run_dir)
    path = d / name
    if not d.is_dir():
        raise RunFolderError(f"run folder {d} does not exist")
    if not os.path.lexists(path):
        raise RunFolderError(missing)
    try:
        data = json.loads(fsio.read_regular_text(path, what=name))
    except BiasprobeError as e:  # not a regular file
        raise RunFolderError(f"cannot read {path}: {e}") from None
    except (OSError, ValueError) as e:
        raise RunFolderError(f"cannot read {path}: {e}") from None
    except RecursionError:
        raise RunFolderError(f"{path}: nested more deeply than JSON can be read") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} is not a JSON object")
    if _too_deep(data, MAX_JSON_DEPTH):
        raise RunFolderError(
            f"{path}: nested more than {MAX_JSON_DEPTH} levels deep; biasprobe writes no such file"
        )
    return data


def check_meta(meta: dict[str, Any], path: Path, *, models: bool = True) -> None:
    """Check the fields of a ``results.json`` that readers and reports rely on.

    ``run_id`` and ``created`` are text; ``probe_set``, ``settings``, ``versions`` and ``files``
    are objects; every number in ``settings`` is finite, and those of :data:`SETTING_RANGES` in
    range; with ``models``, ``models`` is a non-empty list of objects with distinct text names.

    Raises:
        RunFolderError: the first problem, naming ``path``.
    """

    def bad(what: str) -> RunFolderError:
        return RunFolderError(f"{path}: {what}; the run folder was edited or damaged")

    for key in ("run_id", "created"):
        if key in meta and not isinstance(meta[key], str):
            raise bad(f"{key} must be text, found {type(meta[key]).__name__}")
    for key in ("probe_set", "settings", "versions", "files"):
        if key in meta and not isinstance(meta[key], dict):
            raise bad(f"{key} must be an object, found {type(meta[key]).__name__}")
    ps = meta.get("probe_set") or {}
    if isinstance(ps.get("name"), dict | list):
        raise bad("probe_set.name must be text")
    arbitrary = ps.get("arbitrary_orientation")
    if arbitrary is not None and not (
        isinstance(arbitrary, list) and all(isinstance(t, str) for t in arbitrary)
    ):
        raise bad("probe_set.arbitrary_orientation must be a list of template ids")
    for key, value in (meta.get("settings") or {}).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise bad(f"settings.{key} is {value}, not a finite number")
        if key in SETTING_RANGES and value is not None:
            lo, hi, integer = SETTING_RANGES[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and lo <= value <= hi and (not integer or float(value).is_integer())
            if not ok:
                kind = "an integer" if integer else "a number"
                raise bad(f"settings.{key} must be {kind} from {lo} to {hi}, found {value!r}")
    if not models:
        return
    entries = meta.get("models")
    if not isinstance(entries, list) or not entries:
        raise bad(f"models must be a non-empty list of models, found {entries!r:.60}")
    names = []
    for k, m in enumerate(entries):
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise bad(f"models[{k}] must be an object with a name (text), found {m!r:.60}")
        if m["name"] in names:
            raise bad(f"models[{k}]: the model {m['name']!r} is listed twice")
        names.append(m["name"])


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


def read_table(
    path: Path,
    text_columns: Collection[str],
    *,
    required: Collection[str] = (),
    numbers: Collection[str] = (),
    counts: Collection[str] = (),
    filled: Collection[str] = (),
) -> Any:
    """Read a run table: empty cells are missing numbers, but ``text_columns`` stay text
    (tokens such as ``null``, ``nan`` or ``1908`` are words, not missing values or numbers).

    Only a regular file is read. The columns ``required`` must be there; those of ``numbers``
    (when present) hold numbers, finite or missing; those of ``counts`` whole numbers ≥ 0 or
    missing; those of ``filled`` no missing value.

    Raises:
        RunFolderError: naming the file (and the column and line) of the first problem.
    """
    import numpy as np
    import pandas as pd

    try:
        data = fsio.read_regular_bytes(path, what="run table")
    except BiasprobeError as e:  # not a regular file
        raise RunFolderError(f"cannot read {path}: {e}") from None
    except OSError as e:
        raise RunFolderError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        columns = pd.read_csv(io.BytesIO(data), nrows=0).columns
        table = pd.read_csv(
            io.BytesIO(data),
            keep_default_na=False,
            na_values={c: [""] for c in columns if c not in text_columns},
            dtype={c: str for c in columns if c in text_columns},
        )
    except (ValueError, OverflowError, csv.Error) as e:  # parser errors, bad UTF-8, no columns
        raise RunFolderError(f"cannot read {path}: {str(e).strip() or type(e).__name__}") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise RunFolderError(
            f"{path}: column{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing; "
            "the run folder was edited or damaged"
        )
    if table.columns.duplicated().any():
        raise RunFolderError(f"{path}: a column name appears twice")
    for col in dict.fromkeys([*numbers, *counts, *filled]):
        if col not in table.columns:
            continue
        raw = table[col]
        if col in numbers or col in counts:
            if raw.dtype.kind in "iufb":  # parsed as numbers already: the common, fast case
                values = raw.astype(float)
                wrong = np.isinf(values)
            else:  # some cell is not a number: find it (a written "nan" is a missing value)
                values = pd.to_numeric(raw, errors="coerce").astype(float)
                wrong = np.isinf(values)
                unread = values.isna() & raw.notna()
                if unread.any():
                    text = raw[unread].astype(str).str.strip().str.lower()
                    wrong |= unread & ~text.reindex(raw.index).isin(["nan"]).fillna(False)
            if col in counts:
                whole = values.isna() | ((values >= 0) & (values == np.floor(values)))
                wrong |= ~whole
            if wrong.any():
                at = int(np.flatnonzero(wrong.to_numpy())[0])
                kind = "a whole number ≥ 0" if col in counts else "a finite number"
                raise RunFolderError(
                    f"{path}:{at + 2}: column {col}: expected {kind}, found {raw.iloc[at]!r}"
                )
            if raw.dtype.kind not in "iufb":
                table[col] = values  # text "nan" cells read as missing numbers
        if col in filled and table[col].isna().any():
            at = int(np.flatnonzero(table[col].isna().to_numpy())[0])
            raise RunFolderError(f"{path}:{at + 2}: column {col}: a value is missing")
    return table
