"""Which backend a model name needs, decided in one place: by prefix, folder contents or hub id.

Two steps, so that every model of a run is found and checked before the first forward pass:

* :func:`resolve` ``(text, family)`` → a :class:`ModelSpec`, loading nothing heavy. The kind of
  model is told from

  ===============================  ==========================  =============================
  what the name is                 kind                        serves the families
  ===============================  ==========================  =============================
  ``recorded:DIR`` / ``NAME``      ``recorded``                ``masked-lm``
  biasprobe sentiment run folder   ``sentiment-run``           ``classifier``
  HF config ``architectures``:     ``hf-masked-lm``            ``masked-lm``,
  a masked-LM head                                             ``sentence-scorer`` (PLL)
  HF config ``architectures``:     ``hf-sequence-              ``classifier``
  a sequence-classification head   classification``
  HF config ``architectures``:     ``hf-causal-lm``            ``causal-lm`` (fill-mask: the
  a causal-LM head (``…ForCausalLM``                           next token), ``sentence-
  or ``…LMHeadModel``)                                         scorer`` (chain rule)
  a hub id not in the local cache  ``hf``                      decided when loaded
  ===============================  ==========================  =============================

  A task may accept several families in order of preference (a fill-mask probe set:
  ``("masked-lm", "causal-lm")``; CrowS-Pairs: ``("masked-lm", "sentence-scorer")``): a model
  is served as the first its kind serves. A model of the wrong kind for the family is refused
  with a message saying what it is and what the task needs
  (:class:`~biasprobe.errors.ModelLoadError`).
* :func:`load` ``(spec, family, **options)`` → the backend: a
  :class:`~biasprobe.backends.base.MaskedLM` (``masked-lm``; ``causal-lm``: a causal LM whose
  fill is the next token, :class:`~biasprobe.backends.causal_fill.CausalFill`), a
  :class:`~biasprobe.backends.base.Classifier` (``classifier``) or a
  :class:`~biasprobe.backends.base.SentenceScorer` (``sentence-scorer``: a masked LM scored by
  pseudo-log-likelihood, :class:`~biasprobe.backends.pll.PseudoLogLikelihood`).

A new kind of model is a new row in :data:`KINDS` and a branch of :func:`load`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biasprobe.errors import ModelLoadError, UsageError

__all__ = ["FAMILIES", "KINDS", "ModelSpec", "is_recorded", "load", "resolve", "split_revision"]

#: The model families a task may ask for.
FAMILIES = ("masked-lm", "causal-lm", "classifier", "sentence-scorer")
#: Per kind of model: what it is (for messages) and the families it serves.
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "recorded": ("recorded outputs of a masked language model", ("masked-lm",)),
    "sentiment-run": ("a biasprobe sentiment classifier (a sentiment run folder)", ("classifier",)),
    "hf-masked-lm": ("a masked language model", ("masked-lm", "sentence-scorer")),
    "hf-sequence-classification": ("a sequence classifier", ("classifier",)),
    "hf-causal-lm": ("a causal language model", ("causal-lm", "sentence-scorer")),
    "hf-neither": (
        "neither a masked nor a causal language model nor a sequence classifier",
        (),
    ),
    "hf": ("a Hugging Face model", FAMILIES),  # not inspected yet: decided when loaded
}
#: What each family is called in messages.
NEEDS = {
    "masked-lm": "a masked language model",
    "causal-lm": "a causal language model",
    "classifier": "a sequence classifier",
    "sentence-scorer": "a model that scores sentences (a causal language model, or a masked "
    "language model by pseudo-log-likelihood)",
}
#: Where each kind of model belongs, for the hint of a refusal.
BELONGS = {
    "recorded": "recorded outputs replay fill-mask probe sets",
    "sentiment-run": "sentiment classifiers are run on counterfactual probe sets",
    "hf-masked-lm": "masked language models belong to fill-mask probe sets and CrowS-Pairs",
    "hf-causal-lm": (
        "causal language models run fill-mask probe sets whose [MASK] ends the context, and "
        "score whole sentences by their log-likelihood"
    ),
    "hf-sequence-classification": (
        "sequence classifiers are run on counterfactual probe sets (kind: counterfactual)"
    ),
}
RECORDED_PREFIX = "recorded:"


@dataclass
class ModelSpec:
    """A model name resolved before anything is loaded (see :func:`resolve`).

    Attributes:
        spec: what the user gave.
        key: what identifies the model for duplicate detection (a resolved folder, or the hub
            id with its revision).
        source: the :class:`biasprobe.hub.ModelSource` of a Hugging Face model (None for
            recorded outputs and sentiment run folders).
        revision: the hub revision to load.
        kind: the kind of model (a key of :data:`KINDS`).
        family: the family it is served as (one of :data:`FAMILIES`): the first of
            :attr:`families` its kind serves (for a hub id not yet inspected, kind ``hf``,
            :func:`load` decides it from the downloaded config and updates ``kind`` and
            ``family``).
        architectures: the ``architectures`` of its HF config, when it could be read.
        families: the families the task accepts, in order of preference.
    """

    spec: str
    key: str
    source: Any = None
    revision: str | None = None
    kind: str = ""
    family: str = "masked-lm"
    architectures: tuple[str, ...] = ()
    families: tuple[str, ...] = ()


def split_revision(spec: str) -> tuple[str, str | None]:
    """``"org/model@v1.0"`` → ``("org/model", "v1.0")``; no ``@`` → revision None."""
    if Path(spec).expanduser().exists():
        return spec, None  # an existing folder whose name contains "@"
    if "@" in spec and not spec.startswith((RECORDED_PREFIX, ".", "/", "~")):
        name, _, rev = spec.rpartition("@")
        if name and rev:
            return name, rev
    return spec, None


def is_recorded(text: str) -> bool:
    """Whether a model name names recorded outputs (``recorded:DIR`` or ``recorded:NAME``):
    nothing is computed for it (no cache, no device), told without resolving anything."""
    return text.startswith(RECORDED_PREFIX)


def check_family(family: str) -> None:
    """Raises: UsageError: ``family`` is not one of :data:`FAMILIES`."""
    if family not in FAMILIES:
        raise UsageError(f"unknown model family {family!r}; expected one of {', '.join(FAMILIES)}")


def as_families(family: str | Sequence[str]) -> tuple[str, ...]:
    """A family or a preference-ordered sequence of families, checked, as a tuple.

    Raises:
        UsageError: an unknown family, or none.
    """
    families = (family,) if isinstance(family, str) else tuple(family)
    if not families:
        raise UsageError("no model family given")
    for f in families:
        check_family(f)
    return families


def resolve(text: str, family: str | Sequence[str], revision: str | None = None) -> ModelSpec:
    """Find the model ``text`` names and check that it is of ``family``, loading nothing.

    Args:
        text: ``recorded:DIR`` or ``recorded:NAME``, a sentiment run folder, a Hugging Face
            checkpoint folder, or a hub id (``NAME@REVISION`` pins a revision).
        family: ``masked-lm``, ``causal-lm``, ``classifier`` or ``sentence-scorer``, or a
            sequence of them in order of preference (the model is served as the first its
            kind serves: a fill-mask probe set takes ``("masked-lm", "causal-lm")``).
        revision: hub revision (an ``@REVISION`` in ``text`` wins).

    Raises:
        ModelLoadError: the model cannot be found, its folder is incomplete, or it is of
            another kind than ``family`` needs (naming what it is and what is needed).
        UsageError: unknown family.
    """
    families = as_families(family)
    family = families[0]
    if is_recorded(text):
        from biasprobe.backends.recorded import resolve_recorded

        folder = resolve_recorded(text)
        spec = ModelSpec(text, f"recorded:{folder.resolve()}", kind="recorded", family=family)
        return _checked(spec, families)
    from biasprobe.backends.classifiers import is_sentiment_run

    path = Path(text).expanduser()
    if is_sentiment_run(path):
        spec = ModelSpec(text, str(path.resolve()), kind="sentiment-run", family=family)
        return _checked(spec, families)
    if path.is_dir() and (path / "config.yaml").is_file() and not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{text} looks like a biasprobe sentiment run without weights "
            "(no best.safetensors or model.safetensors): did training finish?"
        )
    from biasprobe.hub import resolve_model_source

    name, rev = split_revision(text)
    src = resolve_model_source(name, revision=rev or revision)
    key = src.info["path"] if src.is_local else f"{name}@{src.revision or 'default'}"
    archs = _architectures(src)
    spec = ModelSpec(text, key, src, rev or revision, _hf_kind(archs), family, archs)
    return _checked(spec, families)


def _checked(spec: ModelSpec, families: tuple[str, ...] | None = None) -> ModelSpec:
    """``spec`` served as the first of ``families`` (default: its own family) its kind
    serves, else the refusal (what the model is, what the task needs, and where the model
    belongs)."""
    families = families or (spec.family,)
    what, serves = KINDS[spec.kind]
    for family in families:
        if family in serves:
            return dataclasses.replace(spec, family=family, families=families)
    spec = dataclasses.replace(spec, family=families[0], families=families)
    archs = f" ({', '.join(spec.architectures)})" if spec.architectures else ""
    if spec.kind == "hf-neither":
        what = f"neither a masked nor a causal language model nor a sequence classifier{archs}"
    elif spec.kind == "hf-sequence-classification" and {"masked-lm", "sentence-scorer"} & set(
        families
    ):
        what += f"{archs}, not a complete masked language model"
    elif spec.kind == "hf-masked-lm" and "classifier" in families:
        what += f"{archs}, not a sequence classifier"
    elif spec.kind.startswith("hf-"):
        what += archs
    hint = BELONGS.get(spec.kind)
    raise ModelLoadError(
        f"{_who(spec)} is {what}: this task needs {' or '.join(NEEDS[f] for f in families)}"
        + (f" ({hint})" if hint else "")
    )


def _who(spec: ModelSpec) -> str:
    if spec.source is not None:
        return spec.source.describe()
    return f"model {spec.spec!r}"


def _architectures(src: Any) -> tuple[str, ...]:
    """The ``architectures`` of a local or cached model's config.json (empty if unknown)."""
    import json

    from biasprobe.hub import local_folder

    folder = local_folder(src)
    if folder is None:
        return ()
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()  # the loader says what is wrong with it
    archs = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(archs, list) or isinstance(config.get("auto_map"), dict):
        return ()  # custom code: its classes say nothing the loader cannot check
    return tuple(str(a) for a in archs if isinstance(a, str))


