#!/usr/bin/env bash
# Run the test suite on the GPU machine's package versions (torch 2.11.0, torchvision 0.26.0,
# timm 1.0.29; see the device tool's KINDS.md), on this CPU, in a throw-away venv. Not part of CI:
# it downloads about 3.5 GB (torch's CUDA build and its NVIDIA libraries) from PyPI.
#   tools/compat_check.sh [VENV_DIR] [pytest args...]     (default venv: /tmp/fus2bench-compat)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/fus2bench-compat}
shift || true
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.11.0 torchvision==0.26.0 timm==1.0.29
  "$venv/bin/pip" install -q -e ".[dev,lite0]"
fi
"$venv/bin/python" -c "import torch, torchvision, timm; print('torch', torch.__version__, \
'torchvision', torchvision.__version__, 'timm', timm.__version__)"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
