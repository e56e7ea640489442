"""Recurrent sentiment encoders written from PyTorch primitives.

Public names follow a well-known teaching design:

* :class:`GRU` -- a gated recurrent unit written from matrix products and point-wise ops (no
  ``nn.GRU``, ``nn.GRUCell`` or ``torch._VF`` GRU kernels). Its default path is a hand-written
  autograd function: the input projections of all time steps are one matrix product, the loop only
  does the recurrent product, and the backward pass accumulates the weight gradients of all steps
  in one matrix product each. A plain autograd loop (``fused=False``) computes the same thing and
  is kept for reading and for cross-checking.
* :class:`Encoder` -- embedding + bidirectional ``nn.GRU`` (or, with ``gru_impl="scratch"``,
  the from-scratch :class:`GRU` in a :class:`ScratchGRUStack`), the two directions summed.
* :class:`Attn` -- one-layer MLP (soft) attention over the time steps, with a padding mask.
* :class:`DecoderAttn` -- attention over the encoder outputs followed by a unidirectional GRU.
* :class:`EncoderDecoder` -- the encoder, optionally followed by the attention decoder, reduced to
  one ``(B, H)`` vector per sequence (the output at the first position).

Padding. Masks are ``(B, T)`` tensors with 1 for real tokens and 0 for padding, and padding must
be on the right (each row is ones then zeros). The encoder and the decoder run their ``nn.GRU`` on
packed sequences, so the recurrence of each sequence stops at its last real token: the backward
direction starts from the last real token, not from the padding; the returned hidden state is the
state at the last real token; and outputs at padded positions are exactly zero. Hence changing the
token ids at padded positions changes no output. A row that is all padding gets zero outputs and
the initial hidden state.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "GRU",
    "GRU_IMPLS",
    "ScratchGRUStack",
    "Encoder",
    "Attn",
    "DecoderAttn",
    "EncoderDecoder",
]


# --------------------------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------------------------


class _GRUFunction(torch.autograd.Function):
    """One GRU layer over a whole sequence with a hand-written backward pass.

    Gate order in the stacked weights is ``r, z, n`` (as in ``nn.GRU``).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x: Tensor,  # (T, B, I) time-major inputs
        h0: Tensor,  # (B, H)
        w_i: Tensor,  # (3H, I)
        b_i: Tensor,  # (3H,)
        w_h: Tensor,  # (3H, H)
        b_h: Tensor,  # (3H,)
    ) -> Tensor:
        T, B, _ = x.shape
        H = h0.shape[-1]
        # All input projections at once: one (T*B, I) x (I, 3H) product.
        gi = torch.addmm(b_i, x.reshape(T * B, -1), w_i.t()).view(T, B, 3 * H)  # (T, B, 3H)
        out = x.new_empty(T, B, H)  # (T, B, H) h_t for every step
        rz = x.new_empty(T, B, 2 * H)  # (T, B, 2H) reset and update gates
        n = x.new_empty(T, B, H)  # (T, B, H) candidate state
        hn = x.new_empty(T, B, H)  # (T, B, H) h_{t-1} W_hn^T + b_hn
        w_h_t = w_h.t()  # (H, 3H)
        h = h0
        for t in range(T):
            gh = torch.addmm(b_h, h, w_h_t)  # (B, 3H)
            torch.sigmoid(gi[t, :, : 2 * H] + gh[:, : 2 * H], out=rz[t])  # (B, 2H)
            r_t = rz[t, :, :H]  # (B, H)
            z_t = rz[t, :, H:]  # (B, H)
            hn[t] = gh[:, 2 * H :]
            torch.tanh(torch.addcmul(gi[t, :, 2 * H :], r_t, hn[t]), out=n[t])  # (B, H)
            # h_t = (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n)
            torch.addcmul(n[t], z_t, h - n[t], out=out[t])  # (B, H)
            h = out[t]
        ctx.save_for_backward(x, h0, w_i, w_h, out, rz, n, hn)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor):  # type: ignore[override]
        x, h0, w_i, w_h, out, rz, n, hn = ctx.saved_tensors
        T, B, H = out.shape
        d_gi = out.new_empty(T, B, 3 * H)  # (T, B, 3H) grad of the input pre-activations
        d_gh = out.new_empty(T, B, 3 * H)  # (T, B, 3H) grad of the recurrent pre-activations
        dh = torch.zeros_like(h0)  # (B, H)
        for t in range(T - 1, -1, -1):
            dh = dh + d_out[t]  # (B, H)
            h_prev = out[t - 1] if t > 0 else h0  # (B, H)
            r_t = rz[t, :, :H]
            z_t = rz[t, :, H:]
            n_t = n[t]
            # h_t = n + z (h_prev - n)
            dn = dh - dh * z_t  # (B, H) dh * (1 - z)
            dz = dh * (h_prev - n_t)  # (B, H)
            # n = tanh(a_n), a_n = gi_n + r * hn
            da_n = dn * (1 - n_t * n_t)  # (B, H)
            d_gi[t, :, 2 * H :] = da_n
            torch.mul(da_n, r_t, out=d_gh[t, :, 2 * H :])
            # r = sigmoid(a_r), z = sigmoid(a_z)
            drz = d_gi[t, :, : 2 * H]  # (B, 2H) view, filled below
            drz[:, :H] = da_n * hn[t]
            drz[:, H:] = dz
            drz.mul_(rz[t] * (1 - rz[t]))
            d_gh[t, :, : 2 * H] = drz
            dh = torch.addmm(dh * z_t, d_gh[t], w_h)  # (B, H)
        d_x = d_w_i = d_b_i = d_w_h = d_b_h = None
        d_gi_flat = d_gi.view(T * B, 3 * H)  # (T*B, 3H)
        d_gh_flat = d_gh.view(T * B, 3 * H)  # (T*B, 3H)
        if ctx.needs_input_grad[0]:
            d_x = torch.mm(d_gi_flat, w_i).view(T, B, -1)  # (T, B, I)
        if ctx.needs_input_grad[2]:
            d_w_i = torch.mm(d_gi_flat.t(), x.reshape(T * B, -1))  # (3H, I)
        if ctx.needs_input_grad[3]:
            d_b_i = d_gi_flat.sum(0)  # (3H,)
        if ctx.needs_input_grad[4]:
            h_prev_all = torch.cat([h0.unsqueeze(0), out[:-1]], 0).view(T * B, H)  # (T*B, H)
            d_w_h = torch.mm(d_gh_flat.t(), h_prev_all)  # (3H, H)
        if ctx.needs_input_grad[5]:
            d_b_h = d_gh_flat.sum(0)  # (3H,)
        d_h0 = dh if ctx.needs_input_grad[1] else None
        return d_x, d_h0, d_w_i, d_b_i, d_w_h, d_b_h


