"""Pseudo-log-likelihood (PLL and PLL-word-l2r): biasprobe's batched scorer against a per-token
loop, in one process.

The model is BERT-base-shaped (12 layers, hidden 768, 12 heads, the real 30,522-token uncased
vocab) with random weights, built as ``bench_crows.py`` builds it. The sentences are the first
distinct sentences of the shipped CrowS-Pairs (``sent_more``, ``sent_less``).

Two ways to get the same per-sentence scores, for each metric:

* loop: what bias-bench and minicons-style scripts do — for every sentence, for every token to
  score, one forward pass of the whole masked sentence (batch of 1, logits at every position),
  log-softmax at the masked position, ``.item()``; for PLL-word-l2r the later pieces of the
  token's word (the tokenizer's ``word_ids()``) are masked too;
* biasprobe: ``PseudoLogLikelihood(masked, metric=...).sentence_logprobs`` — every masked input
  built up front, duplicates scored once, length-sorted batches, LM head at the mask only.

Prints wall times, the speed ratio and the largest per-sentence |Δ PLL| for each metric.

Usage: python benchmarks/bench_pll.py [--sentences 20] [--batch-size 64] [--threads N]
       [--smoke]   (--smoke: a tiny model and 10 sentences, to check that it runs)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's biasprobe, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_causal import crows_sentences  # noqa: E402
from bench_crows import build_model  # noqa: E402


def loop_scores(model, tok, sentences: list[str], metric: str) -> list[np.ndarray]:
    """Per sentence, the log-prob of every non-special token with it (and, for ``word_l2r``,
    the later pieces of its word) masked: one batch-of-1 forward per token."""
    out = []
    for s in sentences:
        enc = tok(s)
        ids, words = enc["input_ids"], enc.word_ids()
        lps = []
        for t in range(len(ids)):
            if words[t] is None:  # [CLS], [SEP]
                continue
            masked = torch.tensor([ids])
            masked[0, t] = tok.mask_token_id
            if metric == "word_l2r":
                for j in range(t + 1, len(ids)):
                    if words[j] == words[t]:
                        masked[0, j] = tok.mask_token_id
            with torch.no_grad():
                logits = model(masked).logits[0, t]
            lps.append(torch.log_softmax(logits, dim=0)[ids[t]].item())
        out.append(np.array(lps))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny model, 10 sentences: seconds")
    args = ap.parse_args()
    if args.smoke:
        args.sentences = 10
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from biasprobe.backends.hf import load_hf_masked_lm
    from biasprobe.backends.pll import PseudoLogLikelihood

    sentences = crows_sentences(args.sentences)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pll-"))
    try:
        build_model(tmp, smoke=args.smoke)
        model = AutoModelForMaskedLM.from_pretrained(str(tmp)).eval()
        tok = AutoTokenizer.from_pretrained(str(tmp))
        masked = load_hf_masked_lm(str(tmp), device="cpu", batch_size=args.batch_size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    encs = [tok(s) for s in sentences]
    n_tokens = sum(sum(w is not None for w in e.word_ids()) for e in encs)
    n_later = sum(
        sum(w is not None and w in e.word_ids()[t + 1 :] for t, w in enumerate(e.word_ids()))
        for e in encs
    )
    print(
        f"{len(sentences)} CrowS-Pairs sentences, {n_tokens} tokens to score ({n_later} with "
        f"later pieces of their word); BERT-{'tiny' if args.smoke else 'base'}-shaped, random "
        f"weights, vocab {len(tok)}; batch size {args.batch_size}; torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    loop_scores(model, tok, sentences[:1], "original")  # warm-up
    PseudoLogLikelihood(masked).sentence_logprobs(sentences[:2])
    ok = True
    for metric, label in (("original", "PLL"), ("word_l2r", "PLL-word-l2r")):
        scorer = PseudoLogLikelihood(masked, metric=metric)
        t0 = time.perf_counter()
        got = scorer.sentence_logprobs(sentences)
        t_batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = loop_scores(model, tok, sentences, metric)
        t_loop = time.perf_counter() - t0
        same_len = all(len(g.logprobs) == len(r) for g, r in zip(got, ref))
        d = max(abs(g.total - float(np.sum(r))) for g, r in zip(got, ref))
        ok &= same_len and d <= 1e-5
        print(
            f"{label:13s} per-token loop {t_loop:8.2f} s   biasprobe batched {t_batched:7.2f} s"
            f"   speed-up {t_loop / t_batched:.2f}x   max |Δ| per sentence {d:.2e}"
        )
    masked.close()
    print(f"PLL and PLL-word-l2r identical to 1e-5: {ok}")


if __name__ == "__main__":
    main()
