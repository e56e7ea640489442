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
from collections.abc import Sequence
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
        pinned: (U,) bool, tokens kept whatever N (the probe's target words), or None.
    """

    ids: np.ndarray
    la: np.ndarray
    lb: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    depth: int
    pinned: np.ndarray | None = None

    def top(self, n: int | None) -> PairPoints:
        """The subset in either side's top-``n`` (``None`` or ``n ≥ depth``: all of it), with
        the pinned tokens."""
        if n is None or n >= self.depth:
            return self
        keep = (self.ra <= n) | (self.rb <= n)
        pinned = None
        if self.pinned is not None:
            keep |= self.pinned
            pinned = self.pinned[keep]
        return PairPoints(
            self.ids[keep], self.la[keep], self.lb[keep], self.ra[keep], self.rb[keep], n, pinned
        )

    @property
    def diff(self) -> np.ndarray:
        """``log p(B) − log p(A)`` per token (float64)."""
        return self.lb.astype(np.float64) - self.la.astype(np.float64)

    @property
    def mean(self) -> np.ndarray:
        """``(log p(A) + log p(B)) / 2`` per token (float64)."""
        return (self.la.astype(np.float64) + self.lb.astype(np.float64)) / 2.0


def pair_points(
    logp_a: np.ndarray,
    logp_b: np.ndarray,
    depth: int = EXACT_DEPTH,
    pinned: Sequence[int] = (),
) -> PairPoints:
    """The union of each side's top-``depth`` tokens, with both log-probs and both ranks.

    Args:
        logp_a: (V,) log-probs at the mask for side A.
        logp_b: (V,) log-probs for side B (same vocabulary).
        depth: how many top tokens of each side.
        pinned: token ids always included, whatever their rank (the probe's target words).
    """
    if logp_a.shape != logp_b.shape or logp_a.ndim != 1:
        raise ValueError(f"side vectors differ in shape: {logp_a.shape} vs {logp_b.shape}")
    depth = max(1, min(int(depth), logp_a.size))
    ra, rb = full_ranks(logp_a), full_ranks(logp_b)
    keep = (ra <= depth) | (rb <= depth)
    pin = np.zeros(logp_a.size, dtype=bool)
    pin[[int(t) for t in pinned if 0 <= int(t) < logp_a.size]] = True
    ids = np.flatnonzero(keep | pin)
    return PairPoints(
        ids=ids,
        la=np.asarray(logp_a[ids], dtype=np.float32),
        lb=np.asarray(logp_b[ids], dtype=np.float32),
        ra=ra[ids],
        rb=rb[ids],
        depth=depth,
        pinned=pin[ids] if pin.any() else None,
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


# --------------------------------------------------------------------------- label placement

#: Font of the point labels: monospace, so a label's width is its length × the advance below.
LABEL_FONT = {"size": 11, "family": "DejaVu Sans Mono, Menlo, Consolas, monospace", "color": "#222"}
#: Advance of one character of :data:`LABEL_FONT`, as a fraction of its size (monospace: 0.6),
#: with a little slack; and the height of one line of text.
CHAR_WIDTH = 0.62
LINE_HEIGHT = 1.3
#: Radius (px) of the space kept clear around a labelled point.
POINT_RADIUS = 4.0
#: Candidate positions of a label around its point: the unit direction of the box centre (the
#: box is pushed just clear of the point along it), nearest ring first, then a farther ring.
_DIRECTIONS = (
    (1, 0),
    (-1, 0),
    (0, -1),
    (0, 1),
    (1, -1),
    (-1, -1),
    (1, 1),
    (-1, 1),
)
_RINGS = (0.0, 10.0, 22.0)
#: Top fills of each side that are always labelled (when they fit), before the most skewed.
TOP_FILLS_LABELLED = 3


@dataclass(frozen=True)
class PlotArea:
    """Pixel geometry of a plot: the drawing area ``[left, left+width] × [top, top+height]``
    (y grows downwards) and the data ranges mapped onto it."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def to_px(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Data coordinates → pixels (float64)."""
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        px = self.left + (np.asarray(x, dtype=np.float64) - x0) / (x1 - x0) * self.width
        py = self.top + (y1 - np.asarray(y, dtype=np.float64)) / (y1 - y0) * self.height
        return px, py

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.left + self.width, self.top + self.height)


@dataclass(frozen=True)
class Label:
    """One placed label: the point it names (``index``), its text, and its box in pixels
    ``(x0, y0, x1, y1)``; ``dx, dy`` = box centre − point (pixels, y down); ``ring`` > 0 when
    the label sits away from its point (drawn with a thin leader line)."""

    index: int
    text: str
    box: tuple[float, float, float, float]
    dx: float
    dy: float
    ring: float = 0.0


def text_box_size(text: str, font_size: float = LABEL_FONT["size"]) -> tuple[float, float]:
    """Estimated (width, height) in pixels of one line of :data:`LABEL_FONT` text."""
    return len(text) * CHAR_WIDTH * font_size + 4.0, LINE_HEIGHT * font_size


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(a: tuple[float, ...], area: tuple[float, ...]) -> bool:
    return a[0] >= area[0] and a[1] >= area[1] and a[2] <= area[2] and a[3] <= area[3]


def place_labels(
    px: np.ndarray,
    py: np.ndarray,
    texts: list[str],
    order: list[int],
    area: tuple[float, float, float, float],
    *,
    obstacles: list[tuple[float, float, float, float]] | None = None,
    font_size: float = LABEL_FONT["size"],
) -> list[Label]:
    """Greedy, deterministic label placement without overlap.

    Labels are taken in ``order`` (most important first). Each tries the candidate positions
    around its point (right, left, above, below, the diagonals; then the same farther out) and
    takes the first whose box lies inside ``area``, clear of every label placed so far, of the
    ``obstacles`` and of every labelled point's marker. A label that fits nowhere is dropped
    rather than drawn over another.

    Args:
        px, py: pixel positions of all points (y down).
        texts: the label text of each point (same length as ``px``).
        order: indices of the points to label, by priority.
        area: the plot area ``(x0, y0, x1, y1)`` in pixels; labels stay inside it.
        obstacles: boxes to keep clear (e.g. the plot's own annotations).

    Returns:
        The placed labels, in priority order.
    """
    r = POINT_RADIUS
    markers = [(px[i] - r, py[i] - r, px[i] + r, py[i] + r) for i in order]
    taken: list[tuple[float, float, float, float]] = list(obstacles or [])
    placed: list[Label] = []
    seen: set[int] = set()
    for i in order:
        if i in seen or not (np.isfinite(px[i]) and np.isfinite(py[i])):
            continue
        seen.add(i)
        w, h = text_box_size(texts[i], font_size)
        x, y = float(px[i]), float(py[i])
        if not _inside((x, y, x, y), area):
            continue
        for ring in _RINGS:
            found = None
            for ux, uy in _DIRECTIONS:
                # centre offset: half the box plus the point's radius (+ ring) along each axis
                dx = ux * (w / 2 + r + 1 + ring)
                dy = uy * (h / 2 + r + 1 + ring)
                box = (x + dx - w / 2, y + dy - h / 2, x + dx + w / 2, y + dy + h / 2)
                if not _inside(box, area):
                    continue
                if any(_overlaps(box, t) for t in taken):
                    continue
                if any(_overlaps(box, m) for m in markers):
                    continue
                found = Label(int(i), texts[i], box, dx, dy, ring)
                break
            if found is not None:
                placed.append(found)
                taken.append(found.box)
                break
    return placed


def label_order(
    pts: PairPoints, target_ids: Sequence[int] = (), per_side: int = LABELS_PER_SIDE
) -> list[int]:
    """Which points to label, most important first: the probe's target words, each side's
    top-3 fills (A1, B1, A2, B2, A3, B3), then the most skewed tokens (B- and A-favoured in
    turn)."""
    order: list[int] = []
    pos = {int(t): k for k, t in enumerate(pts.ids.tolist())}
    order += [pos[int(t)] for t in target_ids if int(t) in pos]
    for rank in range(1, TOP_FILLS_LABELLED + 1):
        for ranks in (pts.ra, pts.rb):
            hit = np.flatnonzero(ranks == rank)
            order += [int(k) for k in hit[:1]]
    skew = skewed_labels(pts.diff, per_side)
    b_side = [int(k) for k in skew if pts.diff[k] > 0]
    a_side = [int(k) for k in skew if pts.diff[k] < 0]
    for k in range(max(len(a_side), len(b_side))):
        order += b_side[k : k + 1] + a_side[k : k + 1]
    return list(dict.fromkeys(order))


# --------------------------------------------------------------------------- plotly figures


def plotly_text(s: str) -> str:
    """Escape a token for plotly text, which reads a subset of HTML."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _hover(tokens: list[str], pts: PairPoints, group_a: str, group_b: str) -> list[str]:
    ga, gb = plotly_text(group_a), plotly_text(group_b)
    return [
        f"<b>{plotly_text(t)}</b><br>log p(A: {ga}) = {a:.3f} · rank {ra}"
        f"<br>log p(B: {gb}) = {b:.3f} · rank {rb}<br>B − A = {b - a:+.3f}"
        for t, a, b, ra, rb in zip(tokens, pts.la, pts.lb, pts.ra, pts.rb, strict=True)
    ]


def _color_max(diff: np.ndarray) -> float:
    d = np.abs(diff[np.isfinite(diff)])
    return float(max(0.5, d.max())) if d.size else 1.0


VIEWS = ("scatter", "differences")
#: Pixel geometry of one static panel: the square drawing area and the margins around it.
PANEL = 520
MARGIN = {"l": 72, "r": 24, "t": 16, "b": 62}
#: Room on the right of the last panel for the colour bar.
COLORBAR_ROOM = 96
#: Size of the corner notes of the scatter ("more likely after …").
NOTE_SIZE = 11


def _ranges(pts: PairPoints, view: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis ranges of one view (the scatter: equal, square; differences: symmetric x)."""
    if view == "scatter":
        finite = np.isfinite(pts.la) & np.isfinite(pts.lb)
        vals = np.concatenate([pts.la[finite], pts.lb[finite]]).astype(np.float64)
        if not vals.size:
            return (-10.0, 0.5), (-10.0, 0.5)
        span = float(vals.max() - vals.min())
        lo = float(np.floor(vals.min())) - max(0.5, 0.08 * span)
        hi = min(0.0, float(vals.max())) + 0.5
        return (lo, hi), (lo, hi)
    cmax = _color_max(pts.diff)
    mean = pts.mean[np.isfinite(pts.mean)]
    if mean.size:
        lo, hi = float(mean.min()), float(mean.max())
        pad = max(0.3, 0.06 * (hi - lo))
        y = (lo - pad, hi + pad)
    else:
        y = (-10.0, 0.5)
    return (-cmax * 1.3, cmax * 1.3), y


def _note_boxes(area: PlotArea, notes: list[tuple[str, str]]) -> list[tuple[float, ...]]:
    """Pixel boxes of the scatter's two corner notes (top left, bottom right), estimated as
    the labels are (see :func:`text_box_size`, with the proportional font's slack)."""
    x0, y0, x1, y1 = area.box
    boxes = []
    for text, corner in notes:
        w = len(text) * 0.62 * NOTE_SIZE + 8
        h = LINE_HEIGHT * NOTE_SIZE + 4
        if corner == "top left":
            boxes.append((x0, y0, x0 + w + 0.02 * area.width, y0 + h + 0.02 * area.height))
        else:
            boxes.append((x1 - w - 0.02 * area.width, y1 - h - 0.02 * area.height, x1, y1))
    return boxes


def _add_panel(
    fig: Any,
    size: tuple[float, float],
    area: PlotArea,
    axis: int,
    pts: PairPoints,
    tokens: list[str],
    view: str,
    groups: tuple[str, str],
    target_ids: Sequence[int],
    title: str,
    colorbar: bool,
    cmax: float,
) -> list[Label]:
    """One view of one (pair, model) on its own axes, its labels placed; returns the labels."""
    import plotly.graph_objects as go

    width, height = size
    suffix = "" if axis == 1 else str(axis)
    xref, yref = f"x{suffix}", f"y{suffix}"
    x, y = (pts.la, pts.lb) if view == "scatter" else (pts.diff, pts.mean)
    marker: dict[str, Any] = {
        "size": 6,
        "color": pts.diff,
        "coloraxis": "coloraxis",
        "line": {"width": 0.3, "color": "#555"},
    }
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers",
            text=_hover(tokens, pts, *groups),
            hoverinfo="text",
            marker=marker,
            xaxis=xref,
            yaxis=yref,
            name="tokens",
        )
    )
    ga, gb = (plotly_text(g) for g in groups)
    x0, y0, x1, y1 = area.box
    dom_x = [x0 / width, x1 / width]
    dom_y = [1 - y1 / height, 1 - y0 / height]
    if view == "scatter":
        xt, yt = f"log p(token | A: {ga})", f"log p(token | B: {gb})"
    else:
        xt, yt = f"log p(B: {gb}) − log p(A: {ga})", "mean log p(token)"
    fig.layout[f"xaxis{suffix}"] = {
        "domain": dom_x,
        "range": list(area.x_range),
        "title": {"text": xt},
        "gridcolor": "#eee",
        "zeroline": view != "scatter",
        "zerolinecolor": "#888",
        "anchor": yref,
        "linecolor": "#bbb",
        "mirror": True,
    }
    fig.layout[f"yaxis{suffix}"] = {
        "domain": dom_y,
        "range": list(area.y_range),
        "title": {"text": yt},
        "gridcolor": "#eee",
        "zeroline": False,
        "anchor": xref,
        "linecolor": "#bbb",
        "mirror": True,
    }
    annotations = list(fig.layout.annotations or [])
    obstacles: list[tuple[float, ...]] = []
    if view == "scatter":
        lo, hi = area.x_range
        fig.add_shape(
            type="line",
            x0=lo,
            y0=lo,
            x1=hi,
            y1=hi,
            xref=xref,
            yref=yref,
            layer="below",
            line={"dash": "dash", "color": "#888", "width": 1},
        )
        notes = [(f"more likely after B: {groups[1]}", "top left")]
        notes.append((f"more likely after A: {groups[0]}", "bottom right"))
        obstacles = _note_boxes(area, notes)
        for (text, corner), color in zip(notes, (COLOR_B, COLOR_A), strict=True):
            left = corner == "top left"
            annotations.append(
                {
                    "xref": f"{xref} domain",
                    "yref": f"{yref} domain",
                    "x": 0.02 if left else 0.98,
                    "y": 0.98 if left else 0.02,
                    "xanchor": "left" if left else "right",
                    "yanchor": "top" if left else "bottom",
                    "showarrow": False,
                    "text": plotly_text(text),
                    "font": {"size": NOTE_SIZE, "color": color},
                }
            )
    if title:
        annotations.append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": (x0 + x1) / 2 / width,
                "y": 1 - (y0 - 12) / height,
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "text": plotly_text(title),
                "font": {"size": 14},
            }
        )
    px, py = area.to_px(x, y)
    labels = place_labels(
        px, py, tokens, label_order(pts, target_ids), area.box, obstacles=obstacles
    )
    annotations += [
        label_annotation(lab, float(x[lab.index]), float(y[lab.index]), xref, yref)
        for lab in labels
    ]
    fig.layout.annotations = annotations
    if colorbar:
        fig.layout.coloraxis = {
            "colorscale": COLORSCALE,
            "cmin": -cmax,
            "cmax": cmax,
            "colorbar": {
                "title": {"text": "log p(B) − log p(A)", "side": "right"},
                "thickness": 14,
                "x": (x1 + 14) / width,
                "xanchor": "left",
                "y": 1 - (y0 + y1) / 2 / height,
                "len": (y1 - y0) / height,
            },
        }
    return labels


