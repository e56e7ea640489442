"""Convert PAIR's recorded fill-in-the-blank logits into biasprobe recorded-model folders.

Input: a copy of PAIR's ai-explorables ``fill-in-the-blank`` data (per sentence, the raw MLM
logits at the mask as a gzipped JSON list of 30,522 floats, ``cachekey2filename.js`` mapping
each exact sentence to its file, and the uncased ``vocab.txt``).

Output (package data shipped with biasprobe, usable as ``--model recorded:NAME``):
    biasprobe/data/recorded/bert-large-uncased-whole-word-masking/
    biasprobe/data/recorded/zari-bert-cda/

Usage: python scripts/convert_pair_recordings.py [SRC_DIR]   (default ../shared/data/pair-fill-in-the-blank)
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

import numpy as np

from biasprobe.backends.recorded import builtin_recorded_dir, write_recorded

MODELS = {
    "embed": (
        "bert-large-uncased-whole-word-masking",
        "bert-large-uncased-whole-word-masking (Devlin et al. 2019; Google, Apache-2.0)",
    ),
    "embed_zari_cda": (
        "zari-bert-cda",
        "Zari bert-cda: BERT-Large trained with counterfactual data augmentation "
        "(Webster et al. 2020, 'Measuring and Reducing Gendered Correlations in Pre-trained "
        "Models'; Google, Apache-2.0)",
    ),
}
SOURCE = (
    "Recorded by Google PAIR for the explorable 'What Have Language Models Learned?' "
    "(github.com/PAIR-code/ai-explorables, fill-in-the-blank data, commit 64ac8eb): raw MLM "
    "logits at the [MASK] position."
)
LICENSE = "Apache-2.0 (PAIR-code/ai-explorables)"


def main(src: Path) -> None:
    text = (src / "cachekey2filename.js").read_text(encoding="utf-8")
    entries = re.findall(r"'\{\"sentence\":\"(.*?)\"\}(\w+)':\s*'([^']+)'", text)
    vocab = (src / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if vocab[-1] == "":
        vocab.pop()
    by_model: dict[str, list[tuple[str, np.ndarray]]] = {}
    for sentence, key, filename in entries:
        path = src / (filename + ".gz")
        if key not in MODELS or not path.is_file():
            continue
        with gzip.open(path, "rt", encoding="utf-8") as f:
            logits = np.asarray(json.load(f), dtype=np.float32)
        assert logits.shape == (len(vocab),), (path, logits.shape)
        by_model.setdefault(key, []).append((sentence, logits))
    root = builtin_recorded_dir()
    for key, rows in by_model.items():
        name, model = MODELS[key]
        rows.sort()
        out = write_recorded(
            root / name,
            model=model,
            sentences=[s for s, _ in rows],
            logprobs=np.stack([v for _, v in rows]),
            vocab=vocab,
            mask_token="[MASK]",
            source=SOURCE,
            license=LICENSE,
            tokenizer={"type": "wordpiece", "do_lower_case": True},
            values="logits",
            card_text=(
                "These are real outputs of a real model, recorded once and replayed: no model "
                "runs when biasprobe scores them. Log-probabilities are "
                "`logits - logsumexp(logits)`. Only the sentences listed below are available."
            ),
        )
        print(f"wrote {out} ({len(rows)} sentences)")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "pair-fill-in-the-blank"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
