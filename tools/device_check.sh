#!/usr/bin/env bash
# One prepared GPU check (run through the device tool with BUSI carried in .data/BUSI):
#   1. bench.engine.speed: naive pipeline vs reference engine vs stacked engine (4 and 11 models at once);
#   2. the full Fus2Net paper protocol (10 folds x 53 epochs + final fit, 299 px) with the stacked
#      engine (the CUDA default), timed;
#   3. the same protocol with the reference engine (--concurrent-folds 1), timed;
#   4. both runs' fold AUCs side by side (fast path vs reference, same seed).
# The device tool brings back at most 8 files from $OUT, no more than 2 folders down, so the run
# folders are written outside $OUT and only their small files come back, in one archive:
#   check.log  speed.csv  speed.md  fold_auc_comparison.md  runs.tar.gz
# Through the device tool, from the repo root: once `mkdir -p .data && cp -r ../shared/data/BUSI
# .data/` (45 MB; .data/ is git-ignored), then run command "tools/device_check.sh", carry [".data"],
# timeout_s 600 (the tool sets OUT). Expected on an H100/H200: speed about 1-2 min, stacked protocol
# about 1-2 min, reference protocol about 3-4 min at 2,200 img/s (estimates, never measured yet).
# Usage: OUT=DIR tools/device_check.sh [STEP ...]   (steps: speed stacked reference compare;
# default all four, in that order; each step's files are in $OUT as soon as it ends).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/device}
RUNS=${RUNS:-/tmp/fus2bench-device-runs}
DATA=${DATA:-.data/BUSI}
DEVICE=${DEVICE:-cuda}      # DEVICE=cpu PROFILE=smoke: a dry run of this script on a CPU
PROFILE=${PROFILE:-paper}
SPEED_ARGS=${SPEED_ARGS:---steps 30 --warmup 5 --members 4,11}  # dry run: SPEED_ARGS="--img-size 64 --steps 2 --warmup 1"
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1
[ $# -eq 0 ] && set -- speed stacked reference compare
log="$OUT/check.log"

pack() {  # the runs' configs, metrics and predictions (never weights) into $OUT/runs.tar.gz
  (cd "$RUNS" && find . -type f \( -name '*.json' -o -name '*.csv' \) -print0 \
    | tar --null -czf - -T -) >"$OUT/runs.tar.gz.tmp" && mv "$OUT/runs.tar.gz.tmp" "$OUT/runs.tar.gz"
}

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo 'no nvidia-smi'
  python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
} 2>&1 | tee "$log"

run_step() {  # one step; its status is that of its pipeline
  case $1 in
    speed)
      python3 -m bench.speed --device "$DEVICE" --data "$DATA" \
        --models fus2net,resnet50,inception_v3_ft $SPEED_ARGS --out "$OUT" 2>&1 | tee -a "$log" ;;
    stacked|reference)
      local folds=11  # 10 CV folds + the final fit
      [ "$1" = reference ] && folds=1
      local t0=$SECONDS
      python3 -m bench.run --model fus2net --data "$DATA" --profile "$PROFILE" --device "$DEVICE" \
        --concurrent-folds "$folds" --no-progress --out "$RUNS" 2>&1 | tee -a "$log"
      local status=$?
      echo "$1 engine: wall $((SECONDS - t0)) s (exit $status)" | tee -a "$log"
      return "$status" ;;
    compare)
      python3 tools/compare_engines.py "$RUNS" "$OUT/fold_auc_comparison.md" 2>&1 | tee -a "$log" ;;
    *)
      echo "unknown step '$1' (expected: speed stacked reference compare)" | tee -a "$log"
      return 2 ;;
  esac
}

failed=()
for step in "$@"; do
  echo "== $step ($(date -u +%T))" | tee -a "$log"
  run_step "$step" || failed+=("$step")  # a failed step does not stop the later ones
  pack  # after every step: a command killed at its time limit runs no exit trap
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed steps: ${failed[*]}" | tee -a "$log"
  exit 1
fi
