#!/usr/bin/env bash
# The committed real runs on ../shared/data/mal, end to end (CPU, ~2 h on 2 cores).
# Data products go to out/mal (ignored by git: they are cut from the shared data);
# models to out/models; the evaluation tables/plots to eval/results/mal-shared.
#   bash eval/run_mal.sh [prepare|finetune|embed|evaluate|all]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
M=${ANIREC_MODELS:-$HOME/.cache/anirec/models}
D=out/mal
step=${1:-all}
mkdir -p "$D" out/logs

if [[ $step == prepare || $step == all ]]; then
  anirec build --data ../shared/data/mal --out $D/catalog.parquet --tokenizer "$M/all-MiniLM-L6-v2"
  # Cold-start anime: never in a training pair, never seen by CF (same seed as evaluate).
  anirec cold-anime --catalog $D/catalog.parquet --ratings ../shared/data/mal --out $D/cold_anime.txt
  # Reference labels (defaults: q=0.9, support 50, +-0.7), split saved for the evaluation.
  anirec pairs --ratings ../shared/data/mal --catalog $D/catalog.parquet --out $D/pairs.parquet \
    --exclude-anime $D/cold_anime.txt
  # CPU budget: 3,000 pairs balanced by sign (the reference trained on 3,558, 60% positive).
  anirec pairs --ratings ../shared/data/mal --catalog $D/catalog.parquet --out $D/pairs-3k.parquet \
    --exclude-anime $D/cold_anime.txt --split $D/pairs.split.parquet --max-pairs 3000
fi

if [[ $step == finetune || $step == all ]]; then
  common=(--catalog $D/catalog.parquet --pairs $D/pairs-3k.parquet --no-progress)
  for loss in cosine cosent; do
    [[ -f out/models/minilm-256-$loss/scores.json ]] || \
      anirec finetune --config finetune/minilm-256.toml "${common[@]}" --loss $loss \
        --out out/models/minilm-256-$loss --resume 2>&1 | tee out/logs/minilm-256-$loss.log
  done
  # mpnet is ~4-5x slower per step on CPU: 320 training pairs (20 steps) at 256 tokens.
  for loss in ${MPNET_LOSSES:-cosine cosent}; do
    [[ -f out/models/mpnet-256-$loss/scores.json ]] || \
      anirec finetune --config finetune/mpnet-384.toml "${common[@]}" --loss $loss --max-seq-length 256 \
        --max-train-pairs 320 --out out/models/mpnet-256-$loss --resume 2>&1 | tee out/logs/mpnet-256-$loss.log
  done
  python finetune/results/collect.py out/models/{minilm,mpnet}-256-{cosine,cosent}
fi

if [[ $step == evaluate || $step == all ]]; then
  anirec evaluate --config eval/mal-shared.toml 2>&1 | tee out/logs/evaluate.log
fi
