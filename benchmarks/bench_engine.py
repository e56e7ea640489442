"""biasprobe's runner against a loop over ``pipeline('fill-mask')``, in one process.

The model is BERT-base-shaped (12 layers, hidden 768, 12 heads, the real 30,522-token uncased
vocab) with random weights: the compute cost of bert-base-uncased without its weights, which
cannot be downloaded here. The probe suite is 250 pairs = 500 sentences (names × contexts).

Two ways to get the same numbers:

* biasprobe: ``biasprobe.run`` (top-k, full-vocabulary log-softmax at the mask, all scores);
* transformers: what a user would write — a loop over ``pipeline('fill-mask', top_k=5)`` for
  the top-5 lists, and over ``pipeline('fill-mask', top_k=vocab_size)`` for the
  full-vocabulary scores.

Prints wall times, the speed ratios (full outputs and top-k only) and whether the answers agree
(identical top-5 token ids; max |Δ log p| over the whole vocabulary).

Usage: python benchmarks/bench_engine.py [--vocab PATH] [--sentences 500] [--threads N]
[--smoke] (--smoke: a tiny model and 8 sentences, to check that the script runs)
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
from suites import CONTEXTS, NAMES_W, names_suite_yaml  # noqa: E402 (benchmarks/suites.py, run as a script)


def default_vocab() -> Path:
    shared = REPO.parent / "shared" / "data" / "pair-fill-in-the-blank" / "vocab.txt"
    if shared.is_file():
        return shared
    return REPO / "biasprobe" / "data" / "vocab" / "bert-base-uncased" / "vocab.txt"


#: --smoke: a tiny BERT (same vocabulary), so the script runs in seconds.
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def build_model(folder: Path, vocab: Path, smoke: bool = False) -> None:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    shutil.copy(vocab, folder / "vocab.txt")
    tok = BertTokenizer.from_pretrained(str(folder))
    torch.manual_seed(0)
    # bert-base defaults: 12 × 768, 12 heads, 3072 MLP
    cfg = BertConfig(vocab_size=len(tok), **(TINY if smoke else {}))
    model = BertForMaskedLM(cfg).eval()
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))


def write_probes(path: Path, n_sentences: int) -> None:
    n_contexts = max(1, min(len(CONTEXTS), math.ceil(n_sentences / 2 / len(NAMES_W))))
    n_names = math.ceil(n_sentences / 2 / n_contexts)
    assert n_names <= len(NAMES_W), "at most 500 sentences"
    chosen = [("names", "{name} {context} [MASK].")]
    path.write_text(names_suite_yaml("bench", "benchmark suite", n_names, n_contexts, chosen))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=Path, default=None)
    ap.add_argument("--sentences", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny model and suite: runs in seconds")
    args = ap.parse_args()
    if args.smoke:
        args.sentences = 4
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    import biasprobe

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    try:
        model_dir = tmp / "bert-base-shaped"
        model_dir.mkdir()
        build_model(model_dir, args.vocab or default_vocab(), smoke=args.smoke)
        probe = tmp / "bench.yaml"
        write_probes(probe, args.sentences)
        probe_set = biasprobe.load_probe_set(probe)
        sentences = [s for it in probe_set.items for s in it.sentences]
        print(
            f"suite: {len(probe_set.items)} pairs = {len(sentences)} sentences; model: "
            f"{'tiny (--smoke)' if args.smoke else 'BERT-base-shaped'}, random weights, vocab "
            f"30522; torch threads: "
            f"{torch.get_num_threads()}"
        )

        backend = biasprobe.load_backend(str(model_dir), device="cpu", batch_size=args.batch_size)
        t0 = time.perf_counter()
        # store="full": the run folder keeps every sentence's full-vocabulary vector, the
        # outputs compared below (the default store keeps each pair's top tokens only)
        result = biasprobe.run(probe_set, [backend], top_k=5, store="full")
        t_ours = time.perf_counter() - t0
        table = result.logprobs[backend.name]
        print(f"biasprobe.run (top-5 + full vocab + scores): {t_ours:8.2f} s")

        model = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
        tok = AutoTokenizer.from_pretrained(str(model_dir))
        fill5 = pipeline("fill-mask", model=model, tokenizer=tok, top_k=5, device="cpu")
        t0 = time.perf_counter()
        top5 = [fill5(s) for s in sentences]
        t_top5 = time.perf_counter() - t0
        print(f"pipeline loop, top_k=5:                      {t_top5:8.2f} s")

        fill_all = pipeline("fill-mask", model=model, tokenizer=tok, top_k=len(tok), device="cpu")
        t0 = time.perf_counter()
        full = []
        # --smoke: two sentences (a top_k=vocab pipeline call builds 30,522 dicts)
        for s in sentences[:2] if args.smoke else sentences:
            out = fill_all(s)
            vec = np.empty(len(tok))
            vec[[d["token"] for d in out]] = [d["score"] for d in out]
            full.append(vec)
        t_full = time.perf_counter() - t0
        print(f"pipeline loop, top_k=vocab (full scores):    {t_full:8.2f} s")

        same_top = all(
            [d["token"] for d in ref]
            == result.topk[(result.topk.sentence == s)]
            .drop_duplicates(["rank"])
            .sort_values("rank")["token_id"]
            .tolist()
            for s, ref in zip(sentences, top5)
        )
        max_diff = max(
            float(np.max(np.abs(np.log(np.maximum(vec, 1e-45)) - table.row(s))))
            for s, vec in zip(sentences, full)
        )
        print()
        print(f"top-5 identical for all {len(sentences)} sentences: {same_top}")
        print(f"max |log p(pipeline) − log p(biasprobe)| over the vocab: {max_diff:.2e}")
        print(f"speed-up, same outputs (top-5 + full vocab): {(t_top5 + t_full) / t_ours:6.1f}×")
        print(f"speed-up, top-k only (pipeline top_k=5 loop): {t_top5 / t_ours:6.1f}×")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
