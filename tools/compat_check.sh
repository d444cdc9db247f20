#!/usr/bin/env bash
# The test suite on the GPU machine's stack (Python 3.12, torch 2.11.0, torchvision 0.26.0,
# timm 1.0.29, numpy 2.5.2, safetensors 0.8.0, no lite0 weights package; see the device tool's
# KINDS.md), on this CPU, in a throw-away venv. Not part of CI: it downloads about 3.5 GB (torch's
# CUDA build and its NVIDIA libraries) from PyPI.
#   tools/compat_check.sh [VENV_DIR] [pytest args...]     (default venv: /tmp/fus2bench-compat)
# PYTHON=... picks the interpreter (default: python3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/fus2bench-compat}
shift || true
pick_python() {  # $PYTHON, else python3.12 on PATH, else pyenv's 3.12
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  if python3.12 -c "" 2>/dev/null; then echo python3.12; return; fi
  for p in "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.12*/bin/python; do
    if [ -x "$p" ]; then echo "$p"; return; fi
  done
  echo "no Python 3.12 found: set PYTHON=/path/to/python3.12" >&2
  exit 2
}
if [ ! -x "$venv/bin/python" ]; then
  python=$(pick_python)
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.11.0 torchvision==0.26.0 timm==1.0.29 numpy==2.5.2 \
    safetensors==0.8.0
  "$venv/bin/pip" install -q -e ".[dev]"
fi
"$venv/bin/python" -c "import sys, numpy, torch, torchvision, timm; print('python', \
sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, \
'timm', timm.__version__, 'numpy', numpy.__version__)"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
