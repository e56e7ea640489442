"""What ``biasprobe run SET -m CLASSIFIER`` does for a counterfactual set (:func:`run_command`);
its terminal tables are :func:`biasprobe.views.terminal.print_downstream`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from biasprobe.probes import ProbeItem, ProbeSet
from biasprobe.runfolders.counterfactual import DownstreamResult
from biasprobe.runfolders.schema import MANIFEST_KINDS

__all__ = ["run_command"]

WHAT = "counterfactual run folder"


def run_command(
    probe_set: ProbeSet | Sequence[ProbeItem],
    models: Sequence[Any],
    out: str | Path | None,
    overwrite: bool = False,
    html: bool = False,
    quiet: bool = False,
    *,
    console: Any = None,
    before_print: Any = None,
    **options: Any,
) -> Path:
    """What ``biasprobe run SET -m CLASSIFIER`` does for a counterfactual set.

    Checks the output folder first (so nothing is scored for a folder that cannot be written),
    runs :func:`run_downstream` with ``options`` (its keyword arguments: ``tolerance``,
    ``seed``, ``n_boot``, ``positive_label``, ``device``, ``batch_size``, ``revision``,
    ``trust_remote_code``, ``progress``), writes the run folder (with ``report.html`` when
    ``html``), prints the tables unless ``quiet`` and returns the folder. Default folder:
    ``reports/<set>-<run id>``. ``before_print`` (no arguments) is called once the work is
    done, before anything is printed: the CLI stops its live progress display there, so that
    the display's last redraw cannot erase the tables.
    """
    from biasprobe import fsio
    from biasprobe.tasks.counterfactual import run_downstream

    if out is not None:
        fsio.check_output_folder(out, overwrite, kinds=MANIFEST_KINDS, what=WHAT)
    result = run_downstream(probe_set, models, **options)
    target = Path("reports") / f"{result.set_name}-{result.meta['run_id']}"
    report = None
    if html:
        from biasprobe.report.downstream import render_downstream_report

        def report(res: DownstreamResult, path: Path) -> None:
            path.write_text(render_downstream_report([res]), encoding="utf-8")

    saved = result.save(target if out is None else out, overwrite=overwrite, report=report)
    if before_print is not None:
        before_print()
    if not quiet:
        from biasprobe.views.terminal import print_downstream

        print_downstream(result, console)
    return saved
