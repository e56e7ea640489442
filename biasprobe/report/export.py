"""Static figures (PNG, SVG or PDF) for papers: per pair and model the scatter and the
differences view, and per pair run on several models the side-by-side comparison of both.

Static export goes through plotly's image export, which needs the optional ``kaleido``
package (version 1 or later) and a Chrome or Chromium browser on the machine (for every
format, PDF included; nothing else is needed for PDF). Without them,
:class:`StaticExportError` says what to install.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from biasprobe import fsio
from biasprobe.errors import BiasprobeError, NotStoredError, OutputError, UsageError
from biasprobe.report.figures import VIEWS, PairPoints, comparison_figure, pair_figure
from biasprobe.report.pairdata import target_token_ids
from biasprobe.results import RunResult, model_slug

FORMATS = ("png", "svg", "pdf")
INSTALL_HINT = (
    "install the optional image exporter with `pip install 'kaleido>=1.1'` "
    "and a Chrome or Chromium browser (e.g. `apt-get install chromium`, or run "
    "`plotly_get_chrome`); set BROWSER_PATH if the browser is not on PATH"
)


class StaticExportError(BiasprobeError):
    """Static figures cannot be written: the image exporter or its browser is missing."""

    exit_code = 1


def export_figures(
    runs: Sequence[RunResult],
    out_dir: Path,
    fmt: Literal["png", "svg", "pdf"] = "png",
    *,
    top_n: int = 200,
    views: Sequence[str] = VIEWS,
    comparison: bool = True,
    scale: float = 2.0,
) -> list[Path]:
    """Write the static figures of every pair: per model, and side by side across models.

    Files, in ``out_dir`` (created if needed, with biasprobe's manifest of kind
    ``"figures"``): ``<pair-slug>__<model-slug>.<fmt>`` (scatter),
    ``<pair-slug>__<model-slug>__differences.<fmt>``, and for a pair that several models ran
    (same pair id and sentences, in one run or several) ``<pair-slug>__comparison.<fmt>`` and
    ``<pair-slug>__comparison__differences.<fmt>`` (one panel per model, one colour scale).
    Figures biasprobe wrote there before are replaced; any other file of the same name is
    never overwritten (``NotOwnedError``).

    Args:
        runs: run results; every model of every run is drawn.
        out_dir: folder for the figures.
        fmt: ``"png"``, ``"svg"`` or ``"pdf"``.
        top_n: draw the union of each side's top-``top_n`` tokens (and the target words).
        views: which of ``"scatter"`` and ``"differences"`` to draw.
        comparison: also draw the side-by-side comparison of pairs run on several models.
        scale: pixel scale of PNG output (2 = twice the figure's size in points).

    Returns:
        The paths written, per pair: each model's views, then the comparison.

    Raises:
        UsageError: unknown format or view, or a bad ``top_n``.
        StaticExportError: kaleido or a Chrome/Chromium browser is missing.
        OutputError: the folder cannot be written.
        NotOwnedError: a figure would replace a file biasprobe did not write.
    """
    if fmt not in FORMATS:
        raise UsageError(f"figure format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if isinstance(views, str):
        views = (views,)
    bad = [v for v in views if v not in VIEWS]
    if bad or not views:
        raise UsageError(f"figure views must be among {', '.join(VIEWS)}, got {list(views)!r}")
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise UsageError(f"top_n must be a positive integer, got {top_n!r}")
    out = Path(out_dir)
    figs, names = _pair_figures(runs, tuple(views), top_n, comparison)
    paths = [out / f"{name}.{fmt}" for name in names]
    listed = _check_figure_folder(out, paths)
    _check_exporter()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create figure folder {out}: {e.strerror or e}") from None
    if figs:
        _write_images(figs, paths, fmt, scale)
    fsio.write_manifest(out, "figures", "static figures", sorted(listed | {p.name for p in paths}))
    return paths


def _pair_figures(
    runs: Sequence[RunResult], views: tuple[str, ...], top_n: int, comparison: bool = True
) -> tuple[list, list[str]]:
    """The figures of every pair (per model, then compared) and their file names
    (without extension), unique."""
    names = [m for run in runs for m in run.models]
    # pair key (id, sentence A, sentence B) → groups and its panels (label, points, vocab, targets)
    pairs: dict[tuple[str, str, str], dict] = {}
    for r_i, run in enumerate(runs):
        for pid, rows in run.items.groupby("pair_id", sort=False):
            rows = rows.sort_values("side")
            groups = [str(g) for g in rows["group"]]
            if len(groups) != 2:
                continue
            key = (str(pid), *(str(t) for t in rows["template_sentence"]))
            entry = pairs.setdefault(key, {"id": str(pid), "groups": groups, "panels": []})
            for model in run.models:
                try:
                    frame = run.pair_tokens(model, str(pid))
                except KeyError:
                    continue
                label = model
                if names.count(model) > 1:
                    label = f"{model} [{run.meta.get('run_id', f'run {r_i + 1}')}]"
                targets = target_token_ids(run, model, str(pid))
                entry["panels"].append(
                    (
                        _points(run, model, str(pid), frame, top_n, targets),
                        run.vocab(model),
                        label,
                        targets,
                    )
                )
    ids = [p["id"] for p in pairs.values()]
    figs, stems, seen = [], [], set()

    def add(fig: object, stem: str) -> None:
        name, k = stem, 2
        while name in seen:
            name, k = f"{stem}-{k}", k + 1
        seen.add(name)
        figs.append(fig)
        stems.append(name)

    for (pid, *sentences), entry in pairs.items():
        ga, gb = entry["groups"]
        pair_stem = model_slug(pid if ids.count(pid) == 1 else f"{pid}-{sentences[0]}")
        for pts, vocab, label, targets in entry["panels"]:
            for view in views:
                fig = pair_figure(
                    pts,
                    vocab,
                    view=view,
                    group_a=ga,
                    group_b=gb,
                    title=f"{pid} · {label} · top {top_n} per side",
                    target_ids=targets,
                )
                suffix = "" if view == "scatter" else f"__{view}"
                add(fig, f"{pair_stem}__{model_slug(label)}{suffix}")
        if comparison and len(entry["panels"]) > 1:
            for view in views:
                fig = comparison_figure(
                    entry["panels"],
                    view=view,
                    group_a=ga,
                    group_b=gb,
                    title=f"{pid} · top {top_n} per side",
                )
                suffix = "" if view == "scatter" else f"__{view}"
                add(fig, f"{pair_stem}__comparison{suffix}")
    return figs, stems


def _points(
    run: RunResult, model: str, pair_id: str, frame: Any, top_n: int, targets: list[int]
) -> PairPoints:
    """The union of each side's top-``top_n`` of one pair (with its target words when stored),
    from the tokens the run stored (:meth:`RunResult.pair_tokens`).

    Raises:
        NotStoredError: the run stored fewer than ``top_n`` tokens per sentence.
    """
    stored = run.stored_top_n(model)
    if stored is not None and top_n > stored:
        raise NotStoredError(
            f"model {model!r}, pair {pair_id!r}: figures of the top {top_n} tokens asked, but "
            f"this run stored the top {stored} per sentence; use a smaller top_n or run with "
            "--store full (or a larger --store-top-n)"
        )
    frame = frame.sort_values("token_id", kind="stable")
    ids = frame["token_id"].to_numpy(np.int64)
    ra, rb = frame["rank_a"].to_numpy(np.int64), frame["rank_b"].to_numpy(np.int64)
    depth = max(1, min(int(top_n), len(run.vocab(model))))
    pinned = np.isin(ids, targets)
    keep = (ra <= depth) | (rb <= depth) | pinned
    return PairPoints(
        ids=ids[keep],
        la=frame["logprob_a"].to_numpy(np.float32)[keep],
        lb=frame["logprob_b"].to_numpy(np.float32)[keep],
        ra=ra[keep],
        rb=rb[keep],
        depth=depth,
        pinned=pinned[keep] if pinned[keep].any() else None,
    )


def _check_figure_folder(out: Path, paths: list[Path]) -> set[str]:
    """Files biasprobe wrote in ``out`` before; refuse to replace any file it did not write.

    Raises:
        NotOwnedError: a figure would overwrite a file that is not one of biasprobe's figures,
            or the folder belongs to something else biasprobe wrote (a run folder).
    """
    if not out.exists():
        return set()
    if not out.is_dir():
        raise OutputError(f"figure folder {out} exists and is not a folder")
    manifest = fsio.read_manifest(out)
    if manifest is not None and manifest.get("kind") != "figures":
        raise fsio.NotOwnedError(
            f"refusing to write figures into {out}: it is a biasprobe {manifest.get('kind')} "
            "folder; choose another folder"
        )
    listed = set(manifest["files"]) if manifest else set()
    clash = sorted(p.name for p in paths if (p.exists() or p.is_symlink()) and p.name not in listed)
    if clash:
        shown = ", ".join(clash[:5]) + (f" and {len(clash) - 5} more" if len(clash) > 5 else "")
        raise fsio.NotOwnedError(
            f"refusing to overwrite {shown} in {out}: biasprobe did not write them; move them "
            "away or choose another folder"
        )
    return listed


def _check_exporter() -> None:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise StaticExportError(f"static figures need kaleido: {INSTALL_HINT}") from None


def _write_images(figs: list, paths: list[Path], fmt: str, scale: float) -> None:
    import plotly.io as pio

    try:
        pio.write_images(
            figs,
            paths,
            format=fmt,
            scale=scale,
            width=[f.layout.width for f in figs],
            height=[f.layout.height for f in figs],
        )
    except Exception as e:  # noqa: BLE001 - the exporter raises its own classes
        text = f"{type(e).__name__}: {e}"
        if "Chrome" in text or "Browser" in text or "chrome" in text:
            found = shutil.which("chromium") or shutil.which("google-chrome")
            where = f" (found {found}, but it did not start)" if found else ""
            raise StaticExportError(
                f"static figures need a Chrome or Chromium browser{where}: {INSTALL_HINT}"
            ) from e
        if isinstance(e, OSError):
            raise OutputError(f"cannot write figures: {e}") from e
        raise
