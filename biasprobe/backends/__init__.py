"""Model backends: Hugging Face masked LMs and recorded outputs.

Use :func:`load_backend` with what a user typed after ``--model``:

- a hub id (``bert-base-uncased``, ``org/model``; ``name@revision`` pins a revision),
- a local checkpoint folder (``./checkpoints/my-bert``),
- ``recorded:DIR`` or ``recorded:NAME`` for recorded outputs (see :mod:`.recorded`).
"""

from __future__ import annotations

from biasprobe.backends.base import MaskedLMBackend

__all__ = ["MaskedLMBackend", "load_backend", "split_revision"]


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


def load_backend(
    spec: str,
    *,
    device: str | None = None,
    revision: str | None = None,
    batch_size: int = 32,
    trust_remote_code: bool = False,
) -> MaskedLMBackend:
    """Load the backend a ``--model`` value names.

    Args:
        spec: hub id (optionally ``@revision``), local folder, or ``recorded:DIR``.
        device: ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` (ignored by recorded backends,
            but still checked so that a wrong ``--device`` is reported the same way).
        revision: hub revision; overridden by an ``@revision`` in ``spec``.
        batch_size: sentences per forward pass.
        trust_remote_code: allow custom model code from the repository.
    """
    from biasprobe.backends.recorded import PREFIX, RecordedMaskedLM

    if spec.startswith(PREFIX):
        from biasprobe.backends.hf import resolve_device

        resolve_device(device)
        return RecordedMaskedLM(spec)
    from biasprobe.backends.hf import load_hf_masked_lm

    name, rev = split_revision(spec)
    return load_hf_masked_lm(
        name,
        revision=rev or revision,
        device=device,
        batch_size=batch_size,
        trust_remote_code=trust_remote_code,
    )