def label_annotation(lab: Label, x: float, y: float, xref: str, yref: str) -> dict[str, Any]:
    """A placed label as a plotly annotation: its box centred at the point + (dx, dy) pixels;
    a label away from its point gets a thin leader line to it."""
    ann: dict[str, Any] = {
        "xref": xref,
        "yref": yref,
        "x": x,
        "y": y,
        "xanchor": "center",
        "yanchor": "middle",
        "borderpad": 0,
        "borderwidth": 0,
        "text": plotly_text(lab.text),
        "font": dict(LABEL_FONT),
        "name": "label",
    }
    if lab.ring > 0:
        ann.update(
            showarrow=True,
            ax=lab.dx,
            ay=lab.dy,
            axref="pixel",
            ayref="pixel",
            arrowhead=0,
            arrowwidth=0.7,
            arrowcolor="#999",
            standoff=POINT_RADIUS,
        )
    else:
        ann.update(showarrow=False, xshift=lab.dx, yshift=-lab.dy)
    return ann


def _figure(panels: list[dict[str, Any]], view: str, groups: tuple[str, str], title: str) -> Any:
    """Panels side by side, each :data:`PANEL` px square, one shared colour scale."""
    import plotly.graph_objects as go

    n = len(panels)
    cell = MARGIN["l"] + PANEL + MARGIN["r"]
    top = MARGIN["t"] + (40 if title else 0) + (26 if any(p.get("title") for p in panels) else 0)
    width = n * cell + COLORBAR_ROOM
    height = top + PANEL + MARGIN["b"]
    fig = go.Figure()
    fig.update_layout(
        width=width,
        height=height,
        margin={"l": 0, "r": 0, "t": 0, "b": 0, "autoexpand": False},
        showlegend=False,
        plot_bgcolor="white",
        paper_bgcolor="white",
        font={"size": 12},
        hovermode="closest",
    )
    cmax = max(_color_max(p["pts"].diff) for p in panels)
    ranges = [_ranges(p["pts"], view) for p in panels]
    if view == "scatter":  # one square range for every panel, so that they compare
        lo, hi = min(r[0][0] for r in ranges), max(r[0][1] for r in ranges)
        ranges = [((lo, hi), (lo, hi))] * n
    placed = []
    for k, p in enumerate(panels):
        area = PlotArea(k * cell + MARGIN["l"], top, PANEL, PANEL, *ranges[k])
        placed.append(
            _add_panel(
                fig,
                (width, height),
                area,
                k + 1,
                p["pts"],
                p["tokens"],
                view,
                groups,
                p.get("target_ids", ()),
                p.get("title", ""),
                k == n - 1,
                cmax,
            )
        )
    if title:
        fig.add_annotation(
            xref="paper",
            yref="paper",
            x=0.5,
            y=1 - 8 / height,
            xanchor="center",
            yanchor="top",
            showarrow=False,
            text=plotly_text(title),
            font={"size": 16},
        )
    fig.layout.meta = {"biasprobe_labels": [[lab.box for lab in labs] for labs in placed]}
    return fig


