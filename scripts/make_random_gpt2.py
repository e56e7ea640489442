"""Write a GPT2LMHeadModel checkpoint folder with RANDOM weights and a byte-level BPE tokenizer.

For trying biasprobe's causal-LM path (fill-mask probe sets, sentence scoring), tests and
benchmarks on a machine where no pretrained checkpoint is available. Its predictions are
meaningless (random weights); the compute cost of ``--size small`` is that of gpt2 (12 layers,
hidden 768, 1,024 positions) apart from the output layer, whose size is the vocabulary's.

The tokenizer is trained here with the ``tokenizers`` library (byte-level BPE, as GPT-2's) on
text shipped with biasprobe: the CrowS-Pairs sentences and the sentences of every shipped
fill-mask probe set (``[MASK]`` left out). Its special token ``<|endoftext|>`` is the BOS, EOS
and unknown token, as in GPT-2. The model's ``vocab_size`` is the tokenizer's size exactly
(BPE stops early when the text has no more pairs to merge), so the loader's vocabulary check
accepts the folder. Training is deterministic: the same arguments write the same files.

Usage: python scripts/make_random_gpt2.py OUT_DIR [--size tiny|small] [--vocab-size N]
       [--seed N]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

# torch, tokenizers and transformers are imported after the arguments are parsed, so --help
# answers at once.
REPO = Path(__file__).resolve().parent.parent
CROWS = REPO / "biasprobe/data/crows-pairs/crows_pairs_anonymized.csv"
EOT = "<|endoftext|>"
SIZES = {
    "tiny": dict(n_embd=64, n_layer=2, n_head=2, n_positions=256),
    "small": dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024),
}


def corpus() -> list[str]:
    """The CrowS-Pairs sentences (both of each pair) and every shipped fill-mask probe set's
    sentences with ``[MASK]`` left out."""
    import sys

    sys.path.insert(0, str(REPO))
    from biasprobe.catalog import shipped_dir
    from biasprobe.probes import MASK, load_probe_set

    with CROWS.open(newline="", encoding="utf-8") as f:
        texts = [row[col] for row in csv.DictReader(f) for col in ("sent_more", "sent_less")]
    for path in sorted(shipped_dir().glob("*.yaml")):
        ps = load_probe_set(path)
        texts += [" ".join(s.replace(MASK, " ").split()) for it in ps.items for s in it.sentences]
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument(
        "--vocab-size",
        type=int,
        default=8192,
        metavar="N",
        help="BPE vocabulary to train, at most (≥ 300: the 256 bytes, the special token and "
        "merges; the text may give fewer)",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        ap.error(f"{args.out} exists and is not an empty folder")
    if args.vocab_size < 300:
        ap.error(f"--vocab-size must be at least 300, got {args.vocab_size}")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
    from transformers.utils import logging

    logging.disable_progress_bar()

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus(), trainer)
    shape = SIZES[args.size]
    tok = GPT2TokenizerFast(
        tokenizer_object=bpe,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=EOT,
        model_max_length=shape["n_positions"],
    )
    eot = tok.convert_tokens_to_ids(EOT)
    torch.manual_seed(args.seed)
    config = GPT2Config(vocab_size=len(tok), bos_token_id=eot, eos_token_id=eot, **shape)
    model = GPT2LMHeadModel(config).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(args.out), safe_serialization=True)
    tok.save_pretrained(str(args.out))
    n = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {args.out} (GPT2LMHeadModel, {args.size}, random weights, {n:,} parameters, "
        f"byte-level BPE vocab {len(tok)})"
    )


if __name__ == "__main__":
    main()
