#!/usr/bin/env bash
# Every CPU-speed figure issue 18 asks for on the machine at hand, in one go, for docs/benchmarks.md's table of
# this CPU kind: the CPU and its flags, which attention kernels run, the full side-by-side bench with quality,
# and the attention kernels against torch's path. ~20 min on a 2-core VM; keep the machine quiet meanwhile.
# Usage (repo root, after `make install` and `make st-env`): OUT=/tmp/cpu bash benchmarks/cpu_kind_all.sh
set -u
OUT=${OUT:-/tmp/e5kit-cpu}
DATA=${DATA:-../shared/data}
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}
start=$(date +%s)
{ lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core"; lscpu | grep -o 'amx[a-z0-9_]*\|avx512_bf16\|avx512_vnni\|avx512f\|avx2' \
  | sort -u | tr '\n' ' '; echo; uptime; } | tee "$OUT/cpu.txt"
$PY -c "from e5kit.bench.encode import native_attention_line; import torch; \
print('native attention:', native_attention_line(torch.device('cpu')))" | tee -a "$OUT/cpu.txt"
$PY -m e5kit bench --size both --data "$DATA" --quality --quality-docs 500 --reps 3 --out "$OUT/bench" \
  > "$OUT/bench.log" 2>&1
echo "bench rc=$? ($(( $(date +%s) - start )) s)"; grep -A14 "^| runner" "$OUT/bench/bench.md" | head -40
$PY benchmarks/bench_attention.py > "$OUT/attention.md" 2>&1
echo "attention rc=$? ($(( $(date +%s) - start )) s)"; cat "$OUT/attention.md"
