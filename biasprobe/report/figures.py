"""Figure data and static figures for the report.

The functions here are pure (numpy in, numpy or plotly figures out). The HTML report embeds
the arrays computed by :func:`pair_points` and :func:`quantize16` and draws the same two views
in the browser; :func:`pair_figure` (:func:`scatter_figure`, :func:`differences_figure`) draws them with plotly in
Python for static export.

Conventions (as in PAIR's "What Have Language Models Learned?"):

* x = log p(token | side A), y = log p(token | side B): the log-softmax over the whole
  vocabulary at the mask, not raw logits.
* the difference is ``log p(B) − log p(A)``: positive = more likely after side B.
* ranks are 1-based over the whole vocabulary; ties go to the lower token id
  (:func:`biasprobe.scores.full_ranks`, the one tie-breaking rule).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from biasprobe.scores import full_ranks

#: Each side's top-N (N up to this depth) is embedded with exact float32 values and ranks.
EXACT_DEPTH = 1000
#: Tokens labelled on each side of the diagonal.
LABELS_PER_SIDE = 6
#: Diverging colours: side A favoured, no difference, side B favoured.
COLOR_A = "#b2182b"
COLOR_MID = "#cfcfcf"
COLOR_B = "#2166ac"
COLORSCALE = [[0.0, COLOR_A], [0.5, COLOR_MID], [1.0, COLOR_B]]
#: Largest code of a 16-bit quantized value; the code 65535 stands for a non-finite value.
_Q_MAX = 65534
_Q_NONFINITE = 65535


@dataclass(frozen=True)
class PairPoints:
    """The tokens of the union of each side's top-``depth``, with exact values and ranks.

    Attributes:
        ids: (U,) token ids, ascending.
        la: (U,) float32 log p(token | A).
        lb: (U,) float32 log p(token | B).
        ra: (U,) rank of each token under A (1-based, over the whole vocabulary).
        rb: (U,) rank under B.
        depth: the top-N depth the union was taken at.
    """

    ids: np.ndarray
    la: np.ndarray
    lb: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    depth: int

    def top(self, n: int | None) -> PairPoints:
        """The subset in either side's top-``n`` (``None`` or ``n ≥ depth``: all of it)."""
        if n is None or n >= self.depth:
            return self
        keep = (self.ra <= n) | (self.rb <= n)
        return PairPoints(
            self.ids[keep], self.la[keep], self.lb[keep], self.ra[keep], self.rb[keep], n
        )

    @property
    def diff(self) -> np.ndarray:
        """``log p(B) − log p(A)`` per token (float64)."""
        return self.lb.astype(np.float64) - self.la.astype(np.float64)

    @property
    def mean(self) -> np.ndarray:
        """``(log p(A) + log p(B)) / 2`` per token (float64)."""
        return (self.la.astype(np.float64) + self.lb.astype(np.float64)) / 2.0


def pair_points(logp_a: np.ndarray, logp_b: np.ndarray, depth: int = EXACT_DEPTH) -> PairPoints:
    """The union of each side's top-``depth`` tokens, with both log-probs and both ranks.

    Args:
        logp_a: (V,) log-probs at the mask for side A.
        logp_b: (V,) log-probs for side B (same vocabulary).
        depth: how many top tokens of each side.
    """
    if logp_a.shape != logp_b.shape or logp_a.ndim != 1:
        raise ValueError(f"side vectors differ in shape: {logp_a.shape} vs {logp_b.shape}")
    depth = max(1, min(int(depth), logp_a.size))
    ra, rb = full_ranks(logp_a), full_ranks(logp_b)
    ids = np.flatnonzero((ra <= depth) | (rb <= depth))
    return PairPoints(
        ids=ids,
        la=np.asarray(logp_a[ids], dtype=np.float32),
        lb=np.asarray(logp_b[ids], dtype=np.float32),
        ra=ra[ids],
        rb=rb[ids],
        depth=depth,
    )


