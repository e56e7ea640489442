"""The fill-mask task: a probe set on masked LMs and causal LMs (:class:`FillMaskTask`), run
through :func:`biasprobe.engine.run` by :func:`run`. Every model's pairs are scored by
:func:`biasprobe.tasks.fillmask_scoring.score_model`; the summary and every comparison with the
base model (the first) are computed at summarise time.

A masked LM's fill is its distribution at ``[MASK]``; a causal LM's
(:class:`biasprobe.backends.causal_fill.CausalFill`) is its next-token distribution after the
text before ``[MASK]``. On a causal LM only punctuation and whitespace may follow ``[MASK]``
(the model never sees it), and prior-normalised (attribute) pairs are refused:
:func:`check_causal_items` says so, naming every template (``file:line``), before any model is
loaded.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import pandas as pd

from biasprobe import engine as engine_loop  # "engine" is a keyword of run functions
from biasprobe.backends import MaskedLMBackend
from biasprobe.backends.cached import CachedMaskedLM
from biasprobe.backends.causal_fill import FILL, FILLS, PRIOR_REFUSAL, check_after_mask
from biasprobe.engine import ModelEntry
from biasprobe.errors import UsageError
from biasprobe.probes import MASK, ProbeItem, ProbeSet
from biasprobe.results import (
    BASE_EXTRA,
    DEFAULT_STORE_TOP_N,
    STORE_MODES,
    PairStore,
    RunResult,
    model_slug,
)
from biasprobe.runfolders.schema import COMPARISON_COLUMNS, head, leading, model_block
from biasprobe.scores import RBO_P, summarize
from biasprobe.tasks.fillmask_scoring import SIDES, TARGET_COLUMNS, score_model
from biasprobe.tasks.fillmask_tables import concat_frames

#: progress(model, stage, done, total); stage is "load" (0 of 1, then 1 of 1), "score" (masked
#: sentences), "targets" (forward inputs of multi-piece targets) or "priors" (inputs of the
#: prior sentences); updated after every forward batch where the backend reports batches.
#: With the result cache, "cached" is reported once before scoring: ``done`` = pairs served
#: from the cache (a finished or interrupted earlier run), ``total`` = the model's pairs.
ProgressFn = Callable[[str, str, int, int], None]

DEFAULT_TOP_K = 10
#: Templates listed in the refusal of :func:`check_causal_items` (the rest are counted).
MAX_LISTED = 20


def check_causal_items(items: Sequence[ProbeItem], model: str) -> None:
    """Refuse what a causal LM's fill cannot score, naming every template (``file:line``).

    A causal LM's fill is the next token after the text before ``[MASK]``, so a sentence must
    hold exactly one ``[MASK]`` followed by punctuation and whitespace only (that text is
    never seen by the model); prior-normalised (attribute) pairs need the attribute masked
    inside the prefix, which a next-token model cannot do.

    Raises:
        UsageError: listing each refused template once (its first problem), with the model
            named.
    """
    problems: dict[str, str] = {}
    for it in items:
        if it.template_id in problems:
            continue
        for s, sentence in enumerate(it.sentences):
            masks = sentence.count(MASK)
            why = (
                check_after_mask(sentence.split(MASK, 1)[1])
                if masks == 1
                else f"it holds {masks} {MASK}s; a causal language model fills exactly one"
            )
            if why is not None:
                problems[it.template_id] = (
                    f"{it.source}: template {it.template_id!r}, side {SIDES[s]} "
                    f"({sentence!r}): {why}"
                )
                break
        if it.template_id not in problems and it.attribute is not None:
            problems[it.template_id] = (
                f"{it.source}: template {it.template_id!r} declares an attribute "
                f"({it.attribute!r}): {PRIOR_REFUSAL}"
            )
    if not problems:
        return
    lines = list(problems.values())
    shown = "\n".join(f"  {line}" for line in lines[:MAX_LISTED])
    if len(lines) > MAX_LISTED:
        shown += f"\n  … and {len(lines) - MAX_LISTED} more templates"
    exclude = " ".join(f"--exclude {t}" for t in list(problems)[:MAX_LISTED])
    raise UsageError(
        f"model {model} is a causal language model (its fill is {FILL}); "
        f"{len(lines)} template{'s' if len(lines) > 1 else ''} of the probe set cannot run on "
        f"it:\n{shown}\nLeave them out ({exclude}), or run them on masked language models only"
    )


def select_items(
    items: Sequence[ProbeItem],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> list[ProbeItem]:
    """Keep the items whose pair id or template id matches any ``include`` glob and no
    ``exclude`` glob (``fnmatch`` patterns, e.g. ``cpr-*``).

    Raises:
        UsageError: a pattern matches nothing, or nothing is left.
    """

    def hit(item: ProbeItem, pattern: str) -> bool:
        return fnmatch.fnmatchcase(item.pair_id, pattern) or fnmatch.fnmatchcase(
            item.template_id, pattern
        )

    for pattern in [*(include or []), *(exclude or [])]:
        if not any(hit(it, pattern) for it in items):
            known = ", ".join(dict.fromkeys(it.template_id for it in items))
            raise UsageError(f"pair pattern {pattern!r} matches no pair (pairs: {known})")
    kept = [
        it
        for it in items
        if (not include or any(hit(it, p) for p in include))
        and not any(hit(it, p) for p in exclude or [])
    ]
    if not kept:
        raise UsageError("the --pairs/--exclude patterns leave no pair to run")
    return kept


def items_table(items: Sequence[ProbeItem]) -> pd.DataFrame:
    """One row per (pair, side) describing the expanded probe pairs (built column by column:
    a suite of 100,000 pairs makes 200,000 rows)."""
    cols: dict[str, list[Any]] = {
        name: []
        for name in (
            "pair_id",
            "template_id",
            "side",
            "group",
            "role",
            "template_sentence",
            "fills",
            "source",
            "attribute",
            "prior_sentence",
            "prior_mask_index",
        )
    }
    for it in items:
        fills = "; ".join(f"{slot}={words}" for slot, words in it.fills)
        for s, side in enumerate(SIDES):
            cols["pair_id"].append(it.pair_id)
            cols["template_id"].append(it.template_id)
            cols["side"].append(side)
            cols["group"].append(it.groups[s])
            cols["role"].append("minoritized" if s == it.minoritized else "normative")
            cols["template_sentence"].append(it.sentences[s])
            cols["fills"].append(fills)
            cols["source"].append(it.source)
            # the prior sentence of prior-normalised scores (empty without an attribute)
            cols["attribute"].append(it.attribute or "")
            cols["prior_sentence"].append(it.prior_sentences[s] if it.prior_sentences else "")
            cols["prior_mask_index"].append(it.prior_mask_index)
    return pd.DataFrame(cols)


#: Upper bounds of the options, checked before anything runs.
MAX_BOOTSTRAP = 100_000
MAX_SEED = 2**32 - 1


def check_options(*, top_k: int | None, batch_size: int, seed: int, n_bootstrap: int) -> None:
    """Refuse option values that cannot work, before any model is loaded.

    Raises:
        UsageError: naming the option and the accepted range.
    """
    checks = [
        ("--top-k", top_k, 1, None),
        ("--batch-size", batch_size, 1, None),
        ("--seed", seed, 0, MAX_SEED),
        ("--bootstrap", n_bootstrap, 100, MAX_BOOTSTRAP),
    ]
    for option, value, low, high in checks:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{option} must be an integer, got {value!r}")
        if value < low or (high is not None and value > high):
            accepted = f"at least {low}" if high is None else f"from {low} to {high:,}"
            raise UsageError(f"{option} must be {accepted}, got {value}")


def run(
    probe_set: ProbeSet,
    models: Sequence[str | MaskedLMBackend] | None = None,
    *,
    top_k: int | None = None,
    device: str | None = None,
    batch_size: int = 32,
    revision: str | None = None,
    seed: int = 0,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    pairs: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    trust_remote_code: bool = False,
    progress: ProgressFn | None = None,
    valence: bool = False,
    cache: Any = None,
    store: str = "topn",
    store_top_n: int = DEFAULT_STORE_TOP_N,
    measures: Sequence[str] = (),
    distribute: Any = None,
    engine: str = "local",
    ray: Any = None,
) -> RunResult:
    """Run a probe set on models and return every table.

    Every model is found (and a local folder's config, weights and tokenizer files checked)
    before the first model is loaded, so a typo in the last ``--model`` fails at once.

    Args:
        probe_set: from :func:`biasprobe.load_probe_set`.
        models: hub ids, local folders, ``recorded:DIR`` specs or loaded backends, of masked
            LMs or causal LMs (a causal LM's fill is its next-token distribution after the
            text before ``[MASK]``; see :func:`check_causal_items` for what it refuses);
            defaults to the probe set's ``models``. The first is the base for comparisons.
        top_k: top-k depth (default: the probe set's ``top_k``, else 10), at most the vocabulary.
        device: ``auto``/``cpu``/``cuda``/``cuda:N``/``mps``.
        batch_size: sentences per forward pass.
        revision: hub revision for every hub model (``name@rev`` sets one per model).
        seed: seeds torch and the bootstrap (0 … 2**32 − 1).
        n_bootstrap: bootstrap resamples for confidence intervals (100 … 100,000).
        confidence: confidence level of the intervals.
        pairs: keep only pairs matching these globs (pair or template id).
        exclude: drop pairs matching these globs.
        trust_remote_code: allow custom model code from model repositories.
        progress: optional callback ``(model, stage, done, total)``.
        valence: also score the valence of completions (:mod:`biasprobe.measures.valence`, VADER
            lexicon; needs the optional ``vaderSentiment``): signed ``valence_*`` columns in
            ``scores`` and their aggregates in ``summary`` (the same as ``measures=["valence"]``).
        cache: the result cache of the models this run loads (:mod:`biasprobe.cache`): None
            for the default folder, a folder, or False for none.
        store: what is kept of each sentence's full-vocabulary log-probs once it is scored:
            ``"topn"`` (per pair, the union of both sides' top ``store_top_n`` tokens; every
            score is computed from the full vectors first, so it is the same either way) or
            ``"full"`` (every vector).
        store_top_n: N of ``store="topn"``.
        measures: optional measures of the registry (:mod:`biasprobe.measures`) to compute
            as well, by name; their columns go into ``scores`` and ``summary``.
        distribute: where models score (:func:`biasprobe.engine.run`): None for here, or
            e.g. a :class:`biasprobe.distributed.RayEngine` (``engine=`` builds one).
        engine: where models compute: ``"local"`` (this process) or ``"ray"`` (Ray actors,
            ``pip install 'biasprobe[ray]'``; see ``docs/ray.md``).
        ray: with ``engine="ray"``: a :class:`biasprobe.distributed.RayOptions` or a dict of
            its fields (``actors``, ``num_cpus``, ``num_gpus``, ``address``, ...).

    Raises:
        BiasprobeError: any user-facing problem (model, device, vocabulary, ...).
    """
    task = FillMaskTask(
        probe_set,
        top_k=top_k,
        seed=seed,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        pairs=pairs,
        exclude=exclude,
        measures=[*(["valence"] if valence else []), *measures],
        store=store,
        store_top_n=store_top_n,
        settings={"device": device, "batch_size": batch_size},
    )
    task.check()  # options fail before the models are looked at
    if engine != "local" or ray is not None:  # biasprobe.distributed imports torch
        from biasprobe.distributed.options import distribute_for

        distribute = distribute_for(engine, ray, distribute)
    specs = list(models) if models else list(probe_set.models)
    if not specs:
        raise UsageError(f"no model to run: pass --model, or list models: in {probe_set.path}")
    load = {"device": device, "batch_size": batch_size, "trust_remote_code": trust_remote_code}
    return engine_loop.run(
        task,
        specs,
        load=load,
        revision=revision,
        cache=cache,
        progress=progress,
        distribute=distribute,
    )


class FillMaskTask:
    """A fill-mask probe set on masked LMs and causal LMs (options as :func:`run` takes them).

    Per model, :func:`~biasprobe.tasks.fillmask_scoring.score_model` streams its pairs in
    chunks of distinct sentences through the cached model; models after the first also keep
    the first one's top-300 tokens of each side (which the first keeps too), so that the
    comparison's Spearman ρ stays exact.
    """

    kind = "fill-mask"
    #: masked LMs, else causal LMs (the fill: the next token after the text before [MASK])
    family = ("masked-lm", "causal-lm")
    cached = True

    def __init__(
        self,
        probe_set: ProbeSet,
        *,
        top_k: int | None = None,
        seed: int = 0,
        n_bootstrap: int = 2000,
        confidence: float = 0.95,
        pairs: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        measures: Sequence[str] = (),
        store: str = "topn",
        store_top_n: int = DEFAULT_STORE_TOP_N,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.probe_set = probe_set
        self.top_k, self.seed, self.n_bootstrap, self.confidence = (
            top_k,
            seed,
            n_bootstrap,
            confidence,
        )
        self.pairs, self.exclude = pairs, exclude
        #: the optional measures asked for (registry names), each once, in the order given
        self.measures = list(dict.fromkeys(measures))
        self.store, self.store_top_n = store, store_top_n
        self.settings = dict(settings or {})
        self.k = 0
        self.items: list[ProbeItem] = []
        self.loaded: dict[str, Any] | None = None  # what each optional measure loaded
        self.n_models = 0
        self.base: PairStore | None = None
        self.base_identity: str | None = None  # its model's cache identity (pair record keys)
        self.base_vocab: tuple[str, ...] = ()

    def check(self) -> None:
        """The set's kind, top-k, batch size, seed, bootstrap and store options, the pair
        selection and what the optional measures need (valence: the lexicon): all before any
        model is looked at."""
        ps = self.probe_set
        if getattr(ps, "kind", "fill-mask") != "fill-mask":
            raise UsageError(
                f"{ps.path}: a {ps.kind} probe set has no [MASK] to fill; run it on "
                "sentiment classifiers (biasprobe.downstream.run_downstream, or `biasprobe run` "
                "with classifier models)"
            )
        self.k = int(self.top_k if self.top_k is not None else (ps.top_k or DEFAULT_TOP_K))
        batch_size = int(self.settings.get("batch_size", 32))
        check_options(
            top_k=self.k, batch_size=batch_size, seed=self.seed, n_bootstrap=self.n_bootstrap
        )
        check_store(self.store, self.store_top_n)
        self.items = select_items(ps.items, self.pairs, self.exclude)
        if self.loaded is None:
            from biasprobe.measures import get, load_resources

            for name in self.measures:
                if not get(name).optional or get(name).kind != self.kind:
                    raise UsageError(f"{name!r} is not an optional measure of {self.kind} sets")
            self.loaded = load_resources(self.measures)  # fails before any model is loaded

    def start(self, models: Sequence[ModelEntry]) -> None:
        """Causal LMs: every selected template checked (:func:`check_causal_items`)."""
        self.n_models = len(models)
        for m in models:
            if m.family == "causal-lm":
                check_causal_items(self.items, m.name)
        if any(m.live for m in models):
            import torch  # only live models need it; recorded outputs never import torch

            torch.manual_seed(self.seed)

    def score(self, backend: Any, model: ModelEntry, progress: ProgressFn | None) -> dict:
        if model.family == "causal-lm":  # a hub id is told causal only when loaded
            check_causal_items(self.items, model.name)
        if self.k > len(backend.vocab):
            raise UsageError(
                f"top-k {self.k} (--top-k, else the probe file's top_k) is larger than the "
                f"vocabulary of model {backend.name} ({len(backend.vocab)} tokens)"
            )
        first = self.base is None
        storage: dict[str, Any] = {"store": self.store, "store_top_n": self.store_top_n}
        if first:
            storage["depth"] = BASE_EXTRA if self.n_models > 1 else None
        elif tuple(backend.vocab) == self.base_vocab:
            # the base model's top tokens are kept too, so that Spearman's ρ with it is exact;
            # a model of another vocabulary (BERT and GPT-2) has no ρ with the base, and the
            # base's token ids are not its tokens
            storage.update(base=self.base, base_identity=self.base_identity)
        if self.store == "topn" and self.store_top_n >= len(backend.vocab):
            # a top N that covers the vocabulary keeps every token: store it as what it is, so
            # that every view (the whole vocabulary included) can be redrawn
            storage["store"] = "full"
        scored = score_model(
            backend,
            self.items,
            top_k=self.k,
            progress=progress,
            rbo_p=RBO_P,
            measures=self.loaded,
            **storage,
        )
        if first:
            self.base, self.base_vocab = scored.store, tuple(backend.vocab)
            self.base_identity = backend.identity if isinstance(backend, CachedMaskedLM) else None
        return {"name": backend.name, "scored": scored, "card": _model_card(backend, model)}

    def summarise(self, parts: Sequence[dict], models: Sequence[ModelEntry]) -> RunResult:
        frames: dict[str, list[pd.DataFrame]] = {"topk": [], "scores": [], "targets": []}
        for part in parts:
            for key, frame_list in frames.items():
                frame = getattr(part["scored"], key)
                if not frame.empty:
                    frame_list.append(frame)
        tables = {key: concat_frames(v) for key, v in frames.items()}
        tables["targets"] = tables["targets"].reindex(columns=TARGET_COLUMNS)
        ps, scores = self.probe_set, tables["scores"]
        boot = {"n_resamples": self.n_bootstrap, "confidence": self.confidence, "seed": self.seed}
        arbitrary = {p.id for p in ps.pairs if getattr(p, "arbitrary_orientation", False)}
        summary = _summary(scores, ps.name, measures=self.measures, arbitrary=arbitrary, **boot)
        settings = _settings(
            k=self.k,
            device=self.settings.get("device"),
            batch_size=self.settings.get("batch_size", 32),
            seed=self.seed,
            n_bootstrap=self.n_bootstrap,
            confidence=self.confidence,
            measures=self.measures,
            store=self.store,
            store_top_n=self.store_top_n,
            causal=any(m.family == "causal-lm" for m in models),
        )
        cards = [p["card"] for p in parts]
        result = RunResult(
            meta=_meta(ps, self.items, self.pairs, self.exclude, cards, settings),
            items=items_table(self.items),
            topk=tables["topk"],
            scores=scores,
            summary=summary,
            targets=tables["targets"],
            logprobs={p["name"]: p["scored"].store for p in parts},
        )
        result.comparison = comparison(result, ps.name, boot)
        return result


def comparison(result: RunResult, set_name: str, boot: Mapping[str, Any]) -> pd.DataFrame | None:
    """Every comparison of each later model with the base (the first), computed once and
    stored (:func:`biasprobe.comparisons.fill_mask_comparison`); None for one model."""
    from biasprobe.comparisons import fill_mask_comparison

    names = result.models
    if len(names) < 2:
        return None
    table = fill_mask_comparison(
        result.scores, set_name=set_name, base=names[0], models=names[1:], tokens=result, **boot
    )
    return leading(table, COMPARISON_COLUMNS)


def check_store(store: str, top_n: int) -> None:
    """Refuse a ``--store`` / ``--store-top-n`` that cannot work, before any model is loaded.

    Raises:
        UsageError: naming the option and what it accepts.
    """
    if store not in STORE_MODES:
        raise UsageError(f"--store must be one of {', '.join(STORE_MODES)}, got {store!r}")
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise UsageError(f"--store-top-n must be an integer of at least 1, got {top_n!r}")


def _summary(
    scores: pd.DataFrame,
    set_name: str,
    *,
    measures: Sequence[str] = (),
    arbitrary: Collection[str] = (),
    **boot: Any,
) -> pd.DataFrame:
    """The summary table of every score the registry names for a fill-mask run computing the
    optional ``measures``; templates of arbitrary orientation stay out of the signed set
    rows."""
    from biasprobe.measures import signed_columns, summary_scores

    names = summary_scores(measures, kind="fill-mask")
    signed = signed_columns(measures, kind="fill-mask")
    return summarize(
        scores, set_name=set_name, score_names=names, signed=signed, arbitrary=arbitrary, **boot
    )


def _settings(
    *, k, device, batch_size, seed, n_bootstrap, confidence, measures, store, store_top_n, causal
) -> dict[str, Any]:
    out = {
        "top_k": k,
        "device": device or "auto",
        "batch_size": batch_size,
        "seed": seed,
        "bootstrap_resamples": n_bootstrap,
        "confidence": confidence,
        "rbo_p": RBO_P,  # the value score_model is given (_score_one)
        "multi_piece_targets": "chain rule over consecutive masks, left to right"
        + ("; causal LMs: chain rule over the word's pieces after the prefix" if causal else ""),
        "p_values": "sign-flip test, 10,000 flips (exact up to 16 values); set: template means",
        "store": store,
    }
    if store == "topn":
        out["store_top_n"] = store_top_n
    if measures:  # what each optional measure records (valence: lexicon, threshold, top k)
        from biasprobe.measures import run_settings

        out.update(run_settings(measures, k=k))
    return out


def _model_card(backend: MaskedLMBackend, model: ModelEntry) -> dict[str, Any]:
    """The model's provenance block (:func:`biasprobe.runfolders.schema.model_block`)."""
    return model_block(
        backend.name,
        model.family,
        backend.info,
        requested=model.requested,
        alias_of=model.alias_of,
        slug=model_slug(backend.name),
        mask_token=backend.mask_token,
        vocab_size=len(backend.vocab),
        fill=FILLS.get(model.family, ""),
    )


def _meta(probe_set, items, pairs, exclude, model_meta, settings) -> dict[str, Any]:
    # versions read from package metadata: the recorded: path must not import torch to ask
    return {
        **head("fill-mask"),
        "models": model_meta,
        "settings": settings,
        "probe_set": {
            "name": probe_set.name,
            "version": probe_set.version,
            "description": probe_set.description,
            "source": probe_set.source,
            "path": probe_set.path,
            "sha256": probe_set.sha256,
            "n_pairs": len(items),
            # templates whose orientation is only a sign convention (names, years)
            "arbitrary_orientation": sorted(
                p.id for p in probe_set.pairs if getattr(p, "arbitrary_orientation", False)
            ),
            "pairs_selected": {"include": list(pairs or []), "exclude": list(exclude or [])},
        },
    }
