"""Classifier scoring throughput for downstream runs, per classifier kind, in one process.

For each kind biasprobe can score counterfactual probe sets with, the sentences of a shipped
probe set are scored twice with the same weights:

* loop: one sentence per forward pass (what a plain ``for sentence in ...: model(sentence)``
  script does);
* biasprobe: ``Classifier.predict_positive`` on the whole list (length-sorted batches under
  ``inference_mode``), as ``biasprobe run`` does.

It prints sentences/s for both, the ratio, and the largest |Δ P(pos)| between the two (they
must agree). Weights are random (throughput does not depend on them): the study models are
built from configs/sentiment/rotten-tomatoes/*.yaml, the pretrained-encoder classifier from
the all-MiniLM-L6-v2 package when it is installed (``--with-minilm`` in scripts/setup.sh), and
the Hugging Face kind is a BERT-base-shaped ``BertForSequenceClassification`` (12 × 768, real
uncased vocab).

Usage: python benchmarks/bench_downstream.py [--probe probes/sentiment-gender.yaml]
       [--loop-sentences 200] [--threads N] [--kinds bow,gru_encoder,...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's biasprobe, not an installed one
CONFIGS = REPO / "configs" / "sentiment" / "rotten-tomatoes"
VOCAB = REPO / "biasprobe" / "data" / "vocab" / "bert-base-uncased" / "vocab.txt"
STUDY = {
    "bow": "0-bow.yaml",
    "gru_encoder": "1-gru-encoder.yaml",
    "gru_attention": "2-gru-attention.yaml",
    "transformer": "3-transformer-2l-pre.yaml",
    "encoder (MiniLM)": "6-minilm-frozen.yaml",
}


def sentiment_run(config_file: Path, folder: Path) -> Path | None:
    """A run folder with random weights for ``config_file`` (None if it cannot be built here)."""
    import torch
    from safetensors.torch import save_model

    from biasprobe.errors import BiasprobeError
    from biasprobe.sentiment.config import load_config
    from biasprobe.sentiment.train import build_model

    try:
        config = load_config(config_file)
        torch.manual_seed(0)
        model = build_model(config).eval()
    except BiasprobeError as e:  # e.g. the MiniLM package is not installed
        print(f"  skipped {config_file.name}: {e}")
        return None
    folder.mkdir(parents=True)
    shutil.copy(config_file, folder / "config.yaml")
    save_model(model, str(folder / "best.safetensors"))
    return folder


#: --smoke: a tiny BERT (same vocabulary), so the script runs in seconds.
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def hf_classifier(folder: Path, smoke: bool = False) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True)
    shutil.copy(VOCAB, folder / "vocab.txt")
    tok = BertTokenizer.from_pretrained(str(folder))
    torch.manual_seed(0)
    cfg = BertConfig(  # bert-base defaults: 12 layers, hidden 768, 12 heads
        vocab_size=len(tok),
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        **(TINY if smoke else {}),
    )
    BertForSequenceClassification(cfg).eval().save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def measure(name: str, folder: Path, sentences: list[str], n_loop: int) -> None:
    """Time both methods, each on a freshly loaded classifier (the loop first), so neither
    profits from the other's work (a frozen encoder caches the features of texts it has seen)."""
    from biasprobe.backends.classifiers import load_classifier

    loop_part = sentences[:n_loop]
    clf = load_classifier(str(folder), device="cpu", batch_size=64)
    clf.predict_positive(["a warm-up sentence ."])
    t0 = time.perf_counter()
    looped = np.array([clf.predict_positive([s])[0] for s in loop_part])
    t_loop = time.perf_counter() - t0
    clf.close()
    clf = load_classifier(str(folder), device="cpu", batch_size=64)
    clf.predict_positive(["a warm-up sentence ."])
    t0 = time.perf_counter()
    batched = clf.predict_positive(sentences)
    t_batched = time.perf_counter() - t0
    clf.close()
    rate_b, rate_l = len(sentences) / t_batched, len(loop_part) / t_loop
    diff = float(np.max(np.abs(batched[: len(loop_part)] - looped)))
    print(
        f"{name:<22} {rate_l:10.1f} {rate_b:12.1f} {rate_b / rate_l:8.1f}x   max|Δ P(pos)| {diff:.1e}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probe", default=str(REPO / "probes" / "sentiment-gender.yaml"))
    ap.add_argument("--loop-sentences", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--kinds", default=None, help="comma-separated subset of the kinds")
    ap.add_argument(
        "--smoke", action="store_true", help="bag of n-grams and a tiny HF classifier, 16 sentences"
    )
    args = ap.parse_args()
    if args.smoke:
        args.loop_sentences, args.kinds = 4, args.kinds or "bow,hf-sequence-classification"
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from biasprobe.probes import load_probe_set

    items = load_probe_set(args.probe).items
    sentences = [s for it in items for s in it.sentences][: 16 if args.smoke else None]
    kinds = [*STUDY, "hf-sequence-classification"]
    if args.kinds:
        kinds = [k for k in kinds if k.split(" ")[0] in args.kinds.split(",")]
    print(
        f"{len(sentences)} sentences of {Path(args.probe).name}; loop over the first "
        f"{args.loop_sentences}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'kind':<22} {'loop sent/s':>10} {'batched sent/s':>12} {'ratio':>8}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-downstream-"))
    try:
        for kind in kinds:
            if kind == "hf-sequence-classification":
                folder = hf_classifier(tmp / "hf", smoke=args.smoke)
                label = "hf (tiny, --smoke)" if args.smoke else "hf (BERT-base-shaped)"
                measure(label, folder, sentences, args.loop_sentences)
                continue
            folder = sentiment_run(CONFIGS / STUDY[kind], tmp / kind.split(" ")[0])
            if folder is not None:
                measure(kind, folder, sentences, args.loop_sentences)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
