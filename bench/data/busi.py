"""BUSI (Al-Dhabyani et al. 2020, ``Dataset_BUSI_with_GT``) reader (docs/protocol.md, Data sets).

``<root>/{benign,malignant,normal}/<name>.png`` with masks ``<name>_mask.png`` and
``<name>_mask_<k>.png``. The ``normal`` class is excluded (docs/protocol.md, Task); masks are kept as metadata.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.data.index import DataIndex, read_class_folders

_BUSI_NAME = re.compile(r"^(benign|malignant) \(\d+\)")


def looks_like_busi(root: Path) -> bool:
    """True when ``root/benign`` holds files named like BUSI's ``benign (N).png``."""
    folder = root / "benign"
    return folder.is_dir() and any(_BUSI_NAME.match(p.name) for p in folder.iterdir())


def read_busi(root: Path) -> DataIndex:
    """Index a BUSI tree; image IDs are the file stems, e.g. ``benign (12)``."""
    return read_class_folders(root, kind="busi")
