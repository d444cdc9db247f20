"""The planted-shortcut proof over a grid of settings (docs/protocol.md, "Burnt-in annotations"):
the phantom with marks on 90 % of malignant and 10 % of benign images ("corr") or on half of each
class ("uncorr"), at lesion-descriptor overlap 0.2, 0.35 and 0.5 (0.5: the lesion carries no class
information), the small CNN of tests/test_annotations.py at 64 and 96 px; prints AUC as is and
cleaned, ΔAUC with its lower 95% bound, and the two insertion shifts.

    PYTHONPATH=$PWD python tools/planted_shortcut_grid.py   (about 75 s on 2 cores)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data.planted import PlantedShortcut, planted_phantom  # noqa: E402
from bench.evaluation.reliance import reliance_of  # noqa: E402
from tests.test_annotations import _tiny_cnn_scorer  # noqa: E402

t0 = time.time()
with tempfile.TemporaryDirectory() as tmp:
    for overlap in (0.2, 0.35, 0.5):
        for px in (64, 96):
            for name, (rate_m, rate_b) in {"corr": (0.9, 0.1), "uncorr": (0.5, 0.5)}.items():
                root = Path(tmp) / f"{name}{overlap}"
                rows = planted_phantom(PlantedShortcut(rate_malignant=rate_m, rate_benign=rate_b,
                                                       n_benign=60, n_malignant=60,
                                                       overlap=overlap), root)
                test = rows.id.str[-4:].astype(int) >= 40
                s, _ = reliance_of(_tiny_cnn_scorer(root, rows[~test], px), root, rows[test])
                print(overlap, px, name, "auc", round(s["auc_original"], 3), round(s["auc_cleaned"], 3),
                      "d", round(s["delta_auc"], 3), round(s["delta_lo"], 3), "ins",
                      round(s["malignant_marks_on_benign"]["mean_shift"], 3),
                      round(s["benign_marks_on_malignant"]["mean_shift"], 3),
                      round(time.time() - t0, 1), flush=True)
