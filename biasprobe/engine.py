"""One engine for every kind of audit.

A :class:`Task` (a fill-mask probe set, a counterfactual set on classifiers, CrowS-Pairs …)
says which model family it needs, checks its options, scores one loaded model at a time
(streaming, in the batches it always forms, so that cached results stay bit-identical) and
summarises — every comparison with the base model included — into a result that is one run
folder. :func:`run` is the one loop::

    task.check()                                   # options, before anything is loaded
    models = resolve(specs, task.family)           # EVERY model found, checked, its family chosen
    task.start(models)
    for model in models:                           # one model in memory at a time
        backend = load(model)                      # + the result cache, where the family has one
        try:
            parts.append(task.score(backend, model, progress))
        finally:
            close(backend)                         # only what the engine loaded
    return task.summarise(parts, models)

Unlike lm-evaluation-harness's evaluator, requests are not collected across models before
running: each task streams through one model's requests, and the cache wrapper sees the same
batches every time.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from biasprobe.errors import UsageError

__all__ = [
    "ALIAS_RE",
    "FAMILIES",
    "ModelEntry",
    "ProgressFn",
    "Task",
    "check_interface",
    "check_names",
    "resolve",
    "run",
    "split_alias",
]

#: progress(model, stage, done, total): stage ``load`` (a step without counts) or the task's
#: own (``score``, ``targets`` …).
ProgressFn = Callable[[str, str, int, int], None]
#: A model alias (``-m NAME=MODEL``): a letter, then letters, digits, ``_``, ``.`` or ``-``.
ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")
#: The model families a task may need (a task may accept several, in order of preference).
FAMILIES = ("masked-lm", "causal-lm", "classifier", "sentence-scorer")
#: The protocol (in :mod:`biasprobe.backends.base`) a model object of each family implements.
PROTOCOLS = {
    "masked-lm": "MaskedLM",
    "causal-lm": "MaskedLM",  # a causal LM's fill: the next token after the text before [MASK]
    "classifier": "Classifier",
    "sentence-scorer": "SentenceScorer",
}


@dataclasses.dataclass
class ModelEntry:
    """One model of a run, resolved but not loaded.

    Attributes:
        name: its name in every table, file and report (its alias with ``NAME=MODEL``).
        spec: the resolved :class:`~biasprobe.backends.registry.ModelSpec`, or an object
            already loaded (then the engine neither loads nor closes it).
        requested: what the user gave (without the alias), or None for a loaded object.
        alias_of: the model an alias stands for, else None.
        live: whether it computes anything (recorded outputs and loaded objects cannot be
            cached by identity).
        object_family: the family of an object already loaded (the first of the task's
            families whose protocol it implements).
    """

    name: str
    spec: Any
    requested: str | None = None
    alias_of: str | None = None
    live: bool = True
    object_family: str = ""

    @property
    def family(self) -> str:
        """The family this model is served as (``masked-lm``, ``causal-lm``, ...): chosen
        when it was resolved, or when it was loaded for a hub id not inspected before."""
        return self.object_family if self.loaded else self.spec.family

    @property
    def loaded(self) -> bool:
        return self.requested is None


@runtime_checkable
class Task(Protocol):
    """What a kind of audit gives the engine (see the module docstring for the loop).

    Attributes:
        kind: its run folder's kind (``fill-mask``, ``counterfactual``, ``crows-pairs``).
        family: the model family it needs (:data:`FAMILIES`), or a tuple of the families it
            accepts in order of preference (a fill-mask set: masked or causal LMs; each model
            is served as the first its kind serves, :attr:`ModelEntry.family`).
        cached: whether its requests go through the result cache.
    """

    kind: str
    family: str | tuple[str, ...]
    #: whether the engine puts the result cache around each model (any family)
    cached: bool

    def check(self) -> None:
        """Refuse bad options (:class:`~biasprobe.errors.UsageError`) before any model."""

    def start(self, models: Sequence[ModelEntry]) -> None:
        """Every model is resolved, none loaded: the last checks that need them all."""

    def score(self, backend: Any, model: ModelEntry, progress: ProgressFn | None) -> Any:
        """Score one loaded model (the cache already around it); returns its part."""

    def summarise(self, parts: Sequence[Any], models: Sequence[ModelEntry]) -> Any:
        """The result of the run (one run folder) from every model's part, in run order,
        with every comparison with the base model (the first) computed."""


def split_alias(text: str) -> tuple[str | None, str]:
    """``"base=./ckpt"`` → ``("base", "./ckpt")``; a value without an alias → ``(None, text)``.

    The part before the first ``=`` is an alias only when it looks like a name (no ``/``,
    ``\\``, ``:`` or ``@``, not starting with ``.`` or ``~``) and the whole value is not an
    existing path, so a folder whose name holds ``=`` still works.

    Raises:
        UsageError: an alias that is empty, names no model, or is not a simple name.
    """
    if "=" not in text or Path(text).expanduser().exists():
        return None, text
    alias, _, spec = text.partition("=")
    if any(c in alias for c in "/\\:@") or alias.startswith((".", "~")):
        return None, text  # a path or hub id holding "=": not an alias
    if not ALIAS_RE.fullmatch(alias):
        raise UsageError(
            f"--model {text!r}: {alias!r} is not a usable alias (NAME=MODEL, NAME: a letter "
            "then up to 39 letters, digits, '_', '.' or '-')"
        )
    if not spec:
        raise UsageError(f"--model {text!r}: the alias {alias!r} names no model (NAME=MODEL)")
    return alias, spec


def check_names(models: Sequence[ModelEntry], keys: Sequence[str] | None = None) -> None:
    """Refuse the same model twice and two models with one name.

    Raises:
        UsageError: naming the model or the name.
    """
    keys = list(keys) if keys is not None else [m.requested or m.name for m in models]
    names = [m.name for m in models]
    dupes = sorted({n for n, k in zip(names, keys, strict=True) if keys.count(k) > 1})
    if dupes:
        raise UsageError(f"model given twice: {', '.join(dupes)} (the same model)")
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise UsageError(
            f"two models are named {', '.join(map(repr, clashes))}; give each model its own "
            "alias (-m NAME=MODEL)"
        )


def resolve(
    specs: Sequence[Any], family: str | Sequence[str], *, revision: str | None = None
) -> list[ModelEntry]:
    """Find every model of a run without loading any weights.

    Every name goes through the backend registry (:func:`biasprobe.backends.registry.resolve`):
    masked LMs are a hub id (``NAME@REV``), a local folder (config, weights and tokenizer files
    checked) or ``recorded:DIR``; classifiers a sentiment run folder, a Hugging Face folder or
    hub id; a model of the wrong kind for the family is refused here, before any is loaded.
    Any value may be ``NAME=MODEL``; an object already loaded is used as it is. ``family``
    may be several families in order of preference: each model is served as the first its
    kind serves (:attr:`ModelEntry.family`).

    Raises:
        UsageError: no model, the same model or name twice, a bad alias, an unknown family.
        ModelLoadError: a model cannot be found, its folder is incomplete, or it is of another
            kind than the family needs.
    """
    families = (family,) if isinstance(family, str) else tuple(family)
    for f in families:
        if f not in FAMILIES:
            raise UsageError(f"unknown model family {f!r}; expected {', '.join(FAMILIES)}")
    if not specs:
        raise UsageError("no model to run: pass --model")
    out: list[ModelEntry] = []
    keys: list[str] = []
    for given in specs:
        if not isinstance(given, str):
            served = check_interface(given, families)
            out.append(ModelEntry(str(given.name), given, live=False, object_family=served))
            keys.append(f"backend:{given.name}")
            continue
        alias, text = split_alias(given)
        from biasprobe.backends.registry import resolve as resolve_model

        spec = resolve_model(text, families, revision=revision)  # found and of the right kind
        keys.append(spec.key)
        out.append(ModelEntry(alias or text, spec, requested=text, alias_of=alias and text))
        out[-1].live = spec.kind != "recorded"  # recorded outputs compute nothing
    check_names(out, keys)
    return out


def check_interface(obj: Any, family: str | Sequence[str]) -> str:
    """The first of the families whose protocol (:data:`PROTOCOLS`: a
    :class:`~biasprobe.backends.base.MaskedLM`, :class:`~biasprobe.backends.base.Classifier` or
    :class:`~biasprobe.backends.base.SentenceScorer`) a model object implements, so that tasks
    use every declared member directly; an object declaring a ``family`` attribute among them
    is served as that family.

    Raises:
        UsageError: the object implements none, naming it and the members it lacks for the
            first family.
    """
    from biasprobe.backends import base

    families = (family,) if isinstance(family, str) else tuple(family)
    lacks: dict[str, list[str]] = {}
    for f in families:
        protocol = getattr(base, PROTOCOLS[f])
        members = [
            *getattr(protocol, "__annotations__", {}),
            *(n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")),
        ]
        lacks[f] = sorted({m for m in members if not hasattr(obj, m)})
    declared = getattr(obj, "family", None)
    if declared in lacks and not lacks[declared]:
        return declared
    family = next((f for f in families if not lacks[f]), families[0])
    lacking = lacks[family]
    if lacking:
        base_class = {
            "MaskedLM": "MaskedLMBackend",
            "Classifier": "classifiers.ClassifierBackend",
            "SentenceScorer": "base.SentenceScorer (a protocol)",
        }[PROTOCOLS[family]]
        raise UsageError(
            f"model object {type(obj).__name__} ({getattr(obj, 'name', '?')!s}) is not a "
            f"{family.replace('-', ' ')}: it lacks {', '.join(lacking)} (subclass "
            f"biasprobe.backends.{base_class}, which gives defaults for the optional members)"
        )
    return family


def _load(model: ModelEntry, load: dict[str, Any]) -> Any:
    if model.loaded:
        return model.spec
    from biasprobe.backends.registry import load as load_model

    backend = load_model(model.spec, **load)  # as model.family (decided now for a hub id)
    if model.alias_of is not None:
        backend.name = model.name
    return backend


def _cached(backend: Any, family: str, model: ModelEntry, opened: Any, runner: Any = None) -> Any:
    """``backend`` behind the result cache (one place for every family): a masked or causal
    LM's fill requests, a classifier's label probabilities, a sentence scorer's sentence
    log-likelihoods; an object passed in is not cached (its weights may differ from any
    files), recorded outputs compute nothing. ``runner``: where the batches the cache misses
    are computed (a :class:`~biasprobe.backends.base.CallRunner`; None: here)."""
    from biasprobe.backends.cached import OBJECT_REASON, wrap, wrap_classifier
    from biasprobe.backends.cached_sentences import wrap_scorer

    store = OBJECT_REASON if model.loaded else opened
    if family in ("masked-lm", "causal-lm"):
        return wrap(backend, store, runner)
    if family == "classifier":
        return wrap_classifier(backend, store, runner)
    return wrap_scorer(backend, store, runner)


def run(
    task: Task,
    specs: Sequence[Any],
    *,
    load: dict[str, Any] | None = None,
    revision: str | None = None,
    cache: Any = False,
    progress: ProgressFn | None = None,
    distribute: Callable[[Any, ModelEntry, dict[str, Any]], Any] | None = None,
) -> Any:
    """Run ``task`` on every model of ``specs`` (the first is the base) and summarise.

    Args:
        task: the audit (:class:`Task`).
        specs: model specs as the user gives them (``NAME=MODEL`` allowed) or loaded models.
        load: keyword arguments of the family's loader (device, batch size, …).
        revision: hub revision of every hub model (``name@rev`` sets one per model).
        cache: the result cache of a task that uses it (``task.cached``): None for the
            default folder, a folder, an open cache, or False for none.
        progress: optional ``(model, stage, done, total)`` callback.
        distribute: optional ``(backend, model, load) -> CallRunner | None``, called with
            each loaded model (e.g. :class:`biasprobe.distributed.RayEngine`): the runner
            computes the batches the result cache misses on replicas elsewhere; the driver
            keeps the cache, the tables and the run folder. None: everything computes here.

    Raises:
        BiasprobeError: a bad option or model (before anything is loaded), or what loading
            or scoring a model raises.
    """
    task.check()
    models = resolve(specs, task.family, revision=revision)
    task.start(models)
    opened: Any = "--no-cache"
    if task.cached:
        from biasprobe.backends.cached import open_cache

        opened = open_cache(cache, any(m.live for m in models))
    parts: list[Any] = []
    try:
        for model in models:
            if progress:
                progress(model.name, "load", 0, 1)
            backend = _load(model, dict(load or {}))
            try:
                runner = None
                if distribute is not None:
                    runner = distribute(backend, model, dict(load or {}))
                if task.cached:
                    backend = _cached(backend, model.family, model, opened, runner)
                if progress:
                    progress(model.name, "load", 1, 1)
                parts.append(task.score(backend, model, progress))
            finally:
                if not model.loaded:
                    backend.close()
    finally:
        if opened is not cache and not isinstance(opened, str):  # opened here
            opened.close()
    return task.summarise(parts, models)