def _remote_architectures(spec: ModelSpec, trust_remote_code: bool | None) -> tuple[str, ...]:
    """The ``architectures`` of a hub model's config, downloaded (or read from the cache) by
    ``AutoConfig`` (repository code only if the user allowed it): what decides the kind of a hub id that was not in
    the local cache when the run was resolved.

    Raises:
        ModelLoadError: the config cannot be read (the message says how to use a local copy).
    """
    from transformers import AutoConfig

    from biasprobe.hub import describe_error, local_help

    src = spec.source
    try:
        config = AutoConfig.from_pretrained(
            src.load_from,
            revision=src.revision,
            trust_remote_code=bool(trust_remote_code),
            **src.kwargs,
        )
    except Exception as e:
        raise ModelLoadError(
            f"{src.describe()}: cannot read its config.json ({describe_error(e)}). "
            f"{local_help(src.name)}"
        ) from None
    archs = getattr(config, "architectures", None) or []
    if getattr(config, "auto_map", None):
        return ()  # custom code: its classes say nothing the loader cannot check
    return tuple(str(a) for a in archs if isinstance(a, str))


def _hf_kind(architectures: tuple[str, ...]) -> str:
    """The kind of a Hugging Face checkpoint from its config's architecture names."""
    if not architectures:
        return "hf"
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    mlm = set(MODEL_FOR_MASKED_LM_MAPPING_NAMES.values())
    seq = set(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values())
    if any(a in mlm or a.endswith(("ForMaskedLM", "ForPreTraining")) for a in architectures):
        return "hf-masked-lm"
    if any(a in seq or a.endswith("ForSequenceClassification") for a in architectures):
        return "hf-sequence-classification"
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if any(a in causal or a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "hf-causal-lm"
    return "hf-neither"


def load(spec: ModelSpec | str, family: str | None = None, **options: Any) -> Any:
    """Load the backend of a resolved model (a name is resolved first).

    Args:
        spec: a :class:`ModelSpec` from :func:`resolve`, or a model name.
        family: the family to load it as (default: the one it was resolved for).
        **options: ``device``, ``batch_size``, ``trust_remote_code`` (every family);
            ``revision`` (used to resolve a name); ``positive_label`` (classifiers);
            ``pll_metric`` (``sentence-scorer``: how a masked LM scores a sentence,
            ``original`` pseudo-log-likelihood by default or ``word_l2r``; a causal LM scores
            by the chain rule and ignores it, so that one run can hold both families).

    A hub id that was not in the local cache (kind ``hf``) is inspected here: its config is
    fetched, its kind told from the architectures, and ``spec.kind`` / ``spec.family`` set to
    what it is served as (a causal LM given to a fill-mask set becomes ``causal-lm``).

    Returns:
        a :class:`~biasprobe.backends.base.MaskedLMBackend` (``masked-lm``), a
        :class:`~biasprobe.backends.causal_fill.CausalFill` (``causal-lm``: the next-token
        distribution after the text before ``[MASK]``), a
        :class:`~biasprobe.backends.classifiers.ClassifierBackend` (``classifier``) or a
        :class:`~biasprobe.backends.pll.PseudoLogLikelihood` or
        :class:`~biasprobe.backends.causal.HFCausalLM` (``sentence-scorer``).

    Raises:
        ModelLoadError / DeviceError: the model cannot be loaded; UsageError: an option does
        not apply to the family, or the spec was resolved for another family.
    """
    revision = options.pop("revision", None)
    if isinstance(spec, str):
        spec = resolve(spec, family or "masked-lm", revision=revision)
    if family is not None and family != spec.family:
        check_family(family)
        spec = _checked(dataclasses.replace(spec, family=family))
    if spec.kind == "hf":  # a hub id not in the local cache: its config tells the kind
        archs = _remote_architectures(spec, options.get("trust_remote_code"))
        decided = _checked(
            dataclasses.replace(spec, kind=_hf_kind(archs), architectures=archs),
            spec.families or (spec.family,),
        )
        spec.kind, spec.family, spec.architectures = decided.kind, decided.family, archs
    family = spec.family
    device = options.pop("device", None)
    positive_label = options.pop("positive_label", None)
    if positive_label is not None and family != "classifier":
        raise UsageError("positive_label applies to classifiers only")
    pll_metric = options.pop("pll_metric", None)
    if pll_metric is not None and family != "sentence-scorer":
        raise UsageError("pll_metric applies to models that score sentences only")
    if family == "classifier":
        from biasprobe.backends.classifiers import load_classifier

        return load_classifier(
            spec.spec if spec.kind == "sentiment-run" else split_revision(spec.spec)[0],
            device=device,
            revision=spec.revision,
            positive_label=positive_label,
            **_only(options, "batch_size", "trust_remote_code"),
        )
    if spec.kind == "hf-causal-lm":  # served as causal-lm or sentence-scorer (checked above)
        from biasprobe.backends.causal import load_hf_causal_lm

        causal = load_hf_causal_lm(
            split_revision(spec.spec)[0],
            revision=spec.revision,
            device=device,
            source=spec.source,
            **_only(options, "batch_size", "trust_remote_code"),
        )
        if family == "sentence-scorer":
            return causal
        from biasprobe.backends.causal_fill import CausalFill

        return CausalFill(causal)
    masked = _masked_lm(spec, device, **_only(options, "batch_size", "trust_remote_code"))
    if family == "masked-lm":
        return masked
    from biasprobe.backends.pll import PseudoLogLikelihood

    return PseudoLogLikelihood(masked, metric=pll_metric or "original")


def _only(options: dict[str, Any], *allowed: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UsageError(f"unknown model option(s): {', '.join(unknown)}")
    return options


def _masked_lm(spec: ModelSpec, device: str | None, **options: Any) -> Any:
    if spec.kind == "recorded":
        from biasprobe.backends.recorded import RecordedMaskedLM
        from biasprobe.device import check_device_name

        check_device_name(device)
        return RecordedMaskedLM(spec.spec)
    from biasprobe.backends.hf import load_hf_masked_lm

    name, _ = split_revision(spec.spec)
    return load_hf_masked_lm(
        name, revision=spec.revision, device=device, source=spec.source, **options
    )
