#!/usr/bin/env bash
# The committed site-gap set (results/sitegap-cpu; docs/protocol.md, "Closing the site gap") at the
# cpu profile: the four CPU-default models trained on BUSI and on BrEaST-Lesions_USG, each scored
# on the other site whole, with and without each lever, three seeds; efficientnet_lite0 (ImageNet
# weights from its pip package) at 224 px beside its 64 px baseline; the phantom's site A → site B.
#
#   tools/site_table_cpu.sh [BUSI] [BREAST]   (defaults ../shared/data/BUSI, ../shared/data/BrEaST)
#
# Levers: --augment ultrasound (a training setting: its own runs) and --adapt-bn target (BatchNorm
# re-estimated on the unlabelled target images) with its control --adapt-bn source (scoring
# settings: every run scores its target three ways). Rows are trained in the order of what the
# table needs most, so a stopped script leaves the most useful part; every step reuses finished
# runs (rerunning resumes). Then the report of the set (its "Closing the site gap" section).
#
# PHASES=A,B,... runs a subset (A: BUSI paper; B: BrEaST paper; C: Lite0 224 px seed 0 on BUSI
# and on BrEaST; D: BUSI ultrasound; E: BrEaST ultrasound; G: the other Lite0 224 px seeds;
# F: phantom A → B, last: the column that matters least; R: the set's tables, figure and README,
# python -m bench.sitegap). SEEDS overrides 0,1,2. Run it from a clean checkout, one machine at a
# time.
set -uo pipefail
cd "$(dirname "$0")/.."
BUSI=${1:-../shared/data/BUSI}
BREAST=${2:-../shared/data/BrEaST}
OUT=${OUT:-results/sitegap-cpu}
SEEDS=${SEEDS:-0 1 2}
PHASES=${PHASES:-A,B,C,D,E,F,G,R}
PY=${PYTHON:-python}
MODELS="fus2net zeimarani_cnn efficientnet_lite0 googlenet_fujioka"
ADAPT=none,target,source
failed=()
step() {
  echo "== $(date -u +%FT%TZ) $*"
  "$@" || failed+=("$*")
}
want() { [[ ",$PHASES," == *",$1,"* ]]; }
if [ -n "$(git status --porcelain --untracked-files=no -- . ':(exclude)results')" ]; then
  echo "site_table_cpu.sh: the checkout has uncommitted changes; commit or stash them first" >&2
  exit 2
fi
# runs of another training-code version leave the set: its table comes from one code version
PYTHONPATH=. "$PY" tools/drop_other_code_runs.py "$OUT/runs"
train() {  # train DATA EXTERNAL MODEL SEED [bench.run options]
  local data=$1 ext=$2 model=$3 seed=$4
  shift 4
  step "$PY" -m bench.run --model "$model" --data "$data" --profile cpu --seed "$seed" \
    --external "$ext" --adapt-bn "$ADAPT" --out "$OUT/runs" --no-progress "$@"
}
want A && for seed in $SEEDS; do for m in $MODELS; do train "$BUSI" "$BREAST" "$m" "$seed"; done; done
want B && for seed in $SEEDS; do for m in $MODELS; do train "$BREAST" "$BUSI" "$m" "$seed"; done; done
want C && {
  train "$BUSI" "$BREAST" efficientnet_lite0 0 --img-size 224
  train "$BREAST" "$BUSI" efficientnet_lite0 0 --img-size 224
}
want D && for seed in $SEEDS; do for m in $MODELS; do
  train "$BUSI" "$BREAST" "$m" "$seed" --augment ultrasound; done; done
want E && for seed in $SEEDS; do for m in $MODELS; do
  train "$BREAST" "$BUSI" "$m" "$seed" --augment ultrasound; done; done
want G && {
  for seed in $SEEDS; do
    [ "$seed" = 0 ] && continue
    train "$BUSI" "$BREAST" efficientnet_lite0 "$seed" --img-size 224
    train "$BREAST" "$BUSI" efficientnet_lite0 "$seed" --img-size 224
  done
}
want F && for seed in $SEEDS; do for m in $MODELS; do
  for policy in paper ultrasound; do
    step "$PY" -m bench.run --model "$m" --profile cpu --seed "$seed" --augment "$policy" \
      --external synthetic:B --adapt-bn "$ADAPT" --out "$OUT/runs" --no-progress
  done; done; done
want R && step "$PY" -m bench.sitegap --runs "$OUT/runs" --out "$OUT"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed step: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "== $(date -u +%FT%TZ) done: $OUT"
