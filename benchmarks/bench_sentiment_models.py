"""Forward+backward time of the from-scratch GRU and attention against PyTorch's kernels.

Everything runs in one process, on the same inputs, with the measurements interleaved (A, B, A,
B, ...) so that load from other processes hits both sides alike; the median of ``--repeats``
runs is reported, and the ratios are ours / reference (lower is better).

* GRU: :class:`biasprobe.sentiment.GRU` (hand-written backward, and the plain autograd loop)
  against ``nn.GRU``; inputs ``(B, T, H)``, loss on all outputs and the final state.
* Classifier: the GRU encoder classifier with ``gru_impl="scratch"`` (the from-scratch GRU in a
  bidirectional :class:`~biasprobe.sentiment.rnn.ScratchGRUStack`) against ``gru_impl="torch"``
  (packed ``nn.GRU``), right-padded batches, cross-entropy loss.
* Attention core: ``MultiHeadedAttention.apply_attention`` on ``(B, m, T, d)`` queries, keys and
  values with a right-padding mask (lengths uniform in ``[T/2, T]``), against
  ``F.scaled_dot_product_attention`` with the same boolean mask (plus the same head merge).
* Attention core without padding: the same, no mask (every sequence has length ``T``), which
  shows the cost without the padding that the fused path skips.
* Attention module: ``MultiHeadedAttention.forward`` (projections + attention) against the same
  module's projections around ``F.scaled_dot_product_attention`` (the "SDPA path").

    .venv/bin/python benchmarks/bench_sentiment_models.py               # B=64, T=256, H=256
    .venv/bin/python benchmarks/bench_sentiment_models.py --threads 1    # less sensitive to load

Targets: GRU <= 1.5x nn.GRU, attention <= 1.2x the SDPA path.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from biasprobe.sentiment import GRU, MultiHeadedAttention


def interleaved(fns: dict[str, Callable[[], None]], repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_gru(args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    B, T, H = args.batch, args.seq, args.hidden
    ours = GRU(H, H)
    plain = GRU(H, H, fused=False)
    plain.load_state_dict(ours.state_dict())
    ref = nn.GRU(H, H, batch_first=True)
    x = torch.randn(B, T, H, requires_grad=True)  # (B, T, H)

    def run(module: nn.Module) -> Callable[[], None]:
        def step() -> None:
            out, hidden = module(x)  # (B, T, H), (1, B, H)
            (out.sum() + hidden.sum()).backward()

        return step

    fns = {"nn.GRU": run(ref), "GRU (fused backward)": run(ours)}
    if args.plain:
        fns["GRU (plain autograd loop)"] = run(plain)
    return interleaved(fns, args.repeats, args.warmup)


def bench_classifier_gru_impl(args: argparse.Namespace) -> dict[str, float]:
    """GRU encoder classifier with ``gru_impl="torch"`` vs ``"scratch"``, padded batches."""
    from biasprobe.sentiment import build_classifier

    torch.manual_seed(0)
    B, T, H = args.batch, args.seq, args.hidden
    ids = torch.randint(1, 30522, (B, T))
    lengths = torch.randint(T // 2, T + 1, (B,))
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).long()  # right-padded
    labels = torch.randint(0, 2, (B,))
    fns = {}
    for impl in ("torch", "scratch"):
        model = build_classifier(
            "gru_encoder", embedding_size=H, hidden_size=H, dropout=0.0, gru_impl=impl
        )

        def step(model: nn.Module = model) -> None:
            loss, _ = model(ids * mask, mask, labels)
            loss.backward()

        fns[f"gru_encoder, gru_impl={impl}"] = step
    return interleaved(fns, args.repeats, args.warmup)


def bench_attention(args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    B, T, H, m = args.batch, args.seq, args.hidden, args.heads
    d = H // m
    mha = MultiHeadedAttention(d, m, T)
    plain = MultiHeadedAttention(d, m, T, fused=False)
    plain.load_state_dict(mha.state_dict())
    lengths = torch.randint(T // 2, T + 1, (B,), generator=torch.Generator().manual_seed(0))
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()  # (B, T) right-padded
    keep = mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    x = torch.randn(B, T, H, requires_grad=True)  # (B, T, H)
    q, k, v = (torch.randn(B, m, T, d, requires_grad=True) for _ in range(3))  # (B, m, T, d)

    def core(module: MultiHeadedAttention) -> Callable[[], None]:
        return lambda: module.apply_attention(q, k, v, mask).sum().backward()

    def core_sdpa() -> None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # (B, m, T, d)
        mha.merge_heads(out).sum().backward()

    def module(mod: MultiHeadedAttention) -> Callable[[], None]:
        return lambda: mod(x, mask).sum().backward()

    def module_sdpa() -> None:
        qs = mha.split_heads(mha.W_Q(x))  # (B, m, T, d)
        ks = mha.split_heads(mha.W_K(x))
        vs = mha.split_heads(mha.W_V(x))
        out = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=keep)  # (B, m, T, d)
        mha.W_Y(mha.merge_heads(out)).sum().backward()

    def nomask_sdpa() -> None:
        mha.merge_heads(F.scaled_dot_product_attention(q, k, v)).sum().backward()

    def nomask_ours() -> None:
        mha.apply_attention(q, k, v).sum().backward()

    fns = {
        "core: SDPA": core_sdpa,
        "core: ours (fused)": core(mha),
        "core, no padding: SDPA": nomask_sdpa,
        "core, no padding: ours (fused)": nomask_ours,
        "module: SDPA path": module_sdpa,
        "module: ours (fused)": module(mha),
    }
    if args.plain:
        fns["core: ours (plain autograd)"] = core(plain)
        fns["module: ours (plain autograd)"] = module(plain)
    return interleaved(fns, args.repeats, args.warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--no-plain", dest="plain", action="store_false", help="skip plain paths")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, 1 repeat: seconds")
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.seq, args.hidden, args.heads, args.repeats, args.warmup = 2, 8, 16, 2, 1, 0
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, load average before: {os.getloadavg()[0]:.2f}"
    )
    print(
        f"B={args.batch} T={args.seq} H={args.hidden} heads={args.heads}, float32, CPU, "
        f"median of {args.repeats}, forward+backward\n"
    )

    gru = bench_gru(args)
    base = gru["nn.GRU"]
    for name, seconds in gru.items():
        print(f"{name:34s} {seconds * 1e3:9.1f} ms   {seconds / base:5.2f}x nn.GRU")
    print()
    clf = bench_classifier_gru_impl(args)
    clf_base = clf["gru_encoder, gru_impl=torch"]
    for name, seconds in clf.items():
        print(f"{name:34s} {seconds * 1e3:9.1f} ms   {seconds / clf_base:5.2f}x gru_impl=torch")
    print()
    attn = bench_attention(args)
    for name, seconds in attn.items():
        if name.startswith("core, no padding"):
            ref = attn["core, no padding: SDPA"]
        elif name.startswith("core"):
            ref = attn["core: SDPA"]
        else:
            ref = attn["module: SDPA path"]
        print(f"{name:34s} {seconds * 1e3:9.1f} ms   {seconds / ref:5.2f}x SDPA")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    gru_ratio = gru["GRU (fused backward)"] / base
    core_ratio = attn["core: ours (fused)"] / attn["core: SDPA"]
    module_ratio = attn["module: ours (fused)"] / attn["module: SDPA path"]
    print(f"GRU ratio {gru_ratio:.2f} (target <= 1.5): {'met' if gru_ratio <= 1.5 else 'NOT met'}")
    print(
        f"attention ratio: module {module_ratio:.2f}, core {core_ratio:.2f} (target <= 1.2): "
        f"module {'met' if module_ratio <= 1.2 else 'NOT met'}, "
        f"core {'met' if core_ratio <= 1.2 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
