"""CrowS-Pairs scoring: biasprobe's batched scorer against a per-sentence loop, in one process.

The model is BERT-base-shaped (12 layers, hidden 768, 12 heads, the real 30,522-token uncased
vocab) with random weights: the compute cost of bert-base-uncased without its weights, which
cannot be downloaded here. The pairs are the first N of the shipped CrowS-Pairs file.

Two ways to get the same per-pair scores:

* loop: what bias-bench and the original script do — for every sentence, for every token to
  score, one forward pass of the whole masked sentence (batch of 1, logits at every position),
  log-softmax at the masked position, ``.item()``;
* biasprobe: ``biasprobe.crows.score_pairs`` — every masked variant of every sentence built up
  front, duplicates scored once, length-sorted batches, LM head at the masked position only.

Prints wall times, the speed ratio, the largest per-pair |Δ score| and whether every pair's
outcome (more / less / tie) is identical.

Usage: python benchmarks/bench_crows.py [--pairs 100] [--scoring meade|nangia] [--threads N]
       [--batch-size 64] [--smoke]   (--smoke: a tiny model and 3 pairs, to check that it runs)
"""

from __future__ import annotations

import argparse
import difflib
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
    # bert-base defaults (12 × 768), or tiny with --smoke
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), **(TINY if smoke else {}))).eval()
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))


def loop_scores(
    model, tok, pairs, scoring: str, device: str = "cpu"
) -> list[tuple[float, float] | None]:
    """The straightforward loop (one forward per scored token per sentence)."""
    out: list[tuple[float, float] | None] = []
    for p in pairs:
        s1, s2 = (
            (p.sent_more, p.sent_less) if p.direction == "stereo" else (p.sent_less, p.sent_more)
        )
        ids1 = tok.encode(s1, return_tensors="pt").to(device)
        ids2 = tok.encode(s2, return_tensors="pt").to(device)
        a = [str(x) for x in ids1[0].tolist()]
        b = [str(x) for x in ids2[0].tolist()]
        t1, t2 = [], []
        for op in difflib.SequenceMatcher(None, a, b).get_opcodes():
            if (op[0] == "equal") == (scoring == "nangia"):
                t1 += list(range(op[1], op[2]))
                t2 += list(range(op[3], op[4]))
        if scoring == "nangia":
            t1, t2 = t1[1:-1], t2[1:-1]
        elif not t1 or not t2:
            out.append(None)
            continue

        def logp(ids, pos):
            masked = ids.clone()
            masked[0, pos] = tok.mask_token_id
            with torch.no_grad():
                logits = model(masked).logits[0, pos]
            return torch.log_softmax(logits, dim=0)[ids[0, pos]].item()

        agg = np.sum if scoring == "nangia" else np.mean
        sc1 = float(agg([logp(ids1, i) for i in t1]))
        sc2 = float(agg([logp(ids2, i) for i in t2]))
        out.append((sc1, sc2) if p.direction == "stereo" else (sc2, sc1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--scoring", choices=["meade", "nangia"], default="meade")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both methods run there)")
    ap.add_argument("--smoke", action="store_true", help="tiny model, 3 pairs: runs in seconds")
    args = ap.parse_args()
    if args.smoke:
        args.pairs = 3
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from biasprobe.backends.hf import load_hf_masked_lm
    from biasprobe.crows import load_pairs, score_pairs
    from biasprobe.crows.scoring import pair_outcome

    pairs = load_pairs(limit=args.pairs)
    tmp = Path(tempfile.mkdtemp(prefix="bench-crows-"))
    try:
        build_model(tmp, smoke=args.smoke)
        model = AutoModelForMaskedLM.from_pretrained(str(tmp)).eval().to(args.device)
        tok = AutoTokenizer.from_pretrained(str(tmp))
        backend = load_hf_masked_lm(str(tmp), device=args.device, batch_size=args.batch_size)
        print(
            f"{len(pairs)} CrowS-Pairs, scoring {args.scoring}; BERT-base-shaped, random weights, "
            f"vocab {len(tok)}; torch {torch.__version__}, threads {torch.get_num_threads()}, "
            f"device {args.device}"
        )
        score_pairs(backend, pairs[:2], args.scoring)  # warm-up
        t0 = time.perf_counter()
        rows = score_pairs(backend, pairs, args.scoring)
        t_batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = loop_scores(model, tok, pairs, args.scoring, args.device)
        t_loop = time.perf_counter() - t0
        backend.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    diffs, same = [], True
    for row, r in zip(rows, ref):
        if r is None:
            same &= row["outcome"] == "skipped"
            continue
        diffs += [abs(row["score_more"] - r[0]), abs(row["score_less"] - r[1])]
        same &= row["outcome"] == pair_outcome(*r, args.scoring)
    n_tokens = sum(int(r["n_scored_more"]) + int(r["n_scored_less"]) for r in rows)
    print(f"masked tokens scored: {n_tokens}")
    print(f"per-sentence loop: {t_loop:8.2f} s")
    print(f"biasprobe batched: {t_batched:8.2f} s")
    print(f"speed-up: {t_loop / t_batched:.1f}x")
    print(f"max |Δ score| per pair: {max(diffs):.2e}; identical outcomes: {same}")


if __name__ == "__main__":
    main()
