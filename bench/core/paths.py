"""The project's locations: the checkout's root and the committed data files inside it.

The one module that knows where the checkout is. Library code never writes here by default:
commands choose output folders and pass them in.

The split manifests (``datasets/splits/*.csv``, ``*.json``) also ship in the wheel as data files
(``pyproject.toml``, ``[tool.setuptools.data-files]``: ``<prefix>/share/fus2bench/splits``), so an
install from the wheel scores and splits with the committed manifests; a checkout uses its own
``datasets/splits`` (docs/protocol.md, "Held-out test and cross-validation").
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATASETS_DIR = PROJECT_ROOT / "datasets"
# where the wheel's data files put the manifests, below an installation prefix
INSTALLED_SPLITS = Path("share") / "fus2bench" / "splits"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def installed_splits_dir(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The manifests an installed wheel brought (``<prefix>/share/fus2bench/splits``): below the
    interpreter's and the user's data prefixes, or a prefix above the installed package
    (``pip install --prefix``: ``<prefix>/lib/pythonX.Y/site-packages/bench``); ``None``: none."""
    prefixes = []
    for scheme in (None, f"{os.name}_user"):
        try:
            prefixes.append(Path(sysconfig.get_path("data", scheme) if scheme
                                 else sysconfig.get_path("data")))
        except KeyError:  # no user scheme on this platform
            pass
    prefixes += list(package_dir.parents)[:4]
    return next((p / INSTALLED_SPLITS for p in prefixes if (p / INSTALLED_SPLITS).is_dir()), None)


SPLITS_DIR = DATASETS_DIR / "splits" if (DATASETS_DIR / "splits").is_dir() else \
    installed_splits_dir() or DATASETS_DIR / "splits"
CACHE_DIR = DATASETS_DIR / "cache"
RESULTS_DIR = PROJECT_ROOT / "results"
