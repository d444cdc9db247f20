"""The project's locations: the checkout's root and the committed data files inside it.

The one module that knows where the checkout is. Library code never writes here by default:
commands choose output folders and pass them in.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATASETS_DIR = PROJECT_ROOT / "datasets"
SPLITS_DIR = DATASETS_DIR / "splits"
CACHE_DIR = DATASETS_DIR / "cache"
RESULTS_DIR = PROJECT_ROOT / "results"
