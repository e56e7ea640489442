"""Causal-LM sentence scoring: biasprobe's batched scorer against a per-sentence loop, in one
process.

The model is GPT-2-small-shaped (12 layers, hidden 768, 12 heads, 1,024 positions, an output
layer of 50,257 tokens) with random weights: the compute cost of ``gpt2`` without its weights,
which cannot be downloaded here. Its tokenizer is a byte-level BPE trained here (``tokenizers``)
on the shipped CrowS-Pairs sentences, with ``<|endoftext|>`` as BOS/EOS as in GPT-2; it has
fewer than 50,257 tokens, and the model's embedding and output layer are padded to 50,257 rows
so that the LM head costs what GPT-2's does. The sentences are the shipped CrowS-Pairs
sentences (``sent_more`` and ``sent_less`` of the first pairs, distinct ones).

Two ways to get the same per-sentence log-likelihoods (BOS prepended, every token scored):

* loop: what bias-bench does — one sentence at a time through a plain ``GPT2LMHeadModel``
  forward (batch of 1), ``log_softmax`` over the vocabulary, ``gather`` of the next tokens;
* biasprobe: ``HFCausalLM.sentence_logprobs`` — distinct sentences sorted by length, right-padded
  batches, only the scored tokens' log-probs gathered.

Prints wall times, the speed ratio and the largest per-sentence |Δ log-likelihood| (and per
token), then the float32 matmul rate this machine reaches, so that the times can be read
against what the arithmetic alone costs (``--no-peak`` skips that part).

Usage: python benchmarks/bench_causal.py [--sentences 300] [--batch-size 32] [--threads N]
       [--repeat 1] [--smoke]   (--smoke: a tiny model and 6 sentences, to check that it runs)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's biasprobe, not an installed one

EOT = "<|endoftext|>"
#: GPT-2 small (the defaults of ``GPT2Config``), and a tiny model for --smoke.
GPT2_SMALL = dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024)
TINY = dict(n_embd=32, n_layer=2, n_head=2, n_positions=128)
GPT2_VOCAB = 50257


def crows_sentences(n: int) -> list[str]:
    """The first ``n`` distinct sentences of the shipped CrowS-Pairs (sent_more, sent_less)."""
    from biasprobe.crows import load_pairs

    out: dict[str, None] = {}
    for p in load_pairs():
        out.setdefault(p.sent_more)
        out.setdefault(p.sent_less)
    return list(out)[:n]


def build(smoke: bool) -> tuple[torch.nn.Module, object]:
    """A random GPT-2-small-shaped model (tiny with ``smoke``) and a byte-level BPE tokenizer
    trained on every CrowS-Pairs sentence."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000 if smoke else GPT2_VOCAB,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(crows_sentences(10**9), trainer)
    tok = GPT2TokenizerFast(tokenizer_object=bpe, bos_token=EOT, eos_token=EOT)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tok) if smoke else GPT2_VOCAB,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **(TINY if smoke else GPT2_SMALL),
    )
    return GPT2LMHeadModel(config).eval(), tok


