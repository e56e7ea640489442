"""Transformer encoder for sentiment classification, written from PyTorch primitives.

Public names follow a well-known teaching design:

* :class:`LayerNorm` -- layer normalisation over the last dimension (biased variance), without
  ``nn.LayerNorm`` / ``F.layer_norm``.
* :class:`MultiHeadedAttention` -- multi-head scaled dot-product self-attention with a padding
  mask, without ``nn.MultiheadAttention`` / ``F.multi_head_attention_forward`` /
  ``F.scaled_dot_product_attention``.
* :class:`PostNormAttentionBlock` and :class:`PreNormAttentionBlock` -- the two residual layouts.
* :class:`Transformer` -- token embedding, a learned ``[CLS]`` vector, learned positions, a stack of
  blocks, and a final LayerNorm on the ``[CLS]`` position.

Masks are ``(B, T)`` with 1 for real tokens and 0 for padding (any layout). Padded keys get exactly
zero attention weight, so the output at every unpadded position -- and the ``[CLS]`` output of
:class:`Transformer` -- does not depend on the tokens at padded positions. A sequence that is
entirely padding gets all-zero attention weights (no NaN).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from biasprobe.sentiment.rnn import check_positive_ints

__all__ = [
    "LayerNorm",
    "MultiHeadedAttention",
    "PostNormAttentionBlock",
    "PreNormAttentionBlock",
    "Transformer",
    "BLOCKS",
]


class LayerNorm(nn.Module):
    """Layer normalisation over the last dimension.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance (divide by ``n``).

    Args:
        hidden_size: size of the last dimension.
        eps: added to the variance for numerical stability.
    """

    def __init__(self, hidden_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, inputs: Tensor) -> Tensor:
        """Normalise ``inputs (..., hidden_size)``; returns the same shape."""
        mean = inputs.mean(dim=-1, keepdim=True)  # (..., 1)
        centred = inputs - mean  # (..., H)
        var = (centred * centred).mean(dim=-1, keepdim=True)  # (..., 1) biased variance
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias  # (..., H)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}"


class MultiHeadedAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with Q, K, V and output projections.

    Has exactly ``4 (H^2 + H)`` learnable parameters for ``H = num_heads * head_size``.

    Args:
        head_size: size ``d`` of each head.
        num_heads: number of heads ``m``.
        sequence_length: the longest sequence the module is meant for (kept for the teaching
            design; attention itself works for any length).
        fused: compute the attention with a hand-written backward pass (default). ``False``
            composes :meth:`get_attention_weights` and plain autograd ops; both give the same
            numbers.
    """

    def __init__(
        self, head_size: int, num_heads: int, sequence_length: int, fused: bool = True
    ) -> None:
        super().__init__()
        self.fused = fused
        check_positive_ints(
            head_size=head_size, num_heads=num_heads, sequence_length=sequence_length
        )
        self.head_size = head_size
        self.num_heads = num_heads
        self.sequence_length = sequence_length
        hidden = head_size * num_heads
        self.W_Q = nn.Linear(hidden, hidden)
        self.W_K = nn.Linear(hidden, hidden)
        self.W_V = nn.Linear(hidden, hidden)
        self.W_Y = nn.Linear(hidden, hidden)

    def split_heads(self, tensor: Tensor) -> Tensor:
        """Split the last dimension into ``num_heads`` heads: ``(B, T, m*w) -> (B, m, T, w)``.

        The head width ``w`` is inferred from the input (as in the teaching design), so it need
        not equal ``head_size``; the last dimension must be divisible by ``num_heads``.
        """
        B, T, width = tensor.shape
        if width % self.num_heads != 0:
            raise ValueError(
                f"last dimension ({width}) must be divisible by num_heads ({self.num_heads})"
            )
        w = width // self.num_heads
        return tensor.reshape(B, T, self.num_heads, w).transpose(1, 2)  # (B, m, T, w)

    def merge_heads(self, tensor: Tensor) -> Tensor:
        """Inverse of :meth:`split_heads`: ``(B, m, T, w) -> (B, T, m*w)``, any head width."""
        B, m, T, w = tensor.shape
        return tensor.transpose(1, 2).reshape(B, T, m * w)  # (B, T, m*w)

    def get_attention_weights(
        self, queries: Tensor, keys: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """Return ``softmax(q k^T / sqrt(d))`` over the keys, padded keys given zero weight.

        Args:
            queries: ``(B, m, T, d)``.
            keys: ``(B, m, T, d)``.
            mask: ``(B, T)`` 0/1 key mask, or ``None``.

        Returns:
            ``(B, m, T, T)`` attention weights; each row sums to 1, or is all zero when every key
            of that sequence is padding.
        """
        scale = 1.0 / math.sqrt(queries.shape[-1])
        scores = torch.matmul(queries * scale, keys.transpose(-2, -1))  # (B, m, T, T)
        if mask is None:
            return torch.softmax(scores, dim=-1)
        keep = _key_mask(mask, scores.shape[0], scores.shape[-1])  # (B, 1, 1, T)
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)  # (B, m, T, T)
        weights = torch.softmax(scores, dim=-1)  # (B, m, T, T)
        # With the finite fill, a row whose keys are all padding is uniform: make it zero.
        return weights * keep.any(dim=-1, keepdim=True)  # (B, m, T, T)

    def apply_attention(
        self, queries: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """Attend and merge the heads.

        Args:
            queries: ``(B, m, T, d)``.
            keys: ``(B, m, T, d)``.
            values: ``(B, m, T, d)``.
            mask: ``(B, T)`` 0/1 key mask, or ``None``.

        Returns:
            ``(B, T, m*d)`` attended values, heads concatenated.
        """
        if self.fused:
            keep = None
            if mask is not None:
                keep = _key_mask(mask, queries.shape[0], keys.shape[-2])  # (B, 1, 1, T)
            out = _AttentionFunction.apply(queries, keys, values, keep)  # (B, m, T, d)
        else:
            weights = self.get_attention_weights(queries, keys, mask)  # (B, m, T, T)
            out = torch.matmul(weights, values)  # (B, m, T, d)
        return self.merge_heads(out)  # (B, T, m*d)

    def forward(self, hidden_states: Tensor, mask: Tensor | None = None) -> Tensor:
        """Self-attention over ``hidden_states (B, T, m*d)`` with key mask ``(B, T)``.

        Returns:
            ``(B, T, m*d)``.
        """
        q = self.split_heads(self.W_Q(hidden_states))  # (B, m, T, d)
        k = self.split_heads(self.W_K(hidden_states))  # (B, m, T, d)
        v = self.split_heads(self.W_V(hidden_states))  # (B, m, T, d)
        return self.W_Y(self.apply_attention(q, k, v, mask))  # (B, T, m*d)


_CHUNK_BYTES = 2**20
"""Score-block size per chunk of the fused attention with one thread (fits in L2).

With several threads each op is split across them and every op pays a fork/join, so chunks grow
to ``4 * _CHUNK_BYTES * threads`` (tuned on a 2-core Xeon: 1 MiB single-threaded, 8 MiB with two
threads).
"""


def _chunk_size(batch_size: int, bytes_per_sequence: int) -> int:
    threads = torch.get_num_threads()
    budget = _CHUNK_BYTES if threads == 1 else 4 * _CHUNK_BYTES * threads
    return max(1, min(batch_size, budget // bytes_per_sequence))


class _AttentionFunction(torch.autograd.Function):
    """``softmax(q k^T / sqrt(d) + mask) v`` with a hand-written backward pass.

    Works through the batch in chunks whose ``(b, m, T, S)`` score block stays in cache, does the
    masking and the softmax in place, and keeps only the attention weights (not the scores) for
    the backward pass. Keys after the last kept key of a chunk are padding in every sequence of
    that chunk: their weights are exactly zero, so they are left out of the products.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, q: Tensor, k: Tensor, v: Tensor, keep: Tensor | None
    ) -> Tensor:
        B, m, T, d = q.shape
        S = k.shape[-2]
        scale = 1.0 / math.sqrt(d)
        chunk = _chunk_size(B, m * T * S * q.element_size())
        starts = list(range(0, B, chunk))
        if keep is None:
            widths = [S] * len(starts)
        else:
            widths = _kept_widths(keep.view(B, S), chunk)
        has_empty = False
        if keep is not None:
            padded = ~keep  # (B, 1, 1, S)
            valid = keep.any(dim=-1, keepdim=True)  # (B, 1, 1, 1)
            has_empty = not bool(valid.all())
        fill = torch.finfo(q.dtype).min
        # Contiguous (B, m, ., .) operands let every chunk's matmul run as one batched GEMM.
        q = q.contiguous()  # (B, m, T, d)
        k = k.contiguous()  # (B, m, S, d)
        v = v.contiguous()  # (B, m, S, dv)
        q_scaled = q * scale  # (B, m, T, d)
        out = q.new_zeros(B, m, T, v.shape[-1])  # (B, m, T, dv)
        weights: list[Tensor | None] = []
        for s, n in zip(starts, widths, strict=True):
            e = min(B, s + chunk)
            if n == 0:  # every key of the chunk is padding: zero weights, zero output
                weights.append(None)
                continue
            scores = torch.matmul(q_scaled[s:e], k[s:e, :, :n].transpose(-2, -1))  # (b, m, T, n)
            if keep is not None:
                scores.masked_fill_(padded[s:e, ..., :n], fill)
            p_blk = torch.softmax(scores, dim=-1)  # (b, m, T, n)
            del scores
            if has_empty:
                p_blk.mul_(valid[s:e])  # all-padding sequences: zero weights, not uniform
            torch.matmul(p_blk, v[s:e, :, :n], out=out[s:e])  # (b, m, T, dv)
            weights.append(p_blk)
        ctx.scale = scale
        ctx.chunk = chunk
        ctx.weights = weights
        ctx.save_for_backward(q, k, v, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor):  # type: ignore[override]
        q, k, v, out = ctx.saved_tensors
        scale, chunk, weights = ctx.scale, ctx.chunk, ctx.weights
        B = q.shape[0]
        d_out = d_out.contiguous()
        d_q = torch.zeros_like(q)  # (B, m, T, d)
        d_k = torch.zeros_like(k)  # (B, m, S, d)
        d_v = torch.zeros_like(v)  # (B, m, S, dv)
        # softmax backward: dS = P * (dP - rowsum(dP * P)), and rowsum(dP * P) = rowsum(dO * O).
        delta = (d_out * out).sum(dim=-1, keepdim=True)  # (B, m, T, 1)
        for s, p_blk in zip(range(0, B, chunk), weights, strict=True):
            if p_blk is None:
                continue
            e = min(B, s + chunk)
            n = p_blk.shape[-1]
            torch.matmul(p_blk.transpose(-2, -1), d_out[s:e], out=d_v[s:e, :, :n])  # (b, m, n, dv)
            d_s = torch.matmul(d_out[s:e], v[s:e, :, :n].transpose(-2, -1))  # (b, m, T, n)
            d_s.sub_(delta[s:e]).mul_(p_blk)  # (b, m, T, n)
            torch.matmul(d_s, k[s:e, :, :n], out=d_q[s:e])  # (b, m, T, d)
            torch.matmul(d_s.transpose(-2, -1), q[s:e], out=d_k[s:e, :, :n])  # (b, m, n, d)
        ctx.weights = None
        return d_q.mul_(scale), d_k.mul_(scale), d_v, None


def _kept_widths(keep: Tensor, chunk: int) -> list[int]:
    """For each chunk of ``chunk`` rows of a ``(B, S)`` key mask: 1 + index of its last kept key."""
    B, S = keep.shape
    n_chunks = -(-B // chunk)
    padded = keep.new_zeros(n_chunks * chunk, S)  # (n_chunks * chunk, S)
    padded[:B] = keep
    any_kept = padded.view(n_chunks, chunk, S).any(dim=1)  # (n_chunks, S)
    positions = torch.arange(1, S + 1, device=keep.device)  # (S,)
    return (any_kept * positions).amax(dim=1).tolist()


def _key_mask(mask: Tensor, batch_size: int, seq_len: int) -> Tensor:
    """Return a ``(B, T)`` 0/1 mask as a bool ``(B, 1, 1, T)`` key mask, checking its shape."""
    if tuple(mask.shape) != (batch_size, seq_len):
        raise ValueError(
            f"mask must have shape (B, T) = ({batch_size}, {seq_len}), got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        mask = mask != 0
    return mask.view(batch_size, 1, 1, seq_len)


def _feed_forward(embed_dim: int, hidden_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(embed_dim, hidden_dim),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_dim, embed_dim),
        nn.Dropout(dropout),
    )


class _AttentionBlock(nn.Module):
    """Shared parts of the two residual blocks.

    Args:
        embed_dim: model width ``H``.
        hidden_dim: width of the feed-forward layer.
        num_heads: attention heads (must divide ``embed_dim``).
        sequence_length: longest sequence the block is meant for.
        dropout: dropout probability in the feed-forward layer (default 0.0, as in the
            teaching design: a block built with defaults is deterministic in train mode).
    """

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: int,
        num_heads: int,
        sequence_length: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.layer_norm_1 = LayerNorm(embed_dim)
        self.attn = MultiHeadedAttention(embed_dim // num_heads, num_heads, sequence_length)
        self.layer_norm_2 = LayerNorm(embed_dim)
        self.linear = _feed_forward(embed_dim, hidden_dim, dropout)


class PostNormAttentionBlock(_AttentionBlock):
    """Residual block with LayerNorm after each sub-layer.

    ``a = ln1(x + attn(x)); out = ln2(a + linear(a))``.

    Arguments: as :class:`_AttentionBlock`.
    """

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Apply the block to ``x (B, T, H)`` with key mask ``(B, T)``; returns ``(B, T, H)``."""
        a = self.layer_norm_1(x + self.attn(x, mask))  # (B, T, H)
        return self.layer_norm_2(a + self.linear(a))  # (B, T, H)


class PreNormAttentionBlock(_AttentionBlock):
    """Residual block with LayerNorm before each sub-layer.

    ``x = x + attn(ln1(x)); x = x + linear(ln2(x))``.

    Arguments: as :class:`_AttentionBlock`.
    """

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Apply the block to ``x (B, T, H)`` with key mask ``(B, T)``; returns ``(B, T, H)``."""
        x = x + self.attn(self.layer_norm_1(x), mask)  # (B, T, H)
        return x + self.linear(self.layer_norm_2(x))  # (B, T, H)


BLOCKS: dict[str, type[_AttentionBlock]] = {
    "prenorm": PreNormAttentionBlock,
    "postnorm": PostNormAttentionBlock,
}
"""The residual layouts :class:`Transformer` accepts as ``block``."""


class Transformer(nn.Module):
    """Transformer encoder that returns one ``(B, embed_dim)`` vector per sequence.

    Token ids are embedded, a learned ``cls_token`` is prepended, learned positions are added,
    then dropout, the blocks, and ``mlp_head`` (a LayerNorm) on the ``[CLS]`` position.

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        embed_dim: model width.
        hidden_dim: width of the feed-forward layers.
        num_heads: attention heads (must divide ``embed_dim``).
        num_layers: number of blocks.
        block: ``"prenorm"`` or ``"postnorm"``.
        dropout: dropout probability (after the embeddings and in the feed-forward layers).
        sequence_length: longest input (without ``[CLS]``); positions are learned for
            ``sequence_length + 1`` steps.
    """

    def __init__(
        self,
        vocabulary_size: int = 30522,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        num_heads: int = 1,
        num_layers: int = 2,
        block: str = "prenorm",
        dropout: float = 0.3,
        sequence_length: int = 256,
    ) -> None:
        super().__init__()
        if block not in BLOCKS:
            allowed = ", ".join(repr(b) for b in BLOCKS)
            raise ValueError(f"unknown block {block!r}; allowed values: {allowed}")
        check_positive_ints(
            vocabulary_size=vocabulary_size,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            sequence_length=sequence_length,
        )
        self.block = block
        self.embed_dim = embed_dim
        self.sequence_length = sequence_length
        block_class = BLOCKS[block]
        self.embedding = nn.Embedding(vocabulary_size, embed_dim, padding_idx=0)
        self.transformer = nn.ModuleList(
            block_class(embed_dim, hidden_dim, num_heads, sequence_length + 1, dropout)
            for _ in range(num_layers)
        )
        self.mlp_head = LayerNorm(embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, 1 + sequence_length, embed_dim))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Encode token ids ``x (B, T)`` with 0/1 mask ``(B, T)``; returns ``(B, embed_dim)``."""
        if x.dim() != 2:
            raise ValueError(f"x must be (B, T) token ids, got shape {tuple(x.shape)}")
        B, T = x.shape
        if T > self.sequence_length:
            raise ValueError(
                f"sequence of length {T} is longer than sequence_length={self.sequence_length}; "
                "truncate the inputs or build the model with a larger sequence_length"
            )
        h = self.embedding(x)  # (B, T, H)
        cls = self.cls_token.expand(B, 1, self.embed_dim)  # (B, 1, H)
        h = torch.cat([cls, h], dim=1)  # (B, T+1, H)
        h = h + self.pos_embedding[:, : T + 1]  # (B, T+1, H)
        h = self.dropout(h)  # (B, T+1, H)
        if mask is not None:
            if tuple(mask.shape) != (B, T):
                raise ValueError(
                    f"mask must have shape (B, T) = ({B}, {T}), got {tuple(mask.shape)}"
                )
            mask = torch.cat([mask.new_ones(B, 1), mask], dim=1)  # (B, T+1), [CLS] is kept
        for layer in self.transformer:
            h = layer(h, mask)  # (B, T+1, H)
        return self.mlp_head(h[:, 0])  # (B, H)
