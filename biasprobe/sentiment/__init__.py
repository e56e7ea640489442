"""From-scratch sentiment models: recurrent and Transformer encoders, and classifiers over them.

Importing this package imports torch (not transformers; :class:`BertClassifier` imports it when
built). See ``docs/sentiment-models.md``.
"""

from biasprobe.sentiment.classifiers import (
    CLASSIFIERS,
    BertClassifier,
    GRUAttentionClassifier,
    GRUEncoderClassifier,
    TransformerClassifier,
    build_classifier,
)
from biasprobe.sentiment.rnn import GRU, Attn, DecoderAttn, Encoder, EncoderDecoder
from biasprobe.sentiment.transformer import (
    BLOCKS,
    LayerNorm,
    MultiHeadedAttention,
    PostNormAttentionBlock,
    PreNormAttentionBlock,
    Transformer,
)

__all__ = [
    "GRU",
    "Encoder",
    "Attn",
    "DecoderAttn",
    "EncoderDecoder",
    "LayerNorm",
    "MultiHeadedAttention",
    "PostNormAttentionBlock",
    "PreNormAttentionBlock",
    "Transformer",
    "BLOCKS",
    "GRUEncoderClassifier",
    "GRUAttentionClassifier",
    "TransformerClassifier",
    "BertClassifier",
    "CLASSIFIERS",
    "build_classifier",
]
