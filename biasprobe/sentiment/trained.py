"""A trained sentiment run folder: its file names, and reading it back into a classifier.

``biasprobe sentiment train`` (:mod:`biasprobe.sentiment.train`) writes the folder;
:func:`load_trained` reads it back into a ready-to-use classifier and its tokenizer (the
counterfactual audits load sentiment classifiers through it). Only data and model definitions
are needed here: no training code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biasprobe import fsio
from biasprobe.device import resolve_device
from biasprobe.errors import RunFolderError, UsageError
from biasprobe.sentiment.config import TrainConfig, parse_config
from biasprobe.sentiment.data import batches, load_tokenizer

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "BEST_WEIGHTS",
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "FEATURES_FILE",
    "FINAL_WEIGHTS",
    "LOG_FILE",
    "RUN_FILES",
    "RUN_KIND",
    "SUMMARY_FILE",
    "TrainedModel",
    "build_model",
    "load_trained",
    "nonfinite_parameters",
]

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
FINAL_WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"
FEATURES_FILE = "features.pt"  # pooled features of a frozen encoder, kept for resumption
RUN_FILES = (
    CONFIG_FILE,
    LOG_FILE,
    SUMMARY_FILE,
    CHECKPOINT_FILE,
    FINAL_WEIGHTS,
    BEST_WEIGHTS,
    FEATURES_FILE,
)
RUN_KIND = "sentiment-run"
"""Manifest kind of a sentiment run folder (see :mod:`biasprobe.fsio`)."""


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters holding a NaN or infinite value."""
    import torch

    return [
        name
        for name, p in model.named_parameters()
        if p.is_floating_point() and not bool(torch.isfinite(p).all())
    ]


def build_model(config: TrainConfig) -> nn.Module:
    """Build the classifier a config describes (random initialisation, or pretrained for bert).

    Raises:
        UsageError: the classifier rejects the config's arguments.
    """
    from biasprobe.sentiment.classifiers import build_classifier

    try:
        return build_classifier(config.model.kind, **config.model.kwargs)
    except (TypeError, ValueError) as e:
        where = config.path or "config"
        raise UsageError(f"{where}: model: cannot build {config.model.kind!r}: {e}") from e


# --------------------------------------------------------------------------- loading


@dataclass
class TrainedModel:
    """A trained classifier read back from its run folder.

    Attributes:
        model: the classifier, in eval mode.
        tokenizer: the WordPiece tokenizer it was trained with.
        config: the run's config.
        summary: the run's summary record (empty if the run did not finish).
        path: the run folder.
    """

    model: nn.Module
    tokenizer: Any
    config: TrainConfig
    summary: dict[str, Any]
    path: Path

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> Any:
        """Probability of the positive class for each text, as a NumPy float array."""
        import numpy as np
        import torch

        from biasprobe.sentiment.data import Example

        device = next(self.model.parameters()).device
        out = []
        examples = [Example(text, 0) for text in texts]
        with torch.no_grad():
            for b in batches(examples, self.tokenizer, batch_size, self.config.data.max_length):
                b = b.to(device)
                _, logits = self.model(b.input_ids, b.mask)
                out.append(torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def load_trained(path: str | Path, *, which: str = "best", device: str = "cpu") -> TrainedModel:
    """Load a trained classifier from a run folder written by
    :func:`biasprobe.sentiment.train.train`.

    Args:
        path: the run folder.
        which: ``"best"`` (weights at the best validation accuracy) or ``"final"`` (last step).
        device: where to put the model (``auto``, ``cpu``, ``cuda``, ...).

    Returns:
        A :class:`TrainedModel`.

    Raises:
        UsageError: ``which`` is not best/final.
        RunFolderError: the folder or one of its files is missing or unreadable.
    """
    from safetensors.torch import load_model

    if which not in ("best", "final"):
        raise UsageError(f"which={which!r}: expected 'best' or 'final'")
    folder = Path(path)
    cfg_path = folder / CONFIG_FILE
    weights = folder / (BEST_WEIGHTS if which == "best" else FINAL_WEIGHTS)
    for p in (cfg_path, weights):
        if not p.is_file():
            raise RunFolderError(
                f"{folder} is not a trained sentiment run: {p.name} is missing "
                f"(expected the folder written by 'biasprobe sentiment train')"
            )
    try:
        text = fsio.read_regular_text(cfg_path, what="run config")
        summary: dict[str, Any] = {}
        if (folder / SUMMARY_FILE).is_file():
            summary = json.loads(fsio.read_regular_text(folder / SUMMARY_FILE, what="summary"))
    except (OSError, ValueError, fsio.NotRegularFileError) as e:
        raise RunFolderError(f"{folder}: cannot read the run's files: {e}") from None
    if not isinstance(summary, dict):
        raise RunFolderError(f"{folder / SUMMARY_FILE}: expected a JSON object")
    config = parse_config(text, str(cfg_path))
    model = build_model(config)
    try:
        load_model(model, str(weights), strict=True)
    except (RuntimeError, OSError, ValueError) as e:
        raise RunFolderError(f"{weights}: cannot load the weights: {e}") from e
    bad = nonfinite_parameters(model)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise RunFolderError(
            f"sentiment run {folder}: {weights.name} holds NaN or infinite weights (in "
            f"{shown}), so every prediction would be NaN; the file is damaged"
        )
    model.to(resolve_device(device)).eval()
    return TrainedModel(model, load_tokenizer(config.data.tokenizer), config, summary, folder)
