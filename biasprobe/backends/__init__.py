"""Model backends: Hugging Face masked LMs and recorded outputs.

Use :func:`load_backend` with what a user typed after ``--model``:

- a hub id (``bert-base-uncased``, ``org/model``; ``name@revision`` pins a revision),
- a local checkpoint folder (``./checkpoints/my-bert``),
- ``recorded:DIR`` or ``recorded:NAME`` for recorded outputs (see :mod:`.recorded`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from biasprobe.backends.base import MaskedLMBackend

__all__ = ["MaskedLMBackend", "ModelSpec", "load_backend", "resolve_spec", "split_revision"]


def split_revision(spec: str) -> tuple[str, str | None]:
    """``"org/model@v1.0"`` → ``("org/model", "v1.0")``; no ``@`` → revision None."""
    from pathlib import Path

    if Path(spec).expanduser().exists():
        return spec, None  # an existing folder whose name contains "@"
    if "@" in spec and not spec.startswith(("recorded:", ".", "/", "~")):
        name, _, rev = spec.rpartition("@")
        if name and rev:
            return name, rev
    return spec, None


@dataclass
class ModelSpec:
    """A ``--model`` value resolved before anything is loaded (see :func:`resolve_spec`).

    Attributes:
        spec: what the user gave.
        key: what identifies the model for duplicate detection (a resolved folder, or the hub
            id with its revision).
        source: the :class:`biasprobe.hub.ModelSource` of a Hugging Face model (None for
            recorded outputs).
        revision: the hub revision to load.
    """

    spec: str
    key: str
    source: Any = None
    revision: str | None = None


def resolve_spec(spec: str, *, revision: str | None = None) -> ModelSpec:
    """Find a model without loading it: recorded folder, local checkpoint, HF cache or hub.

    Config, weights and tokenizer files of a local folder are checked here, so that every
    model of a run is known to be loadable before the first forward pass.

    Raises:
        ModelLoadError: the model cannot be found or its folder is incomplete.
    """
    from biasprobe.backends.recorded import PREFIX, resolve_recorded

    if spec.startswith(PREFIX):
        return ModelSpec(spec, f"recorded:{resolve_recorded(spec).resolve()}")
    from biasprobe.hub import resolve_model_source

    name, rev = split_revision(spec)
    src = resolve_model_source(name, revision=rev or revision)
    key = src.info["path"] if src.is_local else f"{name}@{src.revision or 'default'}"
    return ModelSpec(spec, key, src, rev or revision)


def load_backend(
    spec: str | ModelSpec,
    *,
    device: str | None = None,
    revision: str | None = None,
    batch_size: int = 32,
    trust_remote_code: bool = False,
) -> MaskedLMBackend:
    """Load the backend a ``--model`` value names.

    Args:
        spec: hub id (optionally ``@revision``), local folder, ``recorded:DIR``, or a
            :class:`ModelSpec` from :func:`resolve_spec`.
        device: ``auto``/``cpu``/``cuda``/``cuda:N``/``mps``. Recorded outputs run on no
            device: the name is only spell-checked, and torch is never imported for them.
        revision: hub revision; overridden by an ``@revision`` in ``spec``.
        batch_size: sentences per forward pass.
        trust_remote_code: allow custom model code from the repository.
    """
    from biasprobe.backends.recorded import PREFIX, RecordedMaskedLM

    resolved = spec if isinstance(spec, ModelSpec) else None
    text = resolved.spec if resolved else str(spec)
    if text.startswith(PREFIX):
        from biasprobe.device import check_device_name

        check_device_name(device)
        return RecordedMaskedLM(text)
    from biasprobe.backends.hf import load_hf_masked_lm

    name, rev = split_revision(text)
    return load_hf_masked_lm(
        name,
        revision=resolved.revision if resolved else (rev or revision),
        device=device,
        batch_size=batch_size,
        trust_remote_code=trust_remote_code,
        source=resolved.source if resolved else None,
    )
