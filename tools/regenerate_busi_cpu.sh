#!/usr/bin/env bash
# Regenerate the committed BUSI results set (results/busi-cpu) from scratch at the cpu profile:
# every comparison model at seeds 0,1,2 (byra_vgg19_ml, about 75 min per seed on 2 cores,
# included), the paper's Fus2Net experiments at seeds 0,1, explanations, annotation reliance and
# the Fig. 5/6 illustrations, the default CPU models trained on cleaned images too, external
# scores on BrEaST (found beside DATA; EXTERNAL overrides the sets) and on the phantom's site B,
# then the report; the all-image evaluation of six models; the site-gap set
# (tools/site_table_cpu.sh). Every step reuses finished runs, so rerunning the script resumes it.
#
#   tools/regenerate_busi_cpu.sh [DATA]      DATA: the BUSI root (default ../shared/data/BUSI)
#
# A dry run of the whole recipe outside the committed set (56 runs at the smoke profile: under an
# hour on 2 cores, 2026-11-30):
#   PROFILE=smoke OUT=/tmp/preview tools/regenerate_busi_cpu.sh
#
# Run it from a clean checkout (the report warns about runs from a dirty tree), on one machine
# at a time; it prints each step's start time and keeps going past a failed step, then says which
# failed. Weights are never committed (.gitignore keeps *.safetensors under results/ out).
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/BUSI}
OUT=${OUT:-results/busi-cpu}
PROFILE=${PROFILE:-cpu}
PY=${PYTHON:-python}
failed=()
step() {
  echo "== $(date -u +%FT%TZ) $*"
  "$@" || failed+=("$*")
}
if [ -n "$(git status --porcelain --untracked-files=no -- . ':(exclude)results')" ]; then
  echo "regenerate_busi_cpu.sh: the checkout has uncommitted changes; commit or stash them first" >&2
  exit 2
fi
# runs of another training-code version (the previously committed set) leave the set: the report
# must come from one code version; git keeps them
PYTHONPATH=. "$PY" tools/drop_other_code_runs.py "$OUT/runs"
# external sets: BrEaST beside the data (when there) and the phantom's second site, scored by every
# run before the explanations and the reliance measures, which cover each run's external sets
if [ -z "${EXTERNAL:-}" ]; then
  EXTERNAL=synthetic:B
  BREAST="$(dirname "$DATA")/BrEaST"
  [ -d "$BREAST" ] && EXTERNAL="$BREAST,$EXTERNAL"
fi
step "$PY" -m bench.suite --data "$DATA" --profile "$PROFILE" --seeds 0,1,2 --experiments on \
  --experiment-seeds 0,1 --models all --external "$EXTERNAL" --out "$OUT"
# every usable image scored once (grouped 5-fold CV over same-lesion groups, docs/protocol.md,
# "Every image scored once"): the four CPU-default models, resnet50 and convnext_tiny. The
# experiments stay on so that Fus2Net keeps their CV folds: the held-out runs above (and the
# experiments) are reused, none is trained again under other folds
step "$PY" -m bench.suite --data "$DATA" --profile "$PROFILE" --seeds 0,1,2 --experiments on \
  --experiment-seeds 0,1 \
  --models fus2net,zeimarani_cnn,efficientnet_lite0,googlenet_fujioka,resnet50,convnext_tiny \
  --evaluation heldout,allcv --external "$EXTERNAL" --out "$OUT"
# cleaned images; Fus2Net with the CV folds its reference run has (the experiments' 2), so that
# its cleaned row differs from the reference in the images only
for model in fus2net zeimarani_cnn efficientnet_lite0 googlenet_fujioka; do
  folds=()
  [ "$model" = fus2net ] && folds=(--folds 2)
  for seed in 0 1 2; do
    step "$PY" -m bench.run --model "$model" --data "$DATA" --profile "$PROFILE" --seed "$seed" \
      --annotations clean "${folds[@]}" --external "$EXTERNAL" --out "$OUT/runs" --no-progress
  done
done
# the suite explained and measured its comparison runs; these add the cleaned-image runs (finished
# explanations and measures are reused); the insertion test with its same-class and random-shape
# controls for every run
step "$PY" -m bench.explain --runs "$OUT/runs" --data "$DATA"
step "$PY" -m bench.reliance --runs "$OUT/runs" --controls
step "$PY" -m bench.report --runs "$OUT/runs" --out "$OUT"
# the site-gap set on the same code (results/sitegap-cpu: BUSI ↔ BrEaST with and without each
# lever, the phantom's site A → B), when BrEaST is beside the data
[ -d "$(dirname "$DATA")/BrEaST" ] && [ "$OUT" = results/busi-cpu ] && \
  step tools/site_table_cpu.sh "$DATA" "$(dirname "$DATA")/BrEaST"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed step: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "== $(date -u +%FT%TZ) done: $OUT"
