"""The phantom with burnt-in marks planted with a chosen rate per class: the proof that the
reliance measures find a shortcut (docs/protocol.md, "Burnt-in annotations").

The images are the synthetic phantom's (:func:`bench.data.synthetic.render`, unchanged); on a
share of each class the marks a scanner burns in are drawn: four caliper crosses around the lesion,
the dotted measuring lines between them, and a line of text. Not training code
(``bench/core/provenance.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def draw_marks(img: np.ndarray, rng: np.random.Generator, centre: tuple[float, float],
               size: float, stroke: int = 2) -> np.ndarray:
    """``img`` (grey uint8) with a scanner's marks burnt in, as drawn on the phantom: four caliper
    crosses around a lesion at ``centre`` with ``size`` px extent, the dotted measuring lines
    between opposite calipers, and a line of text (side and clock position) in a random corner
    band. Strokes ``stroke`` px wide (BUSI's are about 2 px at 360 px width), grey 235–255, no
    anti-aliasing."""
    out = img.copy()
    h, w = out.shape
    level = int(rng.integers(235, 256))
    cx, cy = centre
    r = size / 2 + rng.uniform(2, 6)
    ends = [(cx - r, cy), (cx + r, cy), (cx, cy - 0.7 * r), (cx, cy + 0.7 * r)]
    pts = [(int(np.clip(x, 8, w - 9)), int(np.clip(y, 8, h - 9))) for x, y in ends]
    for (x0, y0), (x1, y1) in ((pts[0], pts[1]), (pts[2], pts[3])):
        n = int(np.hypot(x1 - x0, y1 - y0) / 4)
        for t in np.linspace(0, 1, max(n, 2))[1:-1]:
            y, x = int(round(y0 + t * (y1 - y0))), int(round(x0 + t * (x1 - x0)))
            out[y:y + stroke, x:x + stroke] = level
    arm = int(rng.integers(4, 7))
    for x, y in pts:
        out[y:y + stroke, x - arm:x + arm + stroke] = level
        out[y - arm:y + arm + stroke, x:x + stroke] = level
    words = f"{rng.choice(['RT', 'LT', 'R', 'L'])} {int(rng.integers(1, 13))}:00"
    scale = 0.45
    (tw, th), _ = cv2.getTextSize(words, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(rng.choice([4, w - tw - 4]))
    y = int(rng.choice([th + 4, h - 6]))
    cv2.putText(out, words, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, level, stroke, cv2.LINE_8)
    return out


@dataclass(frozen=True)
class PlantedShortcut:
    """A phantom whose marks are drawn with a chosen rate per class (docs/protocol.md, "Burnt-in
    annotations": the planted-shortcut proof). ``overlap`` as in :class:`PhantomSpec`."""

    rate_malignant: float = 0.9
    rate_benign: float = 0.1
    n_benign: int = 60
    n_malignant: int = 60
    seed: int = 0
    overlap: float = 0.2
    stroke: int = 2


@lru_cache(maxsize=4096)
def _phantom_image(i: int, label: int, seed: int, overlap: float) -> tuple[np.ndarray, dict]:
    """One phantom image (memoised: phantoms that differ in their marks only share the renders)."""
    from bench.data.synthetic import PhantomSpec, render

    img, _, info = render(i, bool(label), PhantomSpec(seed=seed, overlap=overlap))
    img.setflags(write=False)
    return img, info


def planted_phantom(spec: PlantedShortcut, out: Path) -> pd.DataFrame:
    """Write the phantom's images into ``out/{benign,malignant}/`` with marks drawn on a share of
    each class; returns ``id, path, label, group, marked``."""
    from PIL import Image

    rows = []
    for label, n, rate in ((0, spec.n_benign, spec.rate_benign), (1, spec.n_malignant, spec.rate_malignant)):
        cls = "malignant" if label else "benign"
        rng = np.random.default_rng([spec.seed, label, 7919])
        marked = rng.random(n) < rate
        for i in range(n):
            img, info = _phantom_image(i, label, spec.seed, spec.overlap)
            if marked[i]:
                img = draw_marks(img, rng, tuple(info["center"]), info["width_px"], spec.stroke)
            rel = f"{cls}/syn_{cls}_{i:04d}.png"
            (out / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(out / rel)
            rows.append({"id": f"syn_{cls}_{i:04d}", "path": rel, "label": label,
                         "group": f"{cls}{i}", "marked": int(marked[i])})
    return pd.DataFrame(rows)
