"""Helpers shared by the tests (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from bench.run import main

BUSI = Path(__file__).resolve().parents[2] / "shared" / "data" / "BUSI"
# the smallest run that still goes through every stage: 64 px, 1 epoch, 2 folds of 16 images
SMOKE = ["--profile", "smoke", "--no-progress", "--test-per-class", "20"]


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (80, 64), mode: str = "L") -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def call_main(capsys, entry, *args: str) -> tuple[int, str, str]:
    """A command's ``main`` as the command line sees it: exit code, stdout and stderr."""
    capsys.readouterr()
    try:
        code = entry(list(args))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """``bench.run.main`` as the command line sees it."""
    return call_main(capsys, main, *args)


def run_cli(*args: str, module: str = "bench.run") -> subprocess.CompletedProcess:
    """A ``python -m`` command in a fresh process (for exit codes and tracebacks as a shell sees)."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=300)
