#!/usr/bin/env bash
# One prepared GPU check for issue 5 (run through the device tool with BUSI carried in .data/BUSI):
#   speed of the naive and our pipeline for the default models, then the full Fus2Net paper protocol.
# Everything it measures lands in $OUT (or results/ when OUT is unset).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results}
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps -e . 2>/dev/null || true
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/device.txt"
python3 -m bench.speed --device cuda --data .data/BUSI --models fus2net,resnet50,inception_v3_ft \
  --steps 60 --warmup 10 --out "$OUT" 2>&1 | tee "$OUT/speed.log"
/usr/bin/time -v python3 -m bench.run --model fus2net --data .data/BUSI --profile paper --device cuda \
  --no-progress --out "$OUT/runs" 2>&1 | tee "$OUT/paper_protocol.log"