class GRU(nn.Module):
    """A single-layer, unidirectional, batch-first gated recurrent unit.

    For every step ``t``::

        r_t = sigmoid(x_t W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr)
        z_t = sigmoid(x_t W_iz^T + b_iz + h_{t-1} W_hz^T + b_hz)
        n_t = tanh(x_t W_in^T + b_in + r_t * (h_{t-1} W_hn^T + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    Args:
        input_size: size ``in`` of each input vector.
        hidden_size: size ``H`` of the hidden state.
        fused: use the hand-written backward pass (default). ``False`` runs a plain autograd loop
            over the same equations; both give the same numbers.

    Attributes:
        w_ir, w_iz, w_in: input weights, each ``(H, in)``.
        w_hr, w_hz, w_hn: recurrent weights, each ``(H, H)``.
        b_ir, b_iz, b_in, b_hr, b_hz, b_hn: biases, each ``(H,)``.
    """

    def __init__(self, input_size: int, hidden_size: int, fused: bool = True) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.fused = fused
        self.w_ir = nn.Parameter(torch.empty(hidden_size, input_size))
        self.w_iz = nn.Parameter(torch.empty(hidden_size, input_size))
        self.w_in = nn.Parameter(torch.empty(hidden_size, input_size))
        self.w_hr = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.w_hz = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.w_hn = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b_ir = nn.Parameter(torch.empty(hidden_size))
        self.b_iz = nn.Parameter(torch.empty(hidden_size))
        self.b_in = nn.Parameter(torch.empty(hidden_size))
        self.b_hr = nn.Parameter(torch.empty(hidden_size))
        self.b_hz = nn.Parameter(torch.empty(hidden_size))
        self.b_hn = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every weight and bias from uniform(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def stacked_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return the gate parameters stacked in ``r, z, n`` order, as ``nn.GRU`` stores them.

        Returns:
            ``(w_i (3H, in), b_i (3H,), w_h (3H, H), b_h (3H,))``.
        """
        w_i = torch.cat([self.w_ir, self.w_iz, self.w_in], 0)  # (3H, in)
        b_i = torch.cat([self.b_ir, self.b_iz, self.b_in], 0)  # (3H,)
        w_h = torch.cat([self.w_hr, self.w_hz, self.w_hn], 0)  # (3H, H)
        b_h = torch.cat([self.b_hr, self.b_hz, self.b_hn], 0)  # (3H,)
        return w_i, b_i, w_h, b_h

    def forward(self, inputs: Tensor, hidden_states: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run the GRU over a batch of sequences.

        Args:
            inputs: ``(B, T, in)`` input vectors.
            hidden_states: ``(1, B, H)`` initial hidden state; zeros when ``None``.

        Returns:
            ``(outputs (B, T, H), hidden (1, B, H))`` -- the hidden state at every step, and the
            last one.
        """
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(
                f"inputs must have shape (B, T, {self.input_size}), got {tuple(inputs.shape)}"
            )
        B, T, _ = inputs.shape
        H = self.hidden_size
        if hidden_states is None:
            hidden_states = inputs.new_zeros(1, B, H)
        if tuple(hidden_states.shape) != (1, B, H):
            raise ValueError(
                f"hidden_states must have shape (1, {B}, {H}), got {tuple(hidden_states.shape)}"
            )
        if T == 0:
            return inputs.new_zeros(B, 0, H), hidden_states
        w_i, b_i, w_h, b_h = self.stacked_weights()
        x = inputs.transpose(0, 1).contiguous()  # (T, B, in)
        h0 = hidden_states[0]  # (B, H)
        if self.fused:
            out = _GRUFunction.apply(x, h0, w_i, b_i, w_h, b_h)  # (T, B, H)
        else:
            out = _gru_loop(x, h0, w_i, b_i, w_h, b_h)  # (T, B, H)
        outputs = out.transpose(0, 1)  # (B, T, H)
        return outputs, out[-1].unsqueeze(0)


def _gru_loop(x: Tensor, h0: Tensor, w_i: Tensor, b_i: Tensor, w_h: Tensor, b_h: Tensor) -> Tensor:
    """Plain autograd GRU loop over time-major inputs ``x (T, B, in)``; returns ``(T, B, H)``."""
    T, B, _ = x.shape
    H = h0.shape[-1]
    gi = torch.addmm(b_i, x.reshape(T * B, -1), w_i.t()).view(T, B, 3 * H)  # (T, B, 3H)
    # unbind once: indexing gi[t] in the loop would make autograd build a full (T, B, 3H)
    # gradient for every step.
    gi_steps = gi.unbind(0)  # T x (B, 3H)
    w_h_t = w_h.t()  # (H, 3H)
    h = h0  # (B, H)
    outs = []
    for t in range(T):
        gh = torch.addmm(b_h, h, w_h_t)  # (B, 3H)
        i_r, i_z, i_n = gi_steps[t].chunk(3, dim=-1)  # 3 x (B, H)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)  # 3 x (B, H)
        r = torch.sigmoid(i_r + h_r)  # (B, H)
        z = torch.sigmoid(i_z + h_z)  # (B, H)
        n = torch.tanh(i_n + r * h_n)  # (B, H)
        h = (1 - z) * n + z * h  # (B, H)
        outs.append(h)
    return torch.stack(outs, 0)  # (T, B, H)


# --------------------------------------------------------------------------------------------
# Masks and packing
# --------------------------------------------------------------------------------------------


def _check_mask(mask: Tensor | None, batch_size: int, seq_len: int) -> Tensor | None:
    """Validate a ``(B, T)`` right-padded 0/1 mask and return it as bool (or ``None``)."""
    if mask is None:
        return None
    if tuple(mask.shape) != (batch_size, seq_len):
        raise ValueError(
            f"mask must have shape (B, T) = ({batch_size}, {seq_len}), got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must hold only 0 (padding) and 1 (token) values")
        mask = mask != 0
    return mask


def _lengths_from_mask(mask: Tensor) -> Tensor:
    """Return the per-row lengths of a right-padded bool mask ``(B, T)``; raise on other layouts."""
    lengths = mask.sum(1)  # (B,)
    positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
    if not bool((mask == (positions.unsqueeze(0) < lengths.unsqueeze(1))).all()):
        raise ValueError(
            "mask must be right-padded: each row is 1 for the tokens, then 0 for the padding "
            "(no 0 before a 1)"
        )
    return lengths


class ScratchGRUStack(nn.Module):
    """Stacked, optionally bidirectional, batch-first GRU built from the from-scratch :class:`GRU`.

    A drop-in for ``nn.GRU(input_size, hidden_size, num_layers, batch_first=True,
    bidirectional=...)`` with the same output layout (``outputs (B, T, D*H)``, ``hidden
    (D*L, B, H)``, layer-major, forward before backward). Used by the classifiers when
    ``gru_impl="scratch"``. With a right-padded mask each sequence is read only up to its last real
    token (the backward direction reads the real tokens reversed), exactly as a packed
    ``nn.GRU`` does.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        d = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            GRU(input_size if layer == 0 else d * hidden_size, hidden_size)
            for layer in range(num_layers)
            for _ in range(d)
        )

    def forward(
        self, inputs: Tensor, hidden_states: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run all layers; ``mask`` is a right-padded bool ``(B, T)`` mask or ``None``."""
        B, T, _ = inputs.shape
        d = 2 if self.bidirectional else 1
        if mask is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=inputs.device)
        else:
            lengths = _lengths_from_mask(mask)  # (B,)
        steps = torch.arange(T, device=inputs.device)  # (T,)
        valid = (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
        # reverse the real tokens of each row, leave the padding in place: (B, T) gather index
        rev = torch.where(valid[..., 0], lengths.unsqueeze(1) - 1 - steps, steps.unsqueeze(0))
        last = (lengths - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, self.hidden_size)
        empty = (lengths == 0).view(B, 1)  # (B, 1)
        x, finals = inputs, []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(d):
                k = layer * d + direction
                h0 = hidden_states[k : k + 1]  # (1, B, H)
                seq = x if direction == 0 else _gather_time(x, rev)
                out, _ = self.cells[k](seq, h0)  # (B, T, H)
                h_last = out.gather(1, last).squeeze(1)  # (B, H)
                finals.append(torch.where(empty, h0[0], h_last))
                if direction == 1:
                    out = _gather_time(out, rev)
                outs.append(out * valid)  # zero at padded steps
            x = torch.cat(outs, dim=-1)  # (B, T, D*H)
        return x, torch.stack(finals, 0)  # (B, T, D*H), (D*L, B, H)


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """``x[b, index[b, t]]`` for ``x (B, T, F)`` and ``index (B, T)``."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


GRU_IMPLS = ("torch", "scratch")
"""``gru_impl`` values: ``torch`` runs ``nn.GRU`` (the design's choice), ``scratch`` the
from-scratch :class:`GRU` in a :class:`ScratchGRUStack`."""


def _make_gru(
    impl: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool
) -> nn.Module:
    if impl == "torch":
        return nn.GRU(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
        )
    if impl == "scratch":
        return ScratchGRUStack(input_size, hidden_size, num_layers, bidirectional)
    raise ValueError(f"gru_impl must be one of {', '.join(GRU_IMPLS)}, got {impl!r}")


def _run_gru_masked(
    rnn: nn.Module, inputs: Tensor, hidden_states: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Run a batch-first GRU stack so that padded steps never enter the recurrence.

    Returns ``nn.GRU``'s ``(outputs (B, T, D*H), hidden (D*L, B, H))`` with outputs at padded
    positions set to zero and, for rows that are all padding, ``hidden`` equal to the initial state.
    """
    if isinstance(rnn, ScratchGRUStack):
        return rnn(inputs, hidden_states, mask)
    if mask is None:
        return rnn(inputs, hidden_states)
    B, T, _ = inputs.shape
    lengths = _lengths_from_mask(mask)  # (B,)
    if bool((lengths == T).all()):
        return rnn(inputs, hidden_states)
    empty = lengths == 0  # (B,)
    packed = pack_padded_sequence(
        inputs, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
    )
    packed_out, hidden = rnn(packed, hidden_states)
    outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T)  # (B, T, D*H)
    if bool(empty.any()):
        outputs = outputs.masked_fill(empty.view(B, 1, 1), 0.0)
        hidden = torch.where(empty.view(1, B, 1), hidden_states, hidden)  # (D*L, B, H)
    return outputs, hidden


# --------------------------------------------------------------------------------------------
# Encoder, attention, decoder
# --------------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """Token embedding + bidirectional GRU whose two directions are summed.

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        embedding_size: size of the token embeddings.
        hidden_size: size ``H`` of the GRU state.
        num_layers: number of stacked bidirectional GRU layers.
        dropout: dropout probability on the embeddings.
        gru_impl: ``"torch"`` (``nn.GRU``, the default) or ``"scratch"`` (the from-scratch
            :class:`GRU`, same equations and outputs, different parameter names).
    """

    def __init__(
        self,
        vocabulary_size: int = 30522,
        embedding_size: int = 256,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        gru_impl: str = "torch",
    ) -> None:
        super().__init__()
        _store_sizes(self, vocabulary_size, embedding_size, hidden_size, num_layers, dropout)
        self.embedding = nn.Embedding(vocabulary_size, embedding_size, padding_idx=0)
        self.dropout = nn.Dropout(p=dropout)
        self.rnn = _make_gru(gru_impl, embedding_size, hidden_size, num_layers, True)

    def forward(
        self, inputs: Tensor, hidden_states: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Encode a batch of token ids.

        Args:
            inputs: ``(B, T)`` token ids.
            hidden_states: ``(2 * num_layers, B, H)`` initial state; zeros when ``None``.
            mask: ``(B, T)`` right-padded 0/1 mask, or ``None`` when nothing is padded.

        Returns:
            ``(outputs (B, T, H), hidden (num_layers, B, H))``: the sum of the forward and
            backward outputs at every step (zero at padded steps) and, for every layer, the sum of
            the two directions' final states.
        """
        if inputs.dim() != 2:
            raise ValueError(f"inputs must be (B, T) token ids, got shape {tuple(inputs.shape)}")
        B, T = inputs.shape
        mask = _check_mask(mask, B, T)
        if hidden_states is None:
            hidden_states = self.initial_states(B, device=inputs.device)
        embedded = self.dropout(self.embedding(inputs))  # (B, T, E)
        outputs, hidden = _run_gru_masked(self.rnn, embedded, hidden_states, mask)
        # outputs (B, T, 2H) = [forward ; backward]; hidden (2L, B, H) = l0 fwd, l0 bwd, l1 fwd, ...
        outputs = outputs[..., : self.hidden_size] + outputs[..., self.hidden_size :]  # (B, T, H)
        hidden = hidden.view(self.num_layers, 2, B, self.hidden_size).sum(1)  # (L, B, H)
        return outputs, hidden

    def initial_states(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Return zero initial states ``(2 * num_layers, batch_size, H)`` in the model's dtype."""
        if device is None:
            device = self.embedding.weight.device
        return torch.zeros(
            self.num_layers * 2,
            batch_size,
            self.hidden_size,
            dtype=self.embedding.weight.dtype,
            device=device,
        )


class Attn(nn.Module):
    """One-layer MLP (soft) attention over time steps.

    ``score_t = sum(V tanh(W [x_t ; h]))``, softmax over the unpadded steps.

    Args:
        hidden_size: size ``H`` of the inputs and of the hidden state.
        dropout: kept for the teaching design's signature; unused.
    """

    def __init__(self, hidden_size: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.W = nn.Linear(hidden_size * 2, hidden_size)
        self.V = nn.Linear(hidden_size, hidden_size)
        self.tanh = nn.Tanh()
        self.softmax = nn.Softmax(dim=1)

    def forward(
        self, inputs: Tensor, hidden_states: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Weight every step of ``inputs`` by its attention score.

        Args:
            inputs: ``(B, T, H)`` the vectors attended over.
            hidden_states: ``(num_layers, B, H)``; the last (top) layer is the query.
            mask: ``(B, T)`` 0/1 mask; steps with 0 get zero weight. A row that is all padding
                gets all-zero weights.

        Returns:
            ``(x_attn * inputs (B, T, H), x_attn (B, T, 1))``.
        """
        B, T, H = inputs.shape
        if hidden_states.dim() != 3 or tuple(hidden_states.shape[1:]) != (B, H):
            raise ValueError(
                f"hidden_states must have shape (num_layers, {B}, {H}), "
                f"got {tuple(hidden_states.shape)}"
            )
        if mask is not None and mask.dtype != torch.bool:
            mask = _check_mask(mask, B, T)
        query = hidden_states[-1].unsqueeze(1).expand(B, T, H)  # (B, T, H)
        x = self.tanh(self.W(torch.cat([inputs, query], dim=-1)))  # (B, T, H)
        scores = self.V(x).sum(dim=-1, keepdim=True)  # (B, T, 1)
        if mask is not None:
            keep = mask.unsqueeze(-1)  # (B, T, 1)
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
            x_attn = self.softmax(scores)  # (B, T, 1)
            # An all-padding row would get uniform weights over padding: make them zero instead.
            x_attn = x_attn * keep.any(dim=1, keepdim=True)  # (B, T, 1)
        else:
            x_attn = self.softmax(scores)  # (B, T, 1)
        return x_attn * inputs, x_attn


class DecoderAttn(nn.Module):
    """Soft attention over the encoder outputs, then a unidirectional GRU.

    Args:
        vocabulary_size: kept for the teaching design's signature; unused.
        embedding_size: kept for the teaching design's signature; unused.
        hidden_size: size ``H`` of the encoder outputs and of the GRU state.
        num_layers: number of stacked GRU layers.
        dropout: dropout probability on the encoder outputs.
        gru_impl: ``"torch"`` (``nn.GRU``, the default) or ``"scratch"``.
    """

    def __init__(
        self,
        vocabulary_size: int = 30522,
        embedding_size: int = 256,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        gru_impl: str = "torch",
    ) -> None:
        super().__init__()
        _store_sizes(self, vocabulary_size, embedding_size, hidden_size, num_layers, dropout)
        self.dropout = nn.Dropout(p=dropout)
        self.mlp_attn = Attn(hidden_size, dropout)
        self.rnn = _make_gru(gru_impl, hidden_size, hidden_size, num_layers, False)

    def forward(
        self, inputs: Tensor, hidden_states: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attend over ``inputs`` and run the GRU from ``hidden_states``.

        Args:
            inputs: ``(B, T, H)`` encoder outputs.
            hidden_states: ``(num_layers, B, H)`` encoder hidden state.
            mask: ``(B, T)`` right-padded 0/1 mask, or ``None``.

        Returns:
            ``(outputs (B, T, H), hidden (num_layers, B, H))``; outputs are zero at padded steps.
        """
        B, T, _ = inputs.shape
        mask = _check_mask(mask, B, T)
        inputs = self.dropout(inputs)  # (B, T, H)
        attended, _ = self.mlp_attn(inputs, hidden_states, mask)  # (B, T, H)
        return _run_gru_masked(self.rnn, attended, hidden_states, mask)


class EncoderDecoder(nn.Module):
    """Bidirectional GRU encoder, optionally followed by the attention decoder.

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        embedding_size: size of the token embeddings.
        hidden_size: size ``H`` of the states and of the returned representation.
        num_layers: number of GRU layers in the encoder and in the decoder.
        dropout: dropout probability (encoder embeddings, decoder inputs).
        encoder_only: skip the decoder.
        gru_impl: ``"torch"`` (``nn.GRU``, the default) or ``"scratch"`` (the from-scratch GRU).
    """

    def __init__(
        self,
        vocabulary_size: int = 30522,
        embedding_size: int = 256,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        encoder_only: bool = False,
        gru_impl: str = "torch",
    ) -> None:
        super().__init__()
        self.encoder_only = encoder_only
        self.hidden_size = hidden_size
        self.encoder = Encoder(
            vocabulary_size, embedding_size, hidden_size, num_layers, dropout, gru_impl
        )
        if not encoder_only:
            self.decoder = DecoderAttn(
                vocabulary_size, embedding_size, hidden_size, num_layers, dropout, gru_impl
            )

    def forward(self, inputs: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Encode (and decode) a batch of token ids into one vector per sequence.

        Args:
            inputs: ``(B, T)`` token ids.
            mask: ``(B, T)`` right-padded 0/1 mask, or ``None``.

        Returns:
            ``(representation (B, H), hidden (num_layers, B, H))``; the representation is the
            output at the first position (for the bidirectional encoder it has read the whole
            sequence backwards).
        """
        if inputs.dim() != 2:
            raise ValueError(f"inputs must be (B, T) token ids, got shape {tuple(inputs.shape)}")
        if inputs.shape[1] == 0:
            raise ValueError("inputs must have at least one position (T >= 1)")
        mask = _check_mask(mask, inputs.shape[0], inputs.shape[1])
        hidden_states = self.encoder.initial_states(inputs.shape[0], device=inputs.device)
        x, hidden_states = self.encoder(inputs, hidden_states, mask)  # (B, T, H), (L, B, H)
        if not self.encoder_only:
            x, hidden_states = self.decoder(x, hidden_states, mask)  # (B, T, H), (L, B, H)
        return x[:, 0], hidden_states  # (B, H), (L, B, H)


def check_positive_ints(**values: int) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _store_sizes(
    module: nn.Module,
    vocabulary_size: int,
    embedding_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
) -> None:
    """Check the sizes (``ValueError``) and keep them as attributes of ``module``."""
    _check_sizes(vocabulary_size, embedding_size, hidden_size, num_layers, dropout)
    module.vocabulary_size = vocabulary_size
    module.embedding_size = embedding_size
    module.hidden_size = hidden_size
    module.num_layers = num_layers


def _check_sizes(
    vocabulary_size: int, embedding_size: int, hidden_size: int, num_layers: int, dropout: float
) -> None:
    check_positive_ints(
        vocabulary_size=vocabulary_size,
        embedding_size=embedding_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
    )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
