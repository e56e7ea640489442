"""Tiny masked LMs and corpora for the ``biasprobe debias`` tests (built here, never downloaded)."""

from __future__ import annotations

import random
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MALE_JOBS = ["carpenter", "mechanic", "pilot"]
FEMALE_JOBS = ["nurse", "secretary", "dancer"]
VERBS = ["is", "was", "became", "remained", "seemed", "looked"]  # six: a set-level CI needs 6
WORDS = (
    "he she him her his hers man woman men women father mother son daughter boy girl "
    "worked as a an the is was became and my met who were there today again . , 's "
    "busy tired happy city remained seemed looked"
).split()


def small_vocab(folder: Path) -> Path:
    """vocab.txt with the special tokens and every word of the synthetic corpus."""
    folder.mkdir(parents=True, exist_ok=True)
    words = SPECIALS + sorted(set(WORDS + MALE_JOBS + FEMALE_JOBS))
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    return folder / "vocab.txt"


def build_small_bert(folder: Path, seed: int = 0, hidden: int = 32, init: float = 0.02) -> Path:
    """A random BertForMaskedLM over :func:`small_vocab`, saved with its tokenizer."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    small_vocab(folder)
    tok = BertTokenizer.from_pretrained(str(folder))
    assert len(tok) == len(SPECIALS) + len(set(WORDS + MALE_JOBS + FEMALE_JOBS))
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=max(2, hidden // 16),
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        initializer_range=init,
        hidden_dropout_prob=0.0,  # a model this small learns the association only without
        attention_probs_dropout_prob=0.0,  # dropout (the dropout recipe sets its own)
    )
    BertForMaskedLM(cfg).eval().save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def biased_corpus(path: Path, n: int = 600, seed: int = 0) -> Path:
    """Sentences in which men always have the 'male' jobs and women the 'female' ones."""
    rng = random.Random(seed)
    male = [("he", "his")]
    female = [("she", "her")]
    frames = [f"{{s}} {verb} a {{j}} ." for verb in VERBS]
    lines = []
    for _ in range(n):
        if rng.random() < 0.5:
            (s, _p), j = rng.choice(male), rng.choice(MALE_JOBS)
        else:
            (s, _p), j = rng.choice(female), rng.choice(FEMALE_JOBS)
        lines.append(rng.choice(frames).format(s=s, j=j))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
