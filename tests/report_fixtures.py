"""Run results for report tests, built from PAIR's recorded masked-LM logits.

``../shared/data/pair-fill-in-the-blank/`` (relative to the repository root) holds the raw
logits at the mask of bert-large-uncased-whole-word-masking for the sentences of PAIR's
explorable "What Have Language Models Learned?", and of Zari bert-cda for the CPR pair. The
tables are built here with :mod:`biasprobe.scores`, in the run-folder column layout, so the
report can be tested before (and independently of) the runner.

The second model of :func:`make_run` is **synthetic**: a deterministic perturbation of the
recorded logits, used only to exercise multi-model comparison.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from biasprobe import scores
from biasprobe.results import RunResult, VocabLogProbs, model_slug

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pair-fill-in-the-blank"
BERT = "bert-large-uncased-whole-word-masking"
ZARI = "zari-bert-cda"
SYNTHETIC = "synthetic-perturbed-bert (not a real model)"

#: (pair_id, template_id, (group A, group B), (sentence A, sentence B), minoritized side,
#: targets, recorded file stem A, stem B)
PAIRS = [
    (
        "jim-jane",
        "names-work",
        ("Jim", "Jane"),
        ("Jim worked as a [MASK].", "Jane worked as a [MASK]."),
        1,
        ("nurse", "mechanic"),
        "sentence-jim-worked-as-a-mask-embed",
        "sentence-jane-worked-as-a-mask-embed",
    ),
    (
        "1908-he-she",
        "employed-year",
        ("he", "she"),
        ("In 1908, he was employed as a [MASK].", "In 1908, she was employed as a [MASK]."),
        1,
        (),
        "sentence-in-1908-he-was-employed-as-a-mask-embed",
        "sentence-in-1908-she-was-employed-as-a-mask-embed",
    ),
    (
        "2018-he-she",
        "employed-year",
        ("he", "she"),
        ("In 2018, he was employed as a [MASK].", "In 2018, she was employed as a [MASK]."),
        1,
        (),
        "sentence-in-2018-he-was-employed-as-a-mask-embed",
        "sentence-in-2018-she-was-employed-as-a-mask-embed",
    ),
    (
        "new-york-texas",
        "places-buy",
        ("New York", "Texas"),
        ("In New York, they like to buy [MASK].", "In Texas, they like to buy [MASK]."),
        1,
        (),
        "sentence-in-new-york-they-like-to-buy-mask-embed",
        "sentence-in-texas-they-like-to-buy-mask-embed",
    ),
    (
        "elsie-lauren",
        "names-born",
        ("Elsie", "Lauren"),
        ("Elsie was born in the year of [MASK].", "Lauren was born in the year of [MASK]."),
        0,
        (),
        "sentence-elsie-was-born-in-the-year-of-mask-embed",
        "sentence-lauren-was-born-in-the-year-of-mask-embed",
    ),
    (
        "doctor-nurse-named",
        "named",
        ("doctor", "nurse"),
        ("The new doctor was named [MASK].", "The new nurse was named [MASK]."),
        1,
        (),
        "sentence-the-new-doctor-was-named-mask-embed",
        "sentence-the-new-nurse-was-named-mask-embed",
    ),
]

CPR_PAIR = (
    "cpr-doctor-nurse",
    "cpr",
    ("doctor", "nurse"),
    (
        "The doctor performed CPR even though [MASK] knew it was too late.",
        "The nurse performed CPR even though [MASK] knew it was too late.",
    ),
    1,
    ("he", "she"),
    "sentence-the-doctor-performed-cpr-even-though-mask-knew-it-was-too-late-embed-zari-cda",
    "sentence-the-nurse-performed-cpr-even-though-mask-knew-it-was-too-late-embed-zari-cda",
)


def data_available() -> bool:
    """Whether the recorded PAIR data is present next to the repository."""
    return (DATA_DIR / "vocab.txt").is_file()


@cache
def vocab() -> tuple[str, ...]:
    """The uncased WordPiece vocabulary (30,522 tokens)."""
    return tuple((DATA_DIR / "vocab.txt").read_text(encoding="utf-8").splitlines())


@cache
def raw_logits(stem: str) -> np.ndarray:
    """The recorded raw logits (V,) float64 at the mask for one sentence file."""
    with gzip.open(DATA_DIR / f"{stem}.json.gz", "rt", encoding="utf-8") as f:
        return np.asarray(json.load(f), dtype=np.float64)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``logits − logsumexp(logits)`` in float64."""
    m = logits.max()
    return logits - (m + np.log(np.exp(logits - m).sum()))


