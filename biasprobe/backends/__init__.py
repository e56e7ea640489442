"""Model backends: one public protocol per model family (:mod:`.base`), their implementations
(Hugging Face masked LMs :mod:`.hf`, recorded outputs :mod:`.recorded`, classifiers
:mod:`.classifiers`, pseudo-log-likelihood sentence scoring :mod:`.pll`), the result cache
wrappers (:mod:`.cached`) and the registry that picks one for a model name (:mod:`.registry`).

For masked LMs, use :func:`load_backend` with what a user typed after ``--model``:

- a hub id (``bert-base-uncased``, ``org/model``; ``name@revision`` pins a revision),
- a local checkpoint folder (``./checkpoints/my-bert``),
- ``recorded:DIR`` or ``recorded:NAME`` for recorded outputs (see :mod:`.recorded`).

Other families: :func:`biasprobe.backends.registry.resolve` and
:func:`biasprobe.backends.registry.load` with ``family="classifier"`` or
``"sentence-scorer"``.
"""

from __future__ import annotations

from biasprobe.backends.base import (
    Classifier,
    MaskedLM,
    MaskedLMBackend,
    SentenceLogprobs,
    SentenceScorer,
)
from biasprobe.backends.registry import ModelSpec, load, resolve, split_revision

__all__ = [
    "Classifier",
    "MaskedLM",
    "MaskedLMBackend",
    "ModelSpec",
    "SentenceLogprobs",
    "SentenceScorer",
    "load",
    "load_backend",
    "resolve",
    "resolve_spec",
    "split_revision",
]


def resolve_spec(spec: str, *, revision: str | None = None) -> ModelSpec:
    """Find a masked LM without loading it: recorded folder, local checkpoint, HF cache or hub
    (:func:`biasprobe.backends.registry.resolve` with ``family="masked-lm"``).

    Config, weights and tokenizer files of a local folder are checked here, so that every
    model of a run is known to be loadable before the first forward pass.

    Raises:
        ModelLoadError: the model cannot be found, its folder is incomplete, or it is not a
            masked LM (a sequence classifier, a sentiment run folder, ...).
    """
    return resolve(spec, "masked-lm", revision=revision)


def load_backend(
    spec: str | ModelSpec,
    *,
    device: str | None = None,
    revision: str | None = None,
    batch_size: int = 32,
    trust_remote_code: bool = False,
) -> MaskedLMBackend:
    """Load the masked LM a ``--model`` value names.

    Args:
        spec: hub id (optionally ``@revision``), local folder, ``recorded:DIR``, or a
            :class:`ModelSpec` from :func:`resolve_spec`.
        device: ``auto``/``cpu``/``cuda``/``cuda:N``/``mps``. Recorded outputs run on no
            device: the name is only spell-checked, and torch is never imported for them.
        revision: hub revision; overridden by an ``@revision`` in ``spec``.
        batch_size: sentences per forward pass.
        trust_remote_code: allow custom model code from the repository.
    """
    return load(
        spec,
        "masked-lm",
        device=device,
        revision=revision,
        batch_size=batch_size,
        trust_remote_code=trust_remote_code,
    )
