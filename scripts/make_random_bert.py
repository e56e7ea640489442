"""Write a BertForMaskedLM checkpoint folder with RANDOM weights and the real uncased vocab.

For trying biasprobe's local-folder loading path, tests and benchmarks on a machine where no
pretrained checkpoint is available. Its predictions are meaningless (random weights); the
compute cost of ``--size base`` is that of bert-base-uncased (12 layers, hidden 768).

Usage: python scripts/make_random_bert.py OUT_DIR [--size tiny|base] [--seed N]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

# torch and transformers are imported after the arguments are parsed, so --help answers at once.
VOCAB = Path(__file__).resolve().parent.parent / "biasprobe/data/vocab/bert-base-uncased/vocab.txt"
SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
    "base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        ap.error(f"{args.out} exists and is not empty")
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(VOCAB, args.out / "vocab.txt")
    tok = BertTokenizer.from_pretrained(str(args.out))
    torch.manual_seed(args.seed)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), **SIZES[args.size])).eval()
    model.save_pretrained(str(args.out))
    tok.save_pretrained(str(args.out))
    print(f"wrote {args.out} (BertForMaskedLM, {args.size}, random weights, vocab {len(tok)})")


if __name__ == "__main__":
    main()
