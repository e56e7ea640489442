"""From-scratch sentiment models: recurrent and Transformer encoders, and classifiers over them.

The names below are imported on first use (``from biasprobe.sentiment import GRU`` works as
usual), so that ``biasprobe sentiment --help`` does not import torch. Using any model imports
torch (not transformers; :class:`BertClassifier` imports it when built). See
``docs/sentiment-models.md``.
"""

from __future__ import annotations

from typing import Any

_WHERE = {
    "biasprobe.sentiment.classifiers": (
        "CLASSIFIERS",
        "BertClassifier",
        "HashedNgramClassifier",
        "GRUAttentionClassifier",
        "GRUEncoderClassifier",
        "TransformerClassifier",
        "build_classifier",
    ),
    "biasprobe.sentiment.rnn": ("GRU", "Attn", "DecoderAttn", "Encoder", "EncoderDecoder"),
    "biasprobe.sentiment.transformer": (
        "BLOCKS",
        "LayerNorm",
        "MultiHeadedAttention",
        "PostNormAttentionBlock",
        "PreNormAttentionBlock",
        "Transformer",
    ),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [name for names in _WHERE.values() for name in names]


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        import importlib

        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'biasprobe.sentiment' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
