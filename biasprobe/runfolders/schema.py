"""The one run-folder format of every kind of audit (``biasprobe-run/2``).

``results.json`` of every kind starts with the same keys:

| key | content |
|---|---|
| ``format`` | ``"biasprobe-run/2"`` |
| ``kind`` | ``fill-mask``, ``counterfactual``, ``crows-pairs`` or ``holistic-bias`` |
| ``run_id``, ``created`` | run id (date, time, random suffix) and UTC time (ISO) |
| ``versions`` | biasprobe, Python and the libraries that computed the numbers |
| ``models`` | one provenance block per model, in run order (the first is the base): the keys of :data:`MODEL_KEYS` for every kind, then the kind's own |
| ``settings`` | the options the numbers depend on |
| ``files`` | the file of each table |

then the kind's own (``probe_set``; CrowS: ``scoring``, ``metric``, ``data`` …).

``summary.csv`` of every kind starts with :data:`SUMMARY_COLUMNS` (a column a kind does not
compute is there and empty), then the kind's own columns; ``comparison.csv`` (every run of
several models) starts with :data:`COMPARISON_COLUMNS`. The biasprobe manifest of every run
folder has kind ``run``.

Run folders written before this format (no ``format`` key) still load: :func:`upgrade_meta`
absorbs their differences (see its docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from biasprobe.errors import RunFolderError
from biasprobe.runfolder import provenance

__all__ = [
    "COMPARISON_COLUMNS",
    "FORMAT",
    "KINDS",
    "MANIFEST_KIND",
    "MANIFEST_KINDS",
    "MODEL_KEYS",
    "SUMMARY_COLUMNS",
    "head",
    "kind_of",
    "leading",
    "model_block",
    "upgrade_meta",
]

FORMAT = "biasprobe-run/2"
KINDS = ("fill-mask", "counterfactual", "crows-pairs", "holistic-bias")
#: The manifest kind of every run folder written now.
MANIFEST_KIND = "run"
#: Manifest kinds ``--overwrite`` accepts: today's, and those of run folders written before the
#: one format (counterfactual runs said ``downstream-run``, CrowS runs ``crows-pairs``).
MANIFEST_KINDS = ("run", "downstream-run", "crows-pairs")
#: ``kind`` of ``results.json`` in run folders written before the one format → today's kind
#: (fill-mask run folders had none).
OLD_KINDS = {None: "fill-mask", "downstream": "counterfactual", "crows-pairs": "crows-pairs"}
#: Model family each kind runs.
FAMILY = {
    "fill-mask": "masked-lm",
    "counterfactual": "classifier",
    "crows-pairs": "masked-lm",
    "holistic-bias": "sentence-scorer",
}

#: Keys of every model's provenance block, for every kind: the name the run gives it (an alias
#: with ``NAME=MODEL``), its family, what was asked for (hub id, folder, ``recorded:DIR``), the
#: model an alias stands for (else null) and the backend's own provenance (files, hashes,
#: revision, device, cache).
MODEL_KEYS = ("name", "family", "requested", "alias_of", "info")

SUMMARY_COLUMNS = (
    *("model", "level", "key", "score", "mean", "ci_low", "ci_high", "n"),
    *("p_value", "p_holm", "templates", "note"),
)
COMPARISON_COLUMNS = (
    *("model", "base", "level", "key", "score", "base_mean", "model_mean", "change"),
    *("ci_low", "ci_high", "n", "p_value", "templates", "note"),
)


def head(kind: str) -> dict[str, Any]:
    """The first keys of a new ``results.json``: ``format``, ``kind``, ``run_id``, ``created``
    and ``versions``."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}; expected one of {', '.join(KINDS)}")
    return {"format": FORMAT, "kind": kind, **provenance()}


def model_block(
    name: str,
    family: str,
    info: dict[str, Any] | None,
    *,
    requested: str | None = None,
    alias_of: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One model's provenance block: :data:`MODEL_KEYS`, then ``extra`` (the kind's own)."""
    info = dict(info or {})
    asked = requested or alias_of or info.get("requested") or name
    return {
        "name": name,
        "family": family,
        "requested": str(asked),
        "alias_of": alias_of,
        "info": info,
        **extra,
    }


def leading(frame: Any, columns: Sequence[str]) -> Any:
    """``frame`` with ``columns`` first, in that order (a missing one added, empty), then its
    other columns in their order."""
    import numpy as np

    out = frame.copy()
    for col in columns:
        if col not in out.columns:
            out[col] = np.nan
    rest = [c for c in out.columns if c not in columns]
    return out[[*columns, *rest]]


def kind_of(meta: dict[str, Any], where: Any) -> str:
    """The kind of a run folder's ``results.json`` (old kinds mapped to today's).

    Raises:
        RunFolderError: a kind biasprobe never wrote, naming ``where``.
    """
    kind = meta.get("kind")
    if kind in KINDS:
        return str(kind)
    if "format" not in meta and (kind is None or isinstance(kind, str)) and kind in OLD_KINDS:
        return OLD_KINDS[kind]
    raise RunFolderError(
        f"{where}: unknown run kind {str(kind)[:40]!r}; biasprobe writes {', '.join(KINDS)}"
    )


def upgrade_meta(meta: dict[str, Any], where: Any) -> dict[str, Any]:
    """``results.json`` of any run folder biasprobe wrote, in today's format.

    What is absorbed from run folders written before ``biasprobe-run/2``: no ``format`` key;
    fill-mask runs without ``kind``; ``kind: downstream`` (now ``counterfactual``); CrowS runs
    with one ``model`` object (the backend's provenance) instead of a ``models`` list; model
    blocks without ``family``, ``requested`` or ``alias_of``. Run folders of today's format are
    returned as they are (a copy).

    Raises:
        RunFolderError: an unknown kind, or a CrowS ``model`` that is not an object.
    """
    kind = kind_of(meta, where)
    out = dict(meta)
    if out.get("format") == FORMAT:
        return out
    out["format"] = FORMAT
    out["kind"] = kind
    if kind == "crows-pairs" and "models" not in out:
        model = out.pop("model", {})
        if not isinstance(model, dict):
            raise RunFolderError(f"{where}: model must be an object; the run folder was edited")
        name = str(model.get("name") or model.get("requested") or "model")
        out["models"] = [model_block(name, FAMILY[kind], model)]
    models = out.get("models")
    if isinstance(models, list):
        upgraded = []
        for m in models:
            if isinstance(m, dict) and isinstance(m.get("name"), str):
                info = m.get("info") if isinstance(m.get("info"), dict) else {}
                m = {
                    "name": m["name"],
                    "family": m.get("family", FAMILY[kind]),
                    "requested": str(
                        m.get("requested")
                        or m.get("alias_of")
                        or info.get("requested")
                        or m["name"]
                    ),
                    "alias_of": m.get("alias_of"),
                    "info": info,
                    **{k: v for k, v in m.items() if k not in MODEL_KEYS},
                }
            upgraded.append(m)
        out["models"] = upgraded
    return out
