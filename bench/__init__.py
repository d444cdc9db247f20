"""fus2bench: a reproducible benchmark of Fus2Net (Ma et al., 2021) and CNN baselines.

The Python API is :mod:`bench.api` (``from bench import api``); its functions are also here
(``bench.score_predictions``, ``bench.load_runs``, ``bench.create_model``, ``bench.list_models``,
``bench.export_mlflow``). They load on first use, so ``import bench`` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.core.openmp import configure as _configure_openmp

# before anything loads torch: OpenMP's threads wait without collapsing beside busy processes
_configure_openmp()

__version__ = "0.1.0"

# PEP 562: names resolved on first access
_API = ("score_predictions", "load_runs", "create_model", "list_models", "export_mlflow",
        "load_manifest", "Scores")
__all__ = ["__version__", "api", *_API]


def __getattr__(name: str) -> Any:
    if name == "api":
        return importlib.import_module("bench.api")
    if name in _API:
        return getattr(importlib.import_module("bench.api"), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
