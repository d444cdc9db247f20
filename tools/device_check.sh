#!/usr/bin/env bash
# One prepared GPU check for issue 5 (run through the device tool with BUSI carried in .data/BUSI):
#   1. bench.speed: naive pipeline vs reference engine vs stacked engine (11 models at once);
#   2. the full Fus2Net paper protocol (10 folds x 53 epochs + final fit, 299 px) with the stacked
#      engine (the CUDA default), timed;
#   3. the same protocol with the reference engine (--concurrent-folds 1), timed;
#   4. both runs' fold AUCs side by side (fast path vs reference, same seed).
# Everything it measures lands in $OUT (or results/device when OUT is unset).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/device}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps -e . 2>/dev/null || true
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/device.txt"
python3 -m bench.speed --device cuda --data .data/BUSI --models fus2net,resnet50,inception_v3_ft \
  --steps 30 --warmup 5 --out "$OUT" 2>&1 | tee "$OUT/speed.log"
for engine in auto 1; do
  /usr/bin/time -f "wall %e s, max RSS %M kB" python3 -m bench.run --model fus2net --data .data/BUSI \
    --profile paper --device cuda --concurrent-folds "$engine" --no-progress --out "$OUT/runs" \
    2>&1 | tee "$OUT/paper_protocol_concurrent_$engine.log"
done
python3 tools/compare_engines.py "$OUT/runs" "$OUT/fold_auc_comparison.md"
