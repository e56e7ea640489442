"""One report call for every kind of run: a renderer per kind, chosen by the run's ``kind``.

:data:`RENDERERS` maps each kind (``fill-mask``, ``counterfactual``, ``crows-pairs``,
``holistic-bias``) to its :class:`Renderer`; :func:`report_html` and :func:`write_report` pick
the renderer of the runs' kind. A new kind of audit adds one renderer module and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biasprobe import fsio
from biasprobe.errors import UsageError
from biasprobe.report.counterfactual import render_downstream_report
from biasprobe.report.crows import render_crows_report
from biasprobe.report.fillmask import render_report
from biasprobe.report.holistic import render_holistic_report
from biasprobe.report.page import kind_of

__all__ = ["RENDERERS", "Renderer", "kind_of", "renderer_for", "report_html", "write_report"]


@dataclass(frozen=True)
class Renderer:
    """The report of one kind of run.

    Attributes:
        kind: the runs' ``kind``.
        render: ``render(results, *, title=…, sources=…, **options) -> str``, the whole page.
        options: the keyword options ``render`` takes besides ``title`` (with their CLI
            spelling, for the message when another kind is given one).
        companions: other kinds the page may show beside its own runs (the counterfactual
            page shows fill-mask runs' skew beside the classifiers' gaps).
    """

    kind: str
    render: Callable[..., str]
    options: dict[str, str]
    companions: frozenset[str] = frozenset()


def _fill_mask(
    results: Sequence[Any],
    *,
    title: str | None = None,
    sources: Sequence[str] | None = None,
    top_n_default: int = 200,
    pairs: Sequence[str] | None = None,
) -> str:
    if isinstance(top_n_default, bool) or not isinstance(top_n_default, int) or top_n_default < 1:
        raise UsageError(f"top_n_default must be a positive integer, got {top_n_default!r}")
    return render_report(
        results, title=title, top_n_default=top_n_default, pairs=pairs, sources=sources
    )


def _counterfactual(
    results: Sequence[Any], *, title: str | None = None, sources: Sequence[str] | None = None
) -> str:
    return render_downstream_report(results, title=title)


def _crows(
    results: Sequence[Any], *, title: str | None = None, sources: Sequence[str] | None = None
) -> str:
    return render_crows_report(results, title=title)


def _holistic(
    results: Sequence[Any], *, title: str | None = None, sources: Sequence[str] | None = None
) -> str:
    return render_holistic_report(results, title=title)


#: The renderer of each kind of run.
RENDERERS: dict[str, Renderer] = {
    "fill-mask": Renderer(
        "fill-mask", _fill_mask, {"top_n_default": "--top-n", "pairs": "--pairs"}
    ),
    "counterfactual": Renderer(
        "counterfactual", _counterfactual, {}, companions=frozenset({"fill-mask"})
    ),
    "crows-pairs": Renderer("crows-pairs", _crows, {}),
    "holistic-bias": Renderer("holistic-bias", _holistic, {}),
}


def _name(result: Any, i: int, sources: Sequence[str] | None) -> str:
    if sources is not None and i < len(sources):
        return str(sources[i])
    meta = getattr(result, "meta", None) or {}
    return f"run {meta.get('run_id', i + 1)}"


def renderer_for(results: Sequence[Any], sources: Sequence[str] | None = None) -> Renderer:
    """The renderer of ``results``: the kind they share, or the one kind whose page shows the
    others beside its own.

    Raises:
        UsageError: no results; a kind without a renderer; runs of kinds that no page shows
            together (the message names each run, by ``sources`` when given, and its kind).
    """
    if not results:
        raise UsageError("a report needs at least one run")
    kinds = [kind_of(r) for r in results]
    for i, kind in enumerate(kinds):
        if kind not in RENDERERS:
            raise UsageError(
                f"{_name(results[i], i, sources)} is a {kind!r} run; biasprobe reports "
                f"{', '.join(RENDERERS)} runs"
            )
    present = set(kinds)
    for kind in dict.fromkeys(kinds):
        if present - {kind} <= RENDERERS[kind].companions:
            return RENDERERS[kind]
    listed = "; ".join(
        f"{_name(r, i, sources)} is a {k} run" for i, (r, k) in enumerate(zip(results, kinds))
    )
    raise UsageError(
        f"cannot report runs of different kinds on one page: {listed}. Write one report per "
        "kind (a counterfactual report may include fill-mask runs)."
    )


def report_html(
    results: Sequence[Any],
    *,
    title: str | None = None,
    sources: Sequence[str] | None = None,
    **options: Any,
) -> str:
    """The report page of ``results`` (one kind, see :func:`renderer_for`) as a string.

    Args:
        results: run results (from :func:`biasprobe.results.load_run` or a run).
        title: the page's title (default: from the probe sets or the model).
        sources: how the runs are named in the page and in messages (the CLI passes the run
            folders).
        **options: the renderer's own options (fill-mask: ``top_n_default``, ``pairs``).

    Raises:
        UsageError: see :func:`renderer_for`; an option the kind's renderer does not take;
            the renderer's own checks.
    """
    renderer = renderer_for(results, sources)
    for name, value in options.items():
        if name in renderer.options:
            continue
        if value is None or value == [] or value == ():
            continue
        spelling = next(
            (r.options[name] for r in RENDERERS.values() if name in r.options), repr(name)
        )
        raise UsageError(f"{spelling} is not available for {renderer.kind} runs")
    given = {k: v for k, v in options.items() if k in renderer.options and v is not None}
    return renderer.render(results, title=title, sources=sources, **given)


def write_report(
    results: Sequence[Any],
    out_path: str | Path,
    *,
    title: str | None = None,
    sources: Sequence[str] | None = None,
    **options: Any,
) -> Path:
    """Write the report of ``results`` (any one kind, see :func:`report_html`) as one
    self-contained HTML file, atomically.

    An existing file is replaced only if it is a report biasprobe wrote (its generator marker);
    anything else is refused.

    Returns:
        the path written.

    Raises:
        UsageError: see :func:`report_html`.
        OutputError: the file cannot be written.
        NotOwnedError: the file exists and biasprobe did not write it (exit code 2).
    """
    renderer_for(results, sources)
    out = fsio.check_output_file(out_path, what="report")
    page = report_html(results, title=title, sources=sources, **options)
    return fsio.write_report(out, page, what="report")
