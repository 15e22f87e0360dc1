#!/usr/bin/env bash
# CF-neighbour pairs (issue 10) for the shared rating sets, from a fresh checkout:
#   out/mal/catalog.parquet                 the shared catalog (both rating sets use it)
#   out/{mal,mal-2016,both}/cold_anime.txt  cold-start anime of THOSE ratings (seed 42, as `evaluate`)
#   out/{mal,mal-2016,both}/cf-pairs.parquet     top-10 item-kNN neighbours, >= 3 co-promoters, no cold anime
#       (+ cf-pairs.split.parquet: the split they came from; pass it to `evaluate --split` so the
#        holdout protects the rows the pairs were mined from)
#   out/{mal,mal-2016,both}/cf-pairs-hn.parquet  the same positives (same split) + 2 hard negatives per anime
# Everything goes to out/ (ignored by git: cut from the shared data). About a minute on 2 cores.
#   bash eval/make_cf_pairs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
DATA=${ANIREC_SHARED_DATA:-../shared/data}
CATALOG=out/mal/catalog.parquet
mkdir -p out/mal out/mal-2016 out/both out/logs

[[ -f $CATALOG ]] || anirec build --data "$DATA/mal" --out $CATALOG

for set in mal mal-2016 both; do
  if [[ $set == both ]]; then
    ratings=(--ratings "$DATA/mal" --ratings "$DATA/mal-2016")
  else
    ratings=(--ratings "$DATA/$set")
  fi
  D=out/$set
  # The cold list depends on the ratings given, so each set gets its own, made exactly as
  # eval/run_mal.sh makes out/mal/cold_anime.txt (same command, same default seed and fraction).
  anirec cold-anime --catalog $CATALOG "${ratings[@]}" --out $D/cold_anime.txt
  anirec pairs --label cf "${ratings[@]}" --catalog $CATALOG --out $D/cf-pairs.parquet \
    --exclude-anime $D/cold_anime.txt 2>&1 | tee out/logs/cf-pairs-$set.log
  anirec pairs --label cf "${ratings[@]}" --catalog $CATALOG --out $D/cf-pairs-hn.parquet \
    --exclude-anime $D/cold_anime.txt --split $D/cf-pairs.split.parquet --hard-negatives 2 \
    2>&1 | tee out/logs/cf-pairs-hn-$set.log
done
grep -H "^covered\|^pairs " out/logs/cf-pairs-*.log
