"""Two-class sentiment classifiers over the from-scratch encoders (and a frozen BERT).

Every classifier has the same call::

    loss, logits = model(input_ids, mask, labels=None)

with ``input_ids (B, T)`` long, ``mask (B, T)`` 0/1 (right-padded for the GRU models),
``labels (B,)`` long or ``None``; ``logits`` is ``(B, 2)`` and ``loss`` is the mean cross-entropy
when labels are given, else ``None``. :func:`build_classifier` builds one by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biasprobe.errors import ModelLoadError
from biasprobe.sentiment.rnn import EncoderDecoder
from biasprobe.sentiment.transformer import Transformer

__all__ = [
    "GRUEncoderClassifier",
    "GRUAttentionClassifier",
    "TransformerClassifier",
    "BertClassifier",
    "CLASSIFIERS",
    "build_classifier",
]


def _loss(logits: Tensor, labels: Tensor | None) -> Tensor | None:
    if labels is None:
        return None
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must have shape (B,) = ({logits.shape[0]},), got {tuple(labels.shape)}"
        )
    return F.cross_entropy(logits, labels)


class _GRUClassifier(nn.Module):
    encoder_only: bool

    def __init__(
        self,
        vocabulary_size: int = 30522,
        embedding_size: int = 256,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.3,
        gru_impl: str = "torch",
    ) -> None:
        super().__init__()
        self.encoder = EncoderDecoder(
            vocabulary_size,
            embedding_size,
            hidden_size,
            num_layers,
            dropout,
            encoder_only=self.encoder_only,
            gru_impl=gru_impl,
        )
        self.classifier = nn.Linear(hidden_size, 2)

    def forward(
        self, input_ids: Tensor, mask: Tensor | None, labels: Tensor | None = None
    ) -> tuple[Tensor | None, Tensor]:
        """Classify a batch.

        Args:
            input_ids: ``(B, T)`` token ids.
            mask: ``(B, T)`` right-padded 0/1 mask (``None``: nothing is padded).
            labels: ``(B,)`` class ids in ``{0, 1}``, or ``None``.

        Returns:
            ``(loss or None, logits (B, 2))``.
        """
        features, _ = self.encoder(input_ids, mask)  # (B, H)
        logits = self.classifier(features)  # (B, 2)
        return _loss(logits, labels), logits


class GRUEncoderClassifier(_GRUClassifier):
    """Bidirectional GRU encoder (``EncoderDecoder(encoder_only=True)``) + ``Linear(H, 2)``.

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        embedding_size: size of the token embeddings.
        hidden_size: GRU state size ``H``.
        num_layers: GRU layers.
        dropout: dropout on the embeddings.
        gru_impl: ``"torch"`` runs ``nn.GRU`` (default, as the teaching design asks for the
            encoder); ``"scratch"`` runs biasprobe's from-scratch GRU (same equations).
    """

    encoder_only = True


class GRUAttentionClassifier(_GRUClassifier):
    """GRU encoder + soft-attention GRU decoder (``EncoderDecoder``) + ``Linear(H, 2)``.

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        embedding_size: size of the token embeddings.
        hidden_size: GRU state size ``H``.
        num_layers: GRU layers (encoder and decoder).
        dropout: dropout on the embeddings and on the decoder inputs.
        gru_impl: ``"torch"`` (``nn.GRU``, default) or ``"scratch"`` (the from-scratch GRU).
    """

    encoder_only = False


class TransformerClassifier(nn.Module):
    """:class:`~biasprobe.sentiment.transformer.Transformer` + ``Linear(embed_dim, 2)``.

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        embed_dim: model width.
        hidden_dim: feed-forward width.
        num_heads: attention heads (must divide ``embed_dim``).
        num_layers: number of blocks.
        block: ``"prenorm"`` or ``"postnorm"``.
        dropout: dropout probability.
        sequence_length: longest input accepted.
    """

    def __init__(
        self,
        vocabulary_size: int = 30522,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        num_heads: int = 4,
        num_layers: int = 2,
        block: str = "prenorm",
        dropout: float = 0.3,
        sequence_length: int = 256,
    ) -> None:
        super().__init__()
        self.encoder = Transformer(
            vocabulary_size=vocabulary_size,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            num_heads=num_heads,
            num_layers=num_layers,
            block=block,
            dropout=dropout,
            sequence_length=sequence_length,
        )
        self.classifier = nn.Linear(embed_dim, 2)

    def forward(
        self, input_ids: Tensor, mask: Tensor | None, labels: Tensor | None = None
    ) -> tuple[Tensor | None, Tensor]:
        """Classify a batch.

        Args:
            input_ids: ``(B, T)`` token ids, ``T <= sequence_length``.
            mask: ``(B, T)`` 0/1 mask (``None``: nothing is padded).
            labels: ``(B,)`` class ids in ``{0, 1}``, or ``None``.

        Returns:
            ``(loss or None, logits (B, 2))``.
        """
        features = self.encoder(input_ids, mask)  # (B, embed_dim)
        logits = self.classifier(features)  # (B, 2)
        return _loss(logits, labels), logits


class BertClassifier(nn.Module):
    """A Hugging Face BERT (frozen by default) + a linear head on the ``[CLS]`` vector.

    The encoder is loaded with ``transformers.AutoModel.from_pretrained`` (safetensors preferred,
    no remote code). ``transformers`` is imported only here.

    Args:
        model_name_or_path: hub id or a local folder holding ``config.json`` and the weights.
        freeze: freeze the encoder: its parameters get no gradient, it stays in eval mode (no
            dropout) even when the classifier is in training mode, and it runs without autograd.
        num_labels: number of classes.

    Raises:
        ModelLoadError: the weights cannot be loaded (not downloaded, no network, bad folder).
    """

    def __init__(
        self,
        model_name_or_path: str = "bert-base-uncased",
        freeze: bool = True,
        num_labels: int = 2,
    ) -> None:
        super().__init__()
        if not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, got {num_labels!r}")
        from transformers import AutoModel

        from biasprobe.backends.hf import hub_reachable

        name = str(model_name_or_path)
        kwargs: dict = {}
        if not Path(name).expanduser().is_dir():
            from transformers.utils import cached_file

            try:
                cached_file(name, "config.json", local_files_only=True)
                kwargs["local_files_only"] = True  # cached: no network round trips
            except Exception:
                if not hub_reachable():
                    kwargs["local_files_only"] = True  # fail now instead of retrying the hub
        try:
            self.bert = AutoModel.from_pretrained(name, trust_remote_code=False, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load BERT weights from {str(model_name_or_path)!r}: the weights are not "
                "available here (not in the Hugging Face cache, and the hub could not be "
                "reached or has no such model). Download them on a machine with network "
                "access (e.g. `huggingface-cli download bert-base-uncased --local-dir "
                "./bert-base-uncased`) and pass that local folder, which must hold "
                "config.json and model.safetensors, as model_name_or_path; or set HF_HOME to "
                f"a cache that holds them. Underlying error: {exc}"
            ) from exc
        self.freeze = freeze
        self.model_name_or_path = str(model_name_or_path)
        if freeze:
            self.bert.requires_grad_(False)
            self.bert.eval()
        self.classifier = nn.Linear(self.bert.config.hidden_size, num_labels)

    def train(self, mode: bool = True) -> BertClassifier:
        """Set training mode; a frozen encoder always stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.bert.eval()
        return self

    def forward(
        self, input_ids: Tensor, mask: Tensor | None, labels: Tensor | None = None
    ) -> tuple[Tensor | None, Tensor]:
        """Classify a batch.

        Args:
            input_ids: ``(B, T)`` ids from the model's own tokenizer.
            mask: ``(B, T)`` 0/1 attention mask (``None``: nothing is padded).
            labels: ``(B,)`` class ids, or ``None``.

        Returns:
            ``(loss or None, logits (B, num_labels))``.
        """
        if mask is None:
            mask = torch.ones_like(input_ids)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
        logits = self.classifier(hidden[:, 0])  # (B, num_labels) from [CLS] (B, H)
        return _loss(logits, labels), logits


CLASSIFIERS: dict[str, type[nn.Module]] = {
    "gru_encoder": GRUEncoderClassifier,
    "gru_attention": GRUAttentionClassifier,
    "transformer": TransformerClassifier,
    "bert": BertClassifier,
}
"""Classifier kinds accepted by :func:`build_classifier`."""


def build_classifier(kind: str, **kwargs: Any) -> nn.Module:
    """Build a sentiment classifier by name.

    Args:
        kind: one of ``"gru_encoder"``, ``"gru_attention"``, ``"transformer"``, ``"bert"``.
        **kwargs: passed to the classifier's constructor.

    Returns:
        The classifier module.

    Raises:
        ValueError: ``kind`` is unknown, or a keyword is not accepted by that classifier.

    Example:
        >>> model = build_classifier("transformer", vocabulary_size=100, embed_dim=16,
        ...                          hidden_dim=32, num_heads=2, num_layers=1)
    """
    if kind not in CLASSIFIERS:
        allowed = ", ".join(repr(k) for k in CLASSIFIERS)
        raise ValueError(f"unknown classifier kind {kind!r}; allowed values: {allowed}")
    cls = CLASSIFIERS[kind]
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for classifier {kind!r}: {exc}") from exc
