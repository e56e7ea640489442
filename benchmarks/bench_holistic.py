"""HolisticBias PLL scoring: biasprobe's batched path against a per-sentence loop, in one process.

The model is BERT-base-shaped (12 layers, hidden 768, 12 heads, the real 30,522-token uncased
vocab) with random weights: the compute cost of bert-base-uncased without its weights, which
cannot be downloaded here. The sentences are a seeded stratified sample of the HolisticBias v1.1
likelihood-bias subset (:func:`biasprobe.tasks.holistic.stratified_sample`, every axis).

Two ways to get each sentence's pseudo-log-likelihood (Salazar et al. 2020):

* loop: one sentence at a time, each of its tokens masked in turn, one forward pass per masked
  copy (batch of 1, logits at every position), log-softmax at the masked position, ``.item()``;
* biasprobe: ``PseudoLogLikelihood(masked LM).sentence_logprobs`` in the task's chunks — every
  masked copy of a chunk built up front, duplicates scored once, length-sorted batches, the LM
  head at the masked position only.

Prints wall times, sentences/s and forward passes (masked copies) per second of each, the speed
ratio, the largest |Δ PLL| and whether every score is identical to 1e-5.

Usage: python benchmarks/bench_holistic.py [--sentences 300] [--threads N] [--batch-size 64]
       [--smoke]   (--smoke: a tiny model and 12 sentences, to check that it runs)
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
VOCAB = REPO / "biasprobe" / "data" / "vocab" / "bert-base-uncased" / "vocab.txt"
#: --smoke: a tiny BERT (same vocabulary), so the script runs in seconds.
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def build_model(folder: Path, smoke: bool = False) -> None:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    shutil.copy(VOCAB, folder / "vocab.txt")
    tok = BertTokenizer.from_pretrained(str(folder))
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), **(TINY if smoke else {}))).eval()
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))


def loop_scores(model, tok, texts: list[str], device: str) -> tuple[list[float], int]:
    """The straightforward loop; returns each sentence's PLL and the forward passes made."""
    out, passes = [], 0
    for text in texts:
        ids = tok.encode(text, return_tensors="pt").to(device)  # [CLS] ... [SEP]
        total = 0.0
        for pos in range(1, ids.shape[1] - 1):
            masked = ids.clone()
            masked[0, pos] = tok.mask_token_id
            with torch.no_grad():
                logits = model(masked).logits[0, pos]
            total += torch.log_softmax(logits, dim=0)[ids[0, pos]].item()
            passes += 1
        out.append(total)
    return out, passes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both methods run there)")
    ap.add_argument("--smoke", action="store_true", help="tiny model, 12 sentences")
    args = ap.parse_args()
    if args.smoke:
        args.sentences = 12
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    import biasprobe.holistic as hb
    from biasprobe.backends.hf import load_hf_masked_lm
    from biasprobe.backends.pll import PseudoLogLikelihood
    from biasprobe.tasks.holistic import CHUNK, select_rows, stratified_sample

    rows = stratified_sample(select_rows(hb.sentences()), max(args.sentences, 660), seed=0)
    texts = list(dict.fromkeys(rows["text"].sample(frac=1.0, random_state=0)))[: args.sentences]
    tmp = Path(tempfile.mkdtemp(prefix="bench-holistic-"))
    try:
        build_model(tmp, smoke=args.smoke)
        model = AutoModelForMaskedLM.from_pretrained(str(tmp)).eval().to(args.device)
        tok = AutoTokenizer.from_pretrained(str(tmp))
        scorer = PseudoLogLikelihood(
            load_hf_masked_lm(str(tmp), device=args.device, batch_size=args.batch_size)
        )
        print(
            f"{len(texts)} HolisticBias sentences; BERT-base-shaped, random weights, vocab "
            f"{len(tok)}; torch {torch.__version__}, threads {torch.get_num_threads()}, "
            f"device {args.device}, batch size {args.batch_size}"
        )
        scorer.sentence_logprobs(texts[:2])  # warm-up
        t0 = time.perf_counter()
        ours = []
        for start in range(0, len(texts), CHUNK):  # the task's chunks
            ours += scorer.sentence_logprobs(texts[start : start + CHUNK])
        t_batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref, passes = loop_scores(model, tok, texts, args.device)
        t_loop = time.perf_counter() - t0
        scorer.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    got = np.array([r.total for r in ours])
    n_masked = sum(len(r.logprobs) for r in ours)
    diff = float(np.max(np.abs(got - np.array(ref))))
    print(f"masked copies (forward passes of the loop): {passes} (biasprobe: {n_masked})")
    print(
        f"per-sentence loop: {t_loop:8.2f} s  {len(texts) / t_loop:8.1f} sentences/s  "
        f"{passes / t_loop:8.1f} forward passes/s"
    )
    print(
        f"biasprobe batched: {t_batched:8.2f} s  {len(texts) / t_batched:8.1f} sentences/s  "
        f"{n_masked / t_batched:8.1f} masked copies/s"
    )
    print(f"speed-up: {t_loop / t_batched:.1f}x")
    print(f"max |Δ PLL|: {diff:.2e}; identical to 1e-5: {diff <= 1e-5 and n_masked == passes}")


if __name__ == "__main__":
    main()
