#!/usr/bin/env bash
# Every GPU check in one go, for a short lease on a GPU machine (see docs/benchmarks.md):
# the card, the E5 API/exactness tests on CUDA, the encoding benchmark, the training benchmark.
# Usage (repo root, torch+transformers+sentence-transformers installed): OUT=/tmp/gpu bash benchmarks/gpu_all.sh
set -u
OUT=${OUT:-/tmp/e5kit-gpu}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=true
PY=${PY:-python3}
start=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers, sentence_transformers as st; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'sentence-transformers', st.__version__)" | tee -a "$OUT/gpu.txt"
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_embedder.py tests/model/test_exactness.py \
  tests/encode -k "not minilm" 2>&1 | tail -25 > "$OUT/tests.txt"
echo "tests: $(tail -1 "$OUT/tests.txt")  ($(( $(date +%s) - start )) s)"
timeout 240 $PY benchmarks/gpu_encode.py --out "$OUT/encode" --budget-s 170 > "$OUT/encode.log" 2>&1
echo "encode rc=$? ($(( $(date +%s) - start )) s)"; tail -30 "$OUT/encode.log"
timeout 180 $PY benchmarks/gpu_train.py --out "$OUT/train" --budget-s 110 > "$OUT/train.log" 2>&1
echo "train rc=$? ($(( $(date +%s) - start )) s)"; tail -40 "$OUT/train.log"
