"""The counterfactual task: a counterfactual probe set on classifiers.

Per classifier, every distinct sentence is scored once (shortest first, in slices of
:data:`PREDICT_SLICE` that the classifier batches by length) into P(positive) and the label; the
pair table and the scores (Δ, |Δ|, flip, invariance failure, :mod:`biasprobe.downstream.scores`)
follow. The summary is per model, template and set; the comparison of every later model with
the base (the first) is computed at summarise time. :func:`run_downstream` runs it through
:func:`biasprobe.engine.run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from biasprobe import engine as engine_loop  # "engine" is a keyword of run functions
from biasprobe.downstream.scores import (
    DEFAULT_TOLERANCE,
    compare_models,
    pair_scores,
    summarize_downstream,
)
from biasprobe.engine import ModelEntry, ProgressFn
from biasprobe.errors import UsageError
from biasprobe.probes import MASK, ProbeItem, ProbeSet
from biasprobe.runfolders.counterfactual import DownstreamResult
from biasprobe.runfolders.schema import (
    COMPARISON_COLUMNS,
    SUMMARY_COLUMNS,
    head,
    leading,
    model_block,
)

__all__ = ["PREDICT_SLICE", "CounterfactualTask", "run_downstream"]

#: Sentences per progress step of a classifier (each slice is scored in length-sorted batches).
PREDICT_SLICE = 128


def _check_counterfactual(probe_set: ProbeSet | None, items: Sequence[ProbeItem]) -> None:
    kind = getattr(probe_set, "kind", None) if probe_set is not None else None
    where = probe_set.path if probe_set is not None else "the probe items"
    if kind is not None and kind != "counterfactual":
        raise UsageError(
            f"{where}: a {kind} probe set cannot run on a classifier; downstream runs need a "
            "counterfactual probe set (pairs of sentences without [MASK])"
        )
    for it in items:
        if any(MASK in s for s in it.sentences):
            raise UsageError(
                f"{it.source}: pair {it.pair_id!r} contains {MASK}: this is a fill-mask probe, "
                "not a counterfactual one; classifiers score whole sentences (write the pair "
                "without [MASK], or run this set on a masked language model)"
            )
    if not items:
        raise UsageError(f"{where}: no pair to run")


def _as_items(
    probe_set: ProbeSet | Sequence[ProbeItem], set_name: str | None
) -> tuple[ProbeSet | None, list[ProbeItem], str]:
    """``(probe set or None, its items, the set's name)`` of what :func:`run_downstream` got."""
    if isinstance(probe_set, ProbeSet) or (
        hasattr(probe_set, "items") and hasattr(probe_set, "name") and hasattr(probe_set, "path")
    ):
        ps: ProbeSet = probe_set  # type: ignore[assignment]
        return ps, list(ps.items), set_name or ps.name
    return None, list(probe_set), set_name or "probes"


def _check_settings(names: Sequence[str], tolerance: Any, n_boot: int) -> None:
    if not names:
        raise UsageError("no classifier to run: pass --model (a sentiment run folder or a model)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"model given twice: {', '.join(dupes)}")
    if not (isinstance(tolerance, int | float) and tolerance >= 0):
        raise UsageError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if n_boot < 1:
        raise UsageError(f"bootstrap resamples must be at least 1, got {n_boot}")


def _side_rows(
    model: str, sides: pd.DataFrame, by_sentence: dict[str, tuple[float, str]]
) -> pd.DataFrame:
    """The ``downstream`` table of one model: ``sides`` (one row per pair and side, from
    :func:`_sides`) with the model's P(positive) and label of each sentence."""
    out = sides.copy()
    out.insert(0, "model", model)
    scored = [by_sentence[s] for s in out["sentence"]]
    out["p_positive"] = [x[0] for x in scored]
    out["label"] = [x[1] for x in scored]
    return out


def _sides(items_frame: pd.DataFrame) -> pd.DataFrame:
    """pair_id, template_id, side, group, role, sentence of every pair side."""
    keep = ["pair_id", "template_id", "side", "group", "role", "template_sentence"]
    return items_frame[keep].rename(columns={"template_sentence": "sentence"})


def _pair_rows(
    model: str,
    items: Sequence[ProbeItem],
    by_sentence: dict[str, tuple[float, str]],
    tolerance: float,
) -> pd.DataFrame:
    """The ``scores`` table of one model: one row per pair with both sides and its scores."""
    pa = [by_sentence[it.sentences[0]] for it in items]
    pb = [by_sentence[it.sentences[1]] for it in items]
    head = pd.DataFrame(
        {
            "model": model,
            "pair_id": [it.pair_id for it in items],
            "template_id": [it.template_id for it in items],
            "group_a": [it.groups[0] for it in items],
            "group_b": [it.groups[1] for it in items],
            "minoritized_group": [it.minoritized_group for it in items],
            "normative_group": [it.normative_group for it in items],
            "sentence_a": [it.sentences[0] for it in items],
            "sentence_b": [it.sentences[1] for it in items],
            "p_a": [x[0] for x in pa],
            "p_b": [x[0] for x in pb],
            "label_a": [x[1] for x in pa],
            "label_b": [x[1] for x in pb],
        }
    )
    sc = pair_scores(
        head["p_a"].tolist(),
        head["p_b"].tolist(),
        head["label_a"].tolist(),
        head["label_b"].tolist(),
        [it.minoritized for it in items],
        tolerance=tolerance,
    )
    return pd.concat([head, sc], axis=1)


def _probe_meta(ps: ProbeSet | None, name: str, n_pairs: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "n_pairs": n_pairs}
    if ps is not None:
        meta.update(
            version=ps.version,
            description=ps.description,
            source=ps.source,
            path=ps.path,
            sha256=ps.sha256,
            orientation=list(ps.orientation) if ps.orientation else None,
        )
    return meta


def _model_name(spec: Any) -> str:
    return str(spec) if isinstance(spec, str) else str(spec.name)


def predict(
    clf: Any, sentences: list[str], name: str, progress: ProgressFn | None
) -> dict[str, tuple[float, str]]:
    """``sentence → (P(positive), label)`` of every sentence under one loaded classifier."""
    if progress:
        progress(name, "score", 0, len(sentences))
    out: dict[str, tuple[float, str]] = {}
    # Shortest first, in slices, so the progress moves per slice while each slice still
    # batches sentences of similar length (the classifiers sort within what they are given).
    ordered = sorted(sentences, key=len)
    for start in range(0, len(ordered), PREDICT_SLICE):
        part = ordered[start : start + PREDICT_SLICE]
        p_pos, labels = clf.predict(part)
        out.update((s, (float(p), lab)) for s, p, lab in zip(part, p_pos, labels, strict=True))
        if progress:
            progress(name, "score", start + len(part), len(sentences))
    return out


def pairs_stored(clf: Any, items: Sequence[ProbeItem]) -> int | None:
    """How many pairs have both sentences' label probabilities in the result cache of ``clf``
    (a :class:`~biasprobe.backends.cached.CachedClassifier`; counted without touching its
    hit counts), or None when it has no cache. The classifier is given the same slices in the
    same order every run, so a stored sentence's batch was committed whole and is read back."""
    store = getattr(clf, "store", None)
    if store is None:
        return None
    from biasprobe.cache import request_key

    sentences = list(dict.fromkeys(s for it in items for s in it.sentences))
    keys = {s: request_key("label", s) for s in sentences}
    found = store.present("label", list(keys.values()))
    have = {s for s, k in keys.items() if k in found}
    return sum(all(s in have for s in it.sentences) for it in items)


class CounterfactualTask:
    """A counterfactual probe set (or a list of its items) on classifiers (see the module
    docstring); options as :func:`run_downstream` takes them."""

    kind = "counterfactual"
    family = "classifier"
    cached = True  # label probabilities per sentence, by model identity + sentence

    def __init__(
        self,
        probe_set: ProbeSet | Sequence[ProbeItem],
        *,
        set_name: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        seed: int = 0,
        n_boot: int = 2000,
        confidence: float = 0.95,
        load: dict[str, Any] | None = None,
    ) -> None:
        self.probe_set, self.items, self.name = _as_items(probe_set, set_name)
        self.tolerance, self.seed, self.n_boot, self.confidence = (
            tolerance,
            seed,
            n_boot,
            confidence,
        )
        self.load = dict(load or {})
        self.sentences = list(dict.fromkeys(s for it in self.items for s in it.sentences))
        self.items_frame: pd.DataFrame | None = None

    def check(self) -> None:
        _check_counterfactual(self.probe_set, self.items)

    def start(self, models: Sequence[ModelEntry]) -> None:
        from biasprobe.tasks.fillmask import items_table

        self.items_frame = items_table(self.items)

    def score(self, clf: Any, model: ModelEntry, progress: ProgressFn | None) -> dict[str, Any]:
        from biasprobe.backends.classifiers import check_tokenization

        check_tokenization(clf, self.items)
        if progress is not None:
            stored = pairs_stored(clf, self.items)
            if stored is not None:
                progress(model.name, "cached", stored, len(self.items))
        by_sentence = predict(clf, self.sentences, model.name, progress)
        labels = list(clf.labels)
        card = model_block(
            model.name,
            model.family,
            clf.info,
            requested=model.requested,
            alias_of=model.alias_of,
            kind=clf.kind,
            labels=labels,
            positive_label=labels[clf.positive],
        )
        assert self.items_frame is not None
        return {
            "sides": _side_rows(model.name, _sides(self.items_frame), by_sentence),
            "pairs": _pair_rows(model.name, self.items, by_sentence, float(self.tolerance)),
            "card": card,
        }

    def summarise(self, parts: Sequence[dict[str, Any]], models: Sequence[ModelEntry]):
        downstream = pd.concat([p["sides"] for p in parts], ignore_index=True)
        scores = pd.concat([p["pairs"] for p in parts], ignore_index=True)
        kw = {"n_resamples": self.n_boot, "confidence": self.confidence, "seed": self.seed}
        summary = leading(
            summarize_downstream(scores, downstream, set_name=self.name, **kw), SUMMARY_COLUMNS
        )
        comparison = None  # comparison.csv: every run of several models, only those
        if len(parts) > 1:
            comparison = leading(
                compare_models(scores, set_name=self.name, **kw), COMPARISON_COLUMNS
            )
        settings = {"tolerance": float(self.tolerance), "seed": self.seed}
        settings.update(n_bootstrap=self.n_boot, confidence=self.confidence, **self.load)
        settings["n_sentences"] = len(self.sentences)
        meta = head(self.kind)
        meta.update(
            models=[p["card"] for p in parts],
            settings=settings,
            probe_set=_probe_meta(self.probe_set, self.name, len(self.items)),
        )
        assert self.items_frame is not None
        return DownstreamResult(meta, self.items_frame, downstream, scores, summary, comparison)


def run_downstream(
    probe_set: ProbeSet | Sequence[ProbeItem],
    models: Sequence[Any],
    *,
    set_name: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    n_boot: int = 2000,
    confidence: float = 0.95,
    positive_label: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
    revision: str | None = None,
    trust_remote_code: bool = False,
    progress: ProgressFn | None = None,
    cache: Any = None,
    distribute: Any = None,
    engine: str = "local",
    ray: Any = None,
) -> DownstreamResult:
    """Score every pair with every classifier and aggregate.

    Args:
        probe_set: a counterfactual :class:`~biasprobe.probes.ProbeSet`, or a list of
            :class:`~biasprobe.probes.ProbeItem` (then ``set_name`` names them).
        models: classifier names (sentiment run folder, HF folder or hub id) or loaded
            :class:`~biasprobe.backends.classifiers.ClassifierBackend` objects. The first is the base.
        tolerance: |Δ| above which a pair fails the invariance test.
        seed: seed of the bootstrap (and of torch).
        n_boot: bootstrap resamples.
        positive_label: name of the positive class for HF models whose labels are ambiguous.
        device, batch_size, revision, trust_remote_code: how HF/sentiment models are loaded.
        progress: optional callback ``(model, stage, done, total)``; with the result cache,
            stage ``cached`` once before scoring (``done`` = pairs whose both sentences are
            stored, ``total`` = the pairs).
        cache: the result cache (:mod:`biasprobe.cache`; label probabilities by model
            identity and sentence, so a killed run resumes): None for the default folder, a
            folder, or False for none.
        distribute: where models score (:func:`biasprobe.engine.run`): None for here, or
            e.g. a :class:`biasprobe.distributed.RayEngine` (``engine=`` builds one).
        engine: where models compute: ``"local"`` (this process) or ``"ray"`` (Ray actors,
            ``pip install 'biasprobe[ray]'``; see ``docs/ray.md``).
        ray: with ``engine="ray"``: a :class:`biasprobe.distributed.RayOptions` or a dict of
            its fields (``actors``, ``num_cpus``, ``num_gpus``, ``address``, ...).

    Raises:
        UsageError: a fill-mask set or item, no model, a model given twice, a bad tolerance.
        ModelLoadError: a model cannot be loaded.
    """
    _check_settings([_model_name(m) for m in models], tolerance, n_boot)
    load = {"device": device, "revision": revision, "positive_label": positive_label}
    load.update(batch_size=batch_size, trust_remote_code=trust_remote_code)
    task = CounterfactualTask(
        probe_set,
        set_name=set_name,
        tolerance=tolerance,
        seed=seed,
        n_boot=n_boot,
        confidence=confidence,
        load=load,
    )
    task.check()  # a fill-mask set fails before the models are looked at
    if engine != "local" or ray is not None:  # biasprobe.distributed imports torch
        from biasprobe.distributed.options import distribute_for

        distribute = distribute_for(engine, ray, distribute)
    return engine_loop.run(
        task, list(models), load=load, cache=cache, progress=progress, distribute=distribute
    )
