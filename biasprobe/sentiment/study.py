"""Compare training runs: learning-curve figures and the results table of the study.

Compute → structure → render: :func:`load_study_run` reads a run folder, :func:`results_frame`
builds the tidy table, and the ``*_markdown``/``*_latex``/figure functions only render it.
:func:`compare` writes everything into one folder:

=========================  ============================================================
``learning_curves.html``   interactive figures (plotly): train loss, validation loss and
                           validation accuracy against step, each with a caption
``learning_curves.png``    the same three panels as a static image (matplotlib)
``results.md``             the results table, best validation accuracy in bold, with a legend
``results.csv``            the same numbers, unrounded, one row per run
``results.tex``            the table for LaTeX (booktabs), legend in the caption
=========================  ============================================================
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biasprobe.errors import OutputError, RunFolderError, UsageError
from biasprobe.runfolder import read_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "StudyRun",
    "compare",
    "learning_curves_html",
    "learning_curves_png",
    "load_study_run",
    "results_frame",
    "results_latex",
    "results_markdown",
]

SMOOTHING_WINDOW = 20
"""Steps in the trailing mean drawn over the (noisy) per-step training loss."""

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


@dataclass(frozen=True)
class StudyRun:
    """One finished run: its summary record and its log split by kind."""

    path: Path
    summary: dict[str, Any]
    train_log: list[dict[str, Any]]
    eval_log: list[dict[str, Any]]

    @property
    def label(self) -> str:
        """Legend label, e.g. ``"1 gru-encoder"``."""
        return f"{self.summary['experiment']} {self.summary['name']}"


def load_study_run(path: str | Path) -> StudyRun:
    """Read a run folder written by ``biasprobe sentiment train``.

    Raises:
        RunFolderError: the folder, its summary or its log is missing or unreadable.
    """
    folder = Path(path)
    summary = read_json(
        folder,
        "summary.json",
        missing=f"{folder}: no summary.json; the run has not finished (run the same "
        "'biasprobe sentiment train' command again to resume it)",
    )
    log_path = folder / "log.jsonl"
    try:
        lines = log_path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise RunFolderError(f"{log_path}: cannot read the run's log: {e}") from e
    return StudyRun(
        path=folder,
        summary=summary,
        train_log=[r for r in records if r.get("kind") == "train"],
        eval_log=[r for r in records if r.get("kind") == "eval"],
    )


# --------------------------------------------------------------------------- table

_COLUMNS = [
    # (csv column, markdown/latex header, format)
    ("experiment", "Exp.", "{}"),
    ("name", "Model", "{}"),
    ("params_total", "Params", "{:,}"),
    ("params_trainable", "Trainable", "{:,}"),
    ("steps", "Steps", "{:,}"),
    ("examples_seen", "Examples", "{:,}"),
    ("best_val_accuracy", "Best val acc", "{:.4f}"),
    ("best_step", "at step", "{:,}"),
    ("final_val_accuracy", "Final val acc", "{:.4f}"),
    ("val_majority_accuracy", "Majority acc", "{:.4f}"),
    ("test_accuracy", "Test acc [95% CI]", "{:.4f}"),
    ("test_examples", "Test n", "{:,}"),
    ("augment", "Augment", "{}"),
    ("best_val_loss", "Val loss at best", "{:.4f}"),
    ("train_time_s", "Train time (s)", "{:.1f}"),
    ("eval_time_s", "Eval time (s)", "{:.1f}"),
    ("train_examples_per_s", "Train ex/s", "{:.1f}"),
    ("peak_memory_mib", "Peak mem (MiB)", "{:.0f}"),
    ("validation_examples", "Val n", "{:,}"),
    ("device", "Device", "{}"),
]


def results_frame(runs: list[StudyRun]) -> pd.DataFrame:
    """One row per run, sorted by experiment number, with ``is_best`` and ``stopped_early``.

    ``is_best`` marks the run(s) with the highest best-validation accuracy; ``stopped_early``
    marks runs that stopped at ``max_steps`` before finishing their epochs.
    """
    import pandas as pd

    rows = []
    for run in runs:
        s = run.summary
        row = {col: s.get(col) for col, _, _ in _COLUMNS}
        row["stopped_early"] = bool(
            s.get("max_steps") is not None and (s.get("epochs_completed") or 0) < s.get("epochs", 1)
        )
        row["test_accuracy_ci_low"] = s.get("test_accuracy_ci_low")
        row["test_accuracy_ci_high"] = s.get("test_accuracy_ci_high")
        row["test_majority_accuracy"] = s.get("test_majority_accuracy")
        row["memory_kind"] = s.get("memory_kind")
        row["data_source"] = s.get("data_source")
        row["batch_size"] = s.get("batch_size")
        row["max_length"] = s.get("max_length")
        row["device_name"] = s.get("device_name")
        row["run_dir"] = str(run.path)
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values(["experiment", "name"], kind="stable")
    best = frame["best_val_accuracy"].max()
    frame["is_best"] = frame["best_val_accuracy"] == best
    return frame.reset_index(drop=True)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return spec.format(value)


def _legend(frame: pd.DataFrame) -> list[str]:
    notes = [
        "**bold**: the highest best-validation accuracy among these runs.",
        "Best val acc: the best validation accuracy over all evaluations of the run (not the "
        "last one); *at step*: the optimiser step where it was reached (0 = untrained model).",
        "Final val acc: validation accuracy after the last step. Val loss at best: validation "
        "cross-entropy at the best step. Val n: validation examples (never trained on).",
        "Majority acc: validation accuracy of always answering the more frequent class (the "
        "floor a classifier must beat). The validation set is carved from the training data "
        "and drives early stopping and the choice of the best weights.",
        "Test acc: accuracy of the best weights on the held-out split, touched once after "
        "training, with its 95% Wilson score interval; Test n: its examples.",
        "Augment: cda:AXIS when trained with two-sided counterfactual data augmentation.",
        "Params / Trainable: all parameters / those updated by AdamW. Examples: training "
        "examples seen. Train ex/s: Examples / Train time.",
        "Train time: wall-clock seconds spent in training steps (data, forward, backward, "
        "update), evaluation excluded; Eval time: wall-clock seconds of all evaluations.",
        "Peak mem: CUDA max allocated on GPU; peak resident memory of the process on CPU (*).",
        "†: stopped at max_steps before completing its epochs.",
        "–: not available.",
    ]
    devices = sorted({f"{d} ({n})" for d, n in zip(frame["device"], frame["device_name"])})
    sources = sorted(set(frame["data_source"].dropna()))
    notes.append("Device: " + "; ".join(devices) + ".")
    notes.append("Data: " + "; ".join(sources) + ".")
    return notes


def _cells(row: pd.Series) -> list[str]:
    cells = []
    for col, _, spec in _COLUMNS:
        text = _fmt(row[col], spec)
        if col == "name" and row["stopped_early"]:
            text += " †"
        if col == "peak_memory_mib" and row["memory_kind"] == "peak_rss":
            text += " *"
        if col == "test_accuracy" and text != "–":
            low, high = row["test_accuracy_ci_low"], row["test_accuracy_ci_high"]
            text += f" [{_fmt(low, spec)}, {_fmt(high, spec)}]"
        if col == "augment" and text == "–":
            text = "none"
        cells.append(text)
    return cells


def results_markdown(frame: pd.DataFrame) -> str:
    """The results table as Markdown, best validation accuracy in bold, legend below."""
    headers = [h for _, h, _ in _COLUMNS]
    best_col = [c for c, _, _ in _COLUMNS].index("best_val_accuracy")
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|")
    for _, row in frame.iterrows():
        cells = _cells(row)
        if row["is_best"]:
            cells[best_col] = f"**{cells[best_col]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.extend(f"- {note}" for note in _legend(frame))
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex(text: str) -> str:
    text = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    text = text.replace("†", r"$^\dagger$").replace(" *", r"$^*$").replace("(*)", r"($^*$)")
    return text.replace("–", "--")


def results_latex(frame: pd.DataFrame) -> str:
    """The results table as a LaTeX ``table`` (needs ``booktabs``), legend in the caption."""
    headers = [h for _, h, _ in _COLUMNS]
    best_col = [c for c, _, _ in _COLUMNS].index("best_val_accuracy")
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{ll" + "r" * (len(headers) - 2) + "}",
        r"\toprule",
        " & ".join(_latex(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    for _, row in frame.iterrows():
        cells = [_latex(c) for c in _cells(row)]
        if row["is_best"]:
            cells[best_col] = r"\textbf{" + cells[best_col] + "}"
        lines.append(" & ".join(cells) + r" \\")
    legend = " ".join(
        _latex(n.replace("**bold**", "BOLD").replace("*at step*", "at step")).replace(
            "BOLD", r"\textbf{Bold}"
        )
        for n in _legend(frame)
    )
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{Sentiment classifiers of the study. " + legend + "}",
        r"\label{tab:sentiment-study}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- figures


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _series(run: StudyRun, metric: str) -> tuple[list[int], list[float]]:
    if metric == "train_loss":
        steps = [r["step"] for r in run.train_log]
        return steps, _smooth([r["train_loss"] for r in run.train_log], SMOOTHING_WINDOW)
    return [r["step"] for r in run.eval_log], [r[metric] for r in run.eval_log]


_PANELS = [
    ("train_loss", "Training loss", "cross-entropy (nats)"),
    ("val_loss", "Validation loss", "cross-entropy (nats)"),
    ("val_accuracy", "Validation accuracy", "accuracy"),
]


def _caption(runs: list[StudyRun], metric: str) -> str:
    s = runs[0].summary
    data = s.get("data_source", "?")
    if metric == "train_loss":
        what = (
            f"Training cross-entropy per optimiser step, trailing mean over "
            f"{SMOOTHING_WINDOW} steps (batch {s.get('batch_size')}, max length "
            f"{s.get('max_length')} tokens)."
        )
    else:
        name = {"val_loss": "cross-entropy", "val_accuracy": "accuracy"}.get(
            metric, "cross-entropy (middle) and accuracy (right)"
        )
        what = (
            f"Held-out {name} ({s.get('validation_examples')} examples never trained on), "
            "evaluated at step 0 (untrained) and every eval_every steps."
        )
    return f"{what} Data: {data}."


def learning_curves_html(runs: list[StudyRun], title: str = "Sentiment study") -> str:
    """A standalone HTML page with the three learning-curve figures (plotly) and captions."""
    import plotly.graph_objects as go

    parts = []
    for i, (metric, name, unit) in enumerate(_PANELS):
        fig = go.Figure()
        for j, run in enumerate(runs):
            x, y = _series(run, metric)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines" if metric == "train_loss" else "lines+markers",
                    name=run.label,
                    line={"color": _COLORS[j % len(_COLORS)]},
                )
            )
        fig.update_layout(
            title=f"{name} against step",
            xaxis_title="optimiser step",
            yaxis_title=unit,
            legend_title="experiment",
            template="plotly_white",
            height=420,
        )
        div = fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False)
        parts.append(
            f"<figure>{div}<figcaption>Figure {i + 1}. "
            f"{html.escape(_caption(runs, metric))}</figcaption></figure>"
        )
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "figcaption{color:#444;margin:0 0 2em 0}</style></head><body>"
        f"<h1>{html.escape(title)}: learning curves</h1>\n{body}\n</body></html>\n"
    )


def learning_curves_png(runs: list[StudyRun], path: str | Path, dpi: int = 120) -> None:
    """Draw the three learning-curve panels with a caption into a PNG file (matplotlib).

    Raises:
        UsageError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise UsageError(
            "PNG figures need matplotlib (pip install matplotlib); HTML, Markdown, CSV "
            "and LaTeX outputs do not"
        ) from e

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for ax, (metric, name, unit) in zip(axes, _PANELS):
        for j, run in enumerate(runs):
            x, y = _series(run, metric)
            style = "-" if metric == "train_loss" else "-o"
            ax.plot(x, y, style, color=_COLORS[j % len(_COLORS)], label=run.label, ms=3)
        ax.set_title(f"{name} against step")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    axes[0].legend(title="experiment", fontsize=8)
    caption = f"(left) {_caption(runs, 'train_loss')}\n{_caption(runs, 'val')}"
    fig.text(0.01, 0.01, caption, fontsize=8.5, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


# --------------------------------------------------------------------------- all outputs


STUDY_KIND = "sentiment-study"
"""Manifest kind of a folder written by :func:`compare`."""


def compare(
    run_dirs: list[str | Path], out_dir: str | Path, *, png: bool = True, overwrite: bool = False
) -> dict[str, Path]:
    """Write the figures and the results table of several runs into ``out_dir``.

    The folder is written to a staging folder beside it and moved into place when complete.
    An existing non-empty folder is replaced only with ``overwrite`` and only when biasprobe wrote
    it (manifest kind ``sentiment-study``) and it holds nothing else.

    Args:
        run_dirs: run folders written by ``biasprobe sentiment train``.
        out_dir: output folder.
        png: also draw ``learning_curves.png`` (needs matplotlib).
        overwrite: replace a previous ``compare`` output in ``out_dir``.

    Returns:
        The written files by kind (``html``, ``png``, ``markdown``, ``csv``, ``latex``).

    Raises:
        UsageError: no run folders given; ``fsio.NotOwnedError`` (exit 2) for a folder biasprobe
            did not write.
        RunFolderError: a run folder is missing or unfinished.
        OutputError: the output folder exists (without ``overwrite``) or cannot be written.
    """
    from biasprobe import fsio

    if not run_dirs:
        raise UsageError("compare: give at least one run folder")
    out = Path(out_dir)
    fsio.check_output_folder(out, overwrite, kinds=(STUDY_KIND,), what="study folder")
    runs = [load_study_run(d) for d in run_dirs]
    runs.sort(key=lambda r: (r.summary.get("experiment", 0), r.summary.get("name", "")))
    frame = results_frame(runs)
    names = {
        "html": "learning_curves.html",
        "markdown": "results.md",
        "csv": "results.csv",
        "latex": "results.tex",
    }
    if png:
        names["png"] = "learning_curves.png"
    with fsio.staging_dir(out) as tmp:
        try:
            fsio.atomic_write_text(tmp / names["html"], learning_curves_html(runs))
            fsio.atomic_write_text(tmp / names["markdown"], results_markdown(frame))
            fsio.atomic_write_text(tmp / names["csv"], frame.to_csv(index=False))
            fsio.atomic_write_text(tmp / names["latex"], results_latex(frame))
            if png:
                learning_curves_png(runs, tmp / names["png"])
        except OSError as e:
            raise OutputError(f"cannot write into {out}: {e}") from e
        fsio.write_manifest(tmp, STUDY_KIND, out.name, files=list(names.values()))
        fsio.replace_dir(tmp, out, overwrite=overwrite, kinds=(STUDY_KIND,), what="study folder")
    return {kind: out / name for kind, name in names.items()}