def skewed_labels(diff: np.ndarray, per_side: int = LABELS_PER_SIDE) -> np.ndarray:
    """Indices of the most skewed tokens: the ``per_side`` largest positive and negative diffs.

    Args:
        diff: (U,) ``log p(B) − log p(A)``; NaN/inf entries are never picked.

    Returns:
        Indices into ``diff``, B-favoured first (most skewed first), then A-favoured.
    """
    d = np.asarray(diff, dtype=np.float64)
    idx = np.flatnonzero(np.isfinite(d))
    pos = idx[d[idx] > 0]
    neg = idx[d[idx] < 0]
    pos = pos[np.lexsort((pos, -d[pos]))][:per_side]
    neg = neg[np.lexsort((neg, d[neg]))][:per_side]
    return np.concatenate([pos, neg]).astype(np.int64)


def quantize16(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Quantize a vector to 16-bit codes on a uniform grid between its min and max.

    ``value ≈ lo + code · step``, with an error of at most ``step / 2``. Non-finite values get
    the code 65535. For log-probs spanning 30 nats the step is about 0.0005, finer than float16
    everywhere below −0.5.

    Returns:
        ``(codes (V,) uint16, lo, step)``.
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.full(v.shape, _Q_NONFINITE, dtype=np.uint16), 0.0, 1.0
    lo, hi = float(v[finite].min()), float(v[finite].max())
    step = (hi - lo) / _Q_MAX if hi > lo else 1.0
    codes = np.full(v.shape, _Q_NONFINITE, dtype=np.uint16)
    codes[finite] = np.clip(np.rint((v[finite] - lo) / step), 0, _Q_MAX).astype(np.uint16)
    return codes, lo, step


def dequantize16(codes: np.ndarray, lo: float, step: float) -> np.ndarray:
    """Inverse of :func:`quantize16` (float64; code 65535 → −inf)."""
    c = np.asarray(codes)
    out = lo + c.astype(np.float64) * step
    out[c == _Q_NONFINITE] = -np.inf
    return out


def _plotly_text(s: str) -> str:
    """Escape a token for plotly text, which reads a subset of HTML."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _hover(tokens: list[str], pts: PairPoints, group_a: str, group_b: str) -> list[str]:
    ga, gb = _plotly_text(group_a), _plotly_text(group_b)
    return [
        f"<b>{_plotly_text(t)}</b><br>log p(A: {ga}) = {a:.3f} · rank {ra}"
        f"<br>log p(B: {gb}) = {b:.3f} · rank {rb}<br>B − A = {b - a:+.3f}"
        for t, a, b, ra, rb in zip(tokens, pts.la, pts.lb, pts.ra, pts.rb, strict=True)
    ]


def _color_max(diff: np.ndarray) -> float:
    d = np.abs(diff[np.isfinite(diff)])
    return float(max(0.5, d.max())) if d.size else 1.0


def _base_figure(
    pts: PairPoints,
    tokens: list[str],
    x: np.ndarray,
    y: np.ndarray,
    title: str,
    groups: tuple[str, str],
    label_positions: tuple[str, str],
) -> Any:
    """Points coloured by the difference, the most skewed tokens labelled, common layout."""
    import plotly.graph_objects as go

    diff = pts.diff
    cmax = _color_max(diff)
    lab = skewed_labels(diff)
    marker = {
        "size": 6,
        "color": diff,
        "colorscale": COLORSCALE,
        "cmin": -cmax,
        "cmax": cmax,
        "line": {"width": 0.3, "color": "#555"},
    }
    if label_positions[0] == "top left":  # the scatter carries the colour bar
        marker["colorbar"] = {"title": {"text": "log p(B) − log p(A)", "side": "right"}}
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers",
            text=_hover(tokens, pts, *groups),
            hoverinfo="text",
            marker=marker,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x[lab],
            y=y[lab],
            mode="text",
            text=[_plotly_text(tokens[i]) for i in lab],
            textposition=[label_positions[0] if diff[i] > 0 else label_positions[1] for i in lab],
            textfont={"size": 11, "color": "#222"},
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title={"text": _plotly_text(title), "font": {"size": 15}, "x": 0.5, "xanchor": "center"},
        showlegend=False,
        width=620,
        height=560,
        margin={"l": 60, "r": 20, "t": 50, "b": 55},
        plot_bgcolor="white",
    )
    return fig


VIEWS = ("scatter", "differences")


def pair_figure(
    pts: PairPoints,
    vocab: tuple[str, ...] | list[str],
    *,
    view: str = "scatter",
    group_a: str,
    group_b: str,
    title: str = "",
) -> Any:
    """One pair's tokens drawn with plotly.

    ``view="scatter"``: the PAIR-style scatter, log p(token | A) against log p(token | B), with
    y = x dashed. ``view="differences"``: ``log p(B) − log p(A)`` (x) against the mean log-prob
    (y).

    Args:
        pts: the tokens to draw (e.g. ``pair_points(a, b).top(200)``).
        vocab: display string of every token id.
        view: one of :data:`VIEWS`.
        group_a: label of side A (x axis of the scatter).
        group_b: label of side B (y axis of the scatter).
        title: figure title.

    Returns:
        A ``plotly.graph_objects.Figure``.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    tokens = [vocab[i] for i in pts.ids]
    groups = (group_a, group_b)
    if view == "differences":
        fig = _base_figure(
            pts, tokens, pts.diff, pts.mean, title, groups, ("middle right", "middle left")
        )
        return _differences_axes(fig, pts, group_a, group_b)
    fig = _base_figure(pts, tokens, pts.la, pts.lb, title, groups, ("top left", "bottom right"))
    return _scatter_axes(fig, pts, group_a, group_b)


scatter_figure = functools.partial(pair_figure, view="scatter")
differences_figure = functools.partial(pair_figure, view="differences")


def _scatter_axes(fig: Any, pts: PairPoints, group_a: str, group_b: str) -> Any:
    """The y = x line and the equal log-prob axes of the scatter."""
    finite = np.isfinite(pts.la) & np.isfinite(pts.lb)
    vals = np.concatenate([pts.la[finite], pts.lb[finite]]).astype(np.float64)
    span = float(vals.max() - vals.min()) if vals.size else 10.0
    lo = float(np.floor(vals.min())) - max(0.5, 0.08 * span) if vals.size else -10.0
    hi = min(0.0, float(vals.max())) + 0.5 if vals.size else 0.5
    fig.update_layout(
        shapes=[
            {
                "type": "line",
                "x0": lo,
                "y0": lo,
                "x1": hi,
                "y1": hi,
                "line": {"dash": "dash", "color": "#888", "width": 1},
            }
        ],
        xaxis={
            "title": {"text": f"log p(token | A: {_plotly_text(group_a)})"},
            "range": [lo, hi],
            "gridcolor": "#eee",
            "zeroline": False,
        },
        yaxis={
            "title": {"text": f"log p(token | B: {_plotly_text(group_b)})"},
            "range": [lo, hi],
            "gridcolor": "#eee",
            "zeroline": False,
            "scaleanchor": "x",
        },
    )
    return fig


def _differences_axes(fig: Any, pts: PairPoints, group_a: str, group_b: str) -> Any:
    """The symmetric difference axis of the differences view."""
    cmax = _color_max(pts.diff)
    fig.update_layout(
        xaxis={
            "title": {
                "text": f"log p(B: {_plotly_text(group_b)}) − log p(A: {_plotly_text(group_a)})"
            },
            "range": [-cmax * 1.3, cmax * 1.3],
            "gridcolor": "#eee",
            "zeroline": True,
            "zerolinecolor": "#888",
        },
        yaxis={"title": {"text": "mean log p(token)"}, "gridcolor": "#eee", "zeroline": False},
    )
    return fig
