#!/usr/bin/env bash
# Wall time of a 2-model CPU grid on the local executor at one jobs x CPUs layout (docs/cluster.md,
# "Jobs that share a machine"). Run it from a project checkout (the code measured):
#   tools/thread_grid.sh JOBS CPUS_PER_JOB [bench.jobs.suite options...]
# e.g. tools/thread_grid.sh 2 1 --models fus2net,efficientnet_lite0 --profile cpu --epochs 5
# Prints the suite's grid time (its "total" line: the runs only, not the report), the whole
# command's wall time, and the threads each run recorded. Needs an otherwise idle machine; uses a
# fresh results folder each time, and FUS2BENCH_CACHE (default /tmp/fus2bench_grid_cache) so that
# every layout reads the same generated phantom.
set -euo pipefail
JOBS=${1:?JOBS}; CPUS=${2:?CPUS_PER_JOB}; shift 2
PY=${PYTHON:-python3}
export FUS2BENCH_CACHE=${FUS2BENCH_CACHE:-/tmp/fus2bench_grid_cache}
OUT=$(mktemp -d /tmp/thread_grid.XXXXXX)
"$PY" -c "from bench.data.synthetic import ensure_synthetic; ensure_synthetic()" >/dev/null
t0=$(date +%s.%N)
"$PY" -m bench.suite --executor local --jobs "$JOBS" --cpus-per-job "$CPUS" --no-experiments \
  --out "$OUT" "$@" > "$OUT/suite.log" 2>&1 || { tail -20 "$OUT/suite.log"; exit 1; }
t1=$(date +%s.%N)
grid=$(awk '$1 == "total" {print $2}' "$OUT/suite.log")
threads=$("$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
for p in sorted(Path(sys.argv[1], "runs").glob("*/config.json")):
    c = json.loads(p.read_text())
    d = c["device"]
    print(f"{c['settings']['model']}: threads {d.get('threads')}, interop "
          f"{d.get('interop_threads', 'not recorded')}, from {d.get('threads_from', 'not recorded')}, "
          f"run {c['timings']['total_s']} s")
PYEOF
)
echo "jobs $JOBS x cpus-per-job $CPUS: grid ${grid} s, whole command $(echo "$t1 - $t0" | bc) s ($(date -u +%F), $(nproc) CPUs, $(git rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
echo "$threads"
echo "log: $OUT/suite.log"