def loop_scores(model, tok, sentences: list[str]) -> list[np.ndarray]:
    """The per-sentence loop: BOS + the sentence's tokens, one forward each, log_softmax, gather."""
    out = []
    for s in sentences:
        ids = torch.tensor([[tok.bos_token_id] + tok(s, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            logits = model(ids).logits[0]  # (T, V)
        logp = torch.log_softmax(logits[:-1], dim=-1)
        out.append(logp.gather(1, ids[0, 1:, None])[:, 0].double().numpy())
    return out


def matmul_rate(m: int, k: int, n: int, reps: int = 5) -> float:
    """Best float32 GFLOP/s of an (m, k) @ (k, n) product over ``reps`` runs."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1, help="time each method this many times")
    ap.add_argument("--no-peak", action="store_true", help="skip the matmul-rate measurement")
    ap.add_argument("--smoke", action="store_true", help="tiny model, 6 sentences: seconds")
    args = ap.parse_args()
    if args.smoke:
        args.sentences = 6
    if args.threads:
        torch.set_num_threads(args.threads)

    from biasprobe.backends.causal import HFCausalLM

    sentences = crows_sentences(args.sentences)
    model, tok = build(args.smoke)
    scorer = HFCausalLM(model, tok, name="gpt2-small-shaped", batch_size=args.batch_size)
    n_params = sum(p.numel() for p in model.parameters())
    lengths = [len(tok(s, add_special_tokens=False)["input_ids"]) + 1 for s in sentences]
    print(
        f"{len(sentences)} CrowS-Pairs sentences, {sum(lengths)} tokens with BOS (mean "
        f"{np.mean(lengths):.1f}, max {max(lengths)}); GPT-2-{'tiny' if args.smoke else 'small'}"
        f"-shaped, random weights, {n_params / 1e6:.1f} M parameters, output vocab "
        f"{model.config.vocab_size} (tokenizer {len(tok)}); batch size {args.batch_size}; "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    scorer.sentence_logprobs(sentences[:4])  # warm-up
    loop_scores(model, tok, sentences[:2])
    t_batched, t_loop = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        got = scorer.sentence_logprobs(sentences)
        t_batched.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = loop_scores(model, tok, sentences)
        t_loop.append(time.perf_counter() - t0)
    d_sentence = max(abs(g.total - float(np.sum(r))) for g, r in zip(got, ref))
    d_token = max(float(np.max(np.abs(g.logprobs - r))) for g, r in zip(got, ref))
    same_len = all(len(g.logprobs) == len(r) for g, r in zip(got, ref))
    for k in range(args.repeat):
        print(
            f"run {k + 1}: per-sentence loop {t_loop[k]:7.2f} s   biasprobe batched "
            f"{t_batched[k]:7.2f} s   ratio {t_loop[k] / t_batched[k]:.2f}x"
        )
    tb, tl = min(t_batched), min(t_loop)
    print(f"per-sentence loop (best): {tl:8.2f} s")
    print(f"biasprobe batched (best): {tb:8.2f} s")
    print(f"speed-up: {tl / tb:.2f}x")
    print(f"max |Δ| per sentence: {d_sentence:.2e}; per token: {d_token:.2e}")
    print(f"identical to 1e-5: {same_len and d_sentence <= 1e-5}")
    if args.no_peak:
        return
    # Forward FLOPs: 2 per weight per token (the position and token embeddings are lookups,
    # the output layer shares the token embedding matrix) plus attention scores and values
    # (computed in full, the causal mask applied to the scores).
    cfg = model.config
    body = n_params - cfg.vocab_size * cfg.n_embd - cfg.n_positions * cfg.n_embd
    per_token = 2 * (body + cfg.vocab_size * cfg.n_embd)
    attention = sum(4 * cfg.n_layer * n * n * cfg.n_embd for n in lengths)
    flops = per_token * sum(lengths) + attention
    rows = min(args.batch_size, len(sentences)) * int(np.mean(lengths))
    head = matmul_rate(rows, cfg.n_embd, cfg.vocab_size)
    mlp = matmul_rate(rows, cfg.n_embd, 4 * cfg.n_embd)
    one = matmul_rate(int(np.mean(lengths)), cfg.n_embd, 4 * cfg.n_embd)
    print(
        f"forward arithmetic: {flops / 1e9:.1f} GFLOP; loop {flops / tl / 1e9:.1f} GFLOP/s, "
        f"batched {flops / tb / 1e9:.1f} GFLOP/s"
    )
    print(
        f"float32 matmul on this machine: {head:.1f} GFLOP/s ({rows}x{cfg.n_embd} @ "
        f"{cfg.n_embd}x{cfg.vocab_size}), {mlp:.1f} GFLOP/s ({rows}x{cfg.n_embd} @ "
        f"{cfg.n_embd}x{4 * cfg.n_embd}), {one:.1f} GFLOP/s (one sentence, "
        f"{int(np.mean(lengths))}x{cfg.n_embd} @ {cfg.n_embd}x{4 * cfg.n_embd})"
    )
    best = max(head, mlp)
    print(
        f"arithmetic alone at the best matmul rate: {flops / best / 1e9:.2f} s, so no batching "
        f"can beat the loop by more than {tl / (flops / best / 1e9):.2f}x here"
    )


if __name__ == "__main__":
    main()