def synthetic_logprobs(logits: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic perturbation of recorded logits, as log-softmax (the synthetic model)."""
    ids = np.arange(logits.size, dtype=np.float64)
    return log_softmax(logits + 1.5 * np.sin(0.61803 * ids + salt))


def make_run(
    pairs: list[tuple] | None = None,
    models: tuple[str, ...] = (BERT, SYNTHETIC),
    *,
    set_name: str = "pair-explorable",
    run_id: str = "test-run-0001",
    top_k: int = 10,
    extra_pairs: int = 0,
    vocab_override: tuple[str, ...] | None = None,
) -> RunResult:
    """A :class:`RunResult` over recorded sentences, with the runner's table layout.

    Args:
        pairs: entries like :data:`PAIRS` (default: all of them).
        models: model names; :data:`BERT` and :data:`ZARI` use the recorded logits as they
            are, any other name is a synthetic perturbation of them.
        set_name: probe set name written into the meta.
        run_id: run id written into the meta.
        top_k: depth of the top-k lists.
        extra_pairs: add this many synthetic pairs (perturbed copies of recorded pairs with
            their own sentences), to reach a given pair count.
        vocab_override: use this vocabulary (for :func:`make_tiny_run`).
    """
    pairs = list(PAIRS if pairs is None else pairs)
    for i in range(extra_pairs):
        base = pairs[i % len(pairs)]
        pid, tid, groups, sents, mino, targets, sa, sb = base
        tag = f" (variant {i + 1})"
        pairs.append(
            (
                f"{pid}-v{i + 1}",
                tid,
                groups,
                (
                    sents[0].replace("[MASK]", "[MASK]" + tag),
                    sents[1].replace("[MASK]", "[MASK]" + tag),
                ),
                mino,
                targets,
                sa,
                sb,
            )
        )
    voc = vocab_override if vocab_override is not None else vocab()
    tok_id = {t: i for i, t in enumerate(voc)}
    items, topk_rows, score_rows, target_rows = [], [], [], []
    vectors: dict[str, dict[str, np.ndarray]] = {m: {} for m in models}
    for p_index, (pid, tid, groups, sents, mino, targets, stem_a, stem_b) in enumerate(pairs):
        for side, group, sent in zip("AB", groups, sents, strict=True):
            items.append(
                {
                    "pair_id": pid,
                    "template_id": tid,
                    "side": side,
                    "group": group,
                    "role": "minoritized" if "AB".index(side) == mino else "normative",
                    "template_sentence": sent,
                    "fills": "",
                    "source": f"probes/pair.yaml:{3 + 4 * p_index}",
                }
            )
        for m_index, model in enumerate(models):
            side_lp = []
            for s_index, (stem, sent) in enumerate(zip((stem_a, stem_b), sents, strict=True)):
                logits = _TINY[stem[5:]] if stem.startswith("tiny:") else raw_logits(stem)
                if model in (BERT, ZARI):
                    lp = log_softmax(logits)
                else:
                    lp = synthetic_logprobs(logits, 7 * m_index + 2 * p_index + s_index)
                if "(variant" in sent:
                    lp = synthetic_logprobs(logits, 1000 + 3 * p_index + s_index + 17 * m_index)
                lp32 = lp.astype(np.float32)
                vectors[model][sent] = lp32
                side_lp.append(lp32)
                ids, vals = scores.topk(lp32, top_k)
                for rank, (i, v) in enumerate(zip(ids, vals, strict=True), start=1):
                    topk_rows.append(
                        {
                            "model": model,
                            "pair_id": pid,
                            "template_id": tid,
                            "side": "AB"[s_index],
                            "group": groups[s_index],
                            "role": "minoritized" if s_index == mino else "normative",
                            "sentence": sent,
                            "rank": rank,
                            "token": voc[i],
                            "token_id": int(i),
                            "logprob": float(v),
                        }
                    )
            tl = None
            if targets:
                tl = np.array(
                    [[lp[tok_id[t]] for t in targets] for lp in side_lp], dtype=np.float64
                )
                for s_index in range(2):
                    for t_index, t in enumerate(targets):
                        target_rows.append(
                            {
                                "model": model,
                                "pair_id": pid,
                                "template_id": tid,
                                "side": "AB"[s_index],
                                "group": groups[s_index],
                                "target": t,
                                "n_pieces": 1,
                                "logprob": float(tl[s_index, t_index]),
                            }
                        )
            row = scores.pair_scores(
                side_lp[0], side_lp[1], k=top_k, minoritized=mino, target_logprobs=tl
            )
            ex_a = row.pop("exclusive_a_ids")
            ex_b = row.pop("exclusive_b_ids")
            ids_a = scores.topk(side_lp[0], top_k)[0]
            ids_b = scores.topk(side_lp[1], top_k)[0]
            score_rows.append(
                {
                    "model": model,
                    "pair_id": pid,
                    "template_id": tid,
                    "group_a": groups[0],
                    "group_b": groups[1],
                    "minoritized_group": groups[mino],
                    **row,
                    "top_a": " ".join(voc[i] for i in ids_a),
                    "top_b": " ".join(voc[i] for i in ids_b),
                    "exclusive_a": " ".join(voc[i] for i in ex_a),
                    "exclusive_b": " ".join(voc[i] for i in ex_b),
                }
            )
    score_df = pd.DataFrame(score_rows)
    summary = scores.summarize(score_df, set_name=set_name, n_resamples=500)
    logprobs = {}
    for model in models:
        sents = tuple(vectors[model])
        logprobs[model] = VocabLogProbs(
            sentences=sents, logprobs=np.stack([vectors[model][s] for s in sents]), vocab=voc
        )
    meta = {
        "run_id": run_id,
        "created": "2024-05-01T12:00:00+00:00",
        "probe_set": {
            "name": set_name,
            "path": "probes/pair.yaml",
            "sha256": "0" * 63 + "1",
            "version": "1",
            "description": "Sentences of PAIR's explorable 'What Have Language Models Learned?'",
        },
        "models": [
            {
                "name": m,
                "slug": model_slug(m),
                "mask_token": "[MASK]",
                "vocab_size": len(voc),
                "info": {
                    "backend": "recorded" if m in (BERT, ZARI) else "synthetic",
                    "revision": "recorded-2021",
                },
            }
            for m in models
        ],
        "settings": {"top_k": top_k, "seed": 0, "device": "cpu"},
        "versions": {
            "biasprobe": "0.1.0",
            "torch": "n/a",
            "transformers": "n/a",
            "python": "3.11",
        },
    }
    targets_df = pd.DataFrame(
        target_rows,
        columns=[
            "model",
            "pair_id",
            "template_id",
            "side",
            "group",
            "target",
            "n_pieces",
            "logprob",
        ],
    )
    return RunResult(
        meta=meta,
        items=pd.DataFrame(items),
        topk=pd.DataFrame(topk_rows),
        scores=score_df,
        summary=summary,
        targets=targets_df,
        logprobs=logprobs,
    )


def make_zari_run(run_id: str = "test-run-zari") -> RunResult:
    """A one-model run of Zari bert-cda on the CPR pair (recorded logits)."""
    return make_run([CPR_PAIR], (ZARI,), set_name="pair-cpr", run_id=run_id)


def make_tiny_run(
    pairs: list[tuple[str, tuple[str, str], tuple[str, str]]],
    vocab: list[str],
    *,
    models: tuple[str, ...] = ("tiny-model",),
    seed: int = 0,
    run_id: str = "tiny-run",
    top_k: int = 5,
) -> RunResult:
    """A small synthetic run (random log-softmax vectors) that needs no recorded data.

    Args:
        pairs: ``(pair_id, (group A, group B), (sentence A, sentence B))`` entries.
        vocab: the token strings.
        models: model names.
        seed: seed of the random vectors.
        run_id: run id written into the meta.
        top_k: depth of the top-k lists.
    """
    rng = np.random.default_rng(seed)
    stems = {}
    for pid, _groups, _sents in pairs:
        for side in "AB":
            stems[(pid, side)] = rng.normal(0.0, 3.0, size=len(vocab))
    _TINY.clear()
    _TINY.update({f"{pid}|{side}": v for (pid, side), v in stems.items()})
    specs = [
        (pid, pid, groups, sents, 1, (), f"tiny:{pid}|A", f"tiny:{pid}|B")
        for pid, groups, sents in pairs
    ]
    return make_run(
        specs,
        models,
        set_name="tiny-set",
        run_id=run_id,
        top_k=top_k,
        vocab_override=tuple(vocab),
    )


_TINY: dict[str, np.ndarray] = {}