def pair_figure(
    pts: PairPoints,
    vocab: tuple[str, ...] | list[str],
    *,
    view: str = "scatter",
    group_a: str,
    group_b: str,
    title: str = "",
    target_ids: Sequence[int] = (),
) -> Any:
    """One pair's tokens drawn with plotly.

    ``view="scatter"``: the PAIR-style scatter, log p(token | A) against log p(token | B), with
    y = x dashed. ``view="differences"``: ``log p(B) − log p(A)`` (x) against the mean log-prob
    (y). Labelled (:func:`label_order`, :func:`place_labels`, no two labels overlapping): the
    target words, each side's top-3 fills, then the most skewed tokens.

    Args:
        pts: the tokens to draw (e.g. ``pair_points(a, b).top(200)``).
        vocab: display string of every token id.
        view: one of :data:`VIEWS`.
        group_a: label of side A (x axis of the scatter).
        group_b: label of side B (y axis of the scatter).
        title: figure title.
        target_ids: token ids of the probe's target words (labelled first when drawn).

    Returns:
        A ``plotly.graph_objects.Figure`` of fixed size; ``layout.meta["biasprobe_labels"]``
        holds the pixel box of every label placed.
    """
    return comparison_figure(
        [(pts, vocab, "", target_ids)], view=view, group_a=group_a, group_b=group_b, title=title
    )


def comparison_figure(
    panels: Sequence[tuple[PairPoints, Sequence[str], str, Sequence[int]]],
    *,
    view: str = "scatter",
    group_a: str,
    group_b: str,
    title: str = "",
) -> Any:
    """The same pair under several models, side by side on one colour scale.

    Args:
        panels: per model ``(points, vocab, panel title, target ids)``.
        view, group_a, group_b, title: as :func:`pair_figure`.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    if not panels:
        raise ValueError("a figure needs at least one panel")
    built = [
        {
            "pts": pts,
            "tokens": [vocab[i] for i in pts.ids],
            "title": panel_title,
            "target_ids": target_ids,
        }
        for pts, vocab, panel_title, target_ids in panels
    ]
    return _figure(built, view, (group_a, group_b), title)


scatter_figure = functools.partial(pair_figure, view="scatter")
differences_figure = functools.partial(pair_figure, view="differences")
