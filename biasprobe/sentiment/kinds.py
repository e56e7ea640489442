"""The classifier kinds of ``model.kind``, listed once (no torch import: configs use it too).

Each kind names its class in :mod:`biasprobe.sentiment.classifiers`; the config validation reads
the class's constructor signature to check the model keys, and
:func:`~biasprobe.sentiment.classifiers.build_classifier` builds it.
"""

from __future__ import annotations

CLASSIFIER_CLASSES: dict[str, str] = {
    "gru_encoder": "GRUEncoderClassifier",
    "gru_attention": "GRUAttentionClassifier",
    "transformer": "TransformerClassifier",
    "bert": "BertClassifier",
    "bow": "HashedNgramClassifier",
}
"""kind -> class name in :mod:`biasprobe.sentiment.classifiers`. ``bert`` is any pretrained
Hugging Face encoder (BERT, MiniLM, ...) with a linear head."""

MODEL_KINDS: tuple[str, ...] = tuple(CLASSIFIER_CLASSES)
