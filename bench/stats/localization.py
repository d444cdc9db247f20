"""Where a saliency map's energy lies relative to a lesion mask and the image frame (docs/protocol.md, Where the models look;
shortcut checks): pure functions of ``(map, mask)``, used by :mod:`bench.evaluation.explain` and the report.

* **pointing game**: the map's hottest point lies in the lesion, or within ``tolerance`` (a share
  of the image side) of it;
* **lesion energy ratio**: the map's share of energy inside the lesion divided by the lesion's
  share of the image (1.0 = no better than chance);
* **frame energy ratio**: the same for the outer ``band`` of the image, where calipers and labels
  sit (a shortcut signal; 1.0 = chance).
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 0.03  # pointing game: share of the image side
BAND = 0.10  # frame band: share of the image side


def frame_band(side: int, band: float = BAND) -> np.ndarray:
    """Boolean mask of the outer ``band`` share of a ``side``×``side`` image."""
    k = max(1, round(side * band))
    m = np.zeros((side, side), dtype=bool)
    m[:k], m[-k:], m[:, :k], m[:, -k:] = True, True, True, True
    return m


def cam_measures(cam: np.ndarray, mask: np.ndarray | None, tolerance: float = TOLERANCE,
                 band: float = BAND) -> dict[str, float]:
    """Pointing-game hit, lesion and frame energy ratios of one map (module docstring). NaN where undefined: no mask, an empty mask, or a map with no energy."""
    side = cam.shape[0]
    energy = float(cam.sum())
    out = {"pointing_hit": np.nan, "lesion_energy_ratio": np.nan, "frame_energy_ratio": np.nan}
    if energy <= 0:
        return out
    frame = frame_band(side, band)
    out["frame_energy_ratio"] = float(cam[frame].sum() / energy / frame.mean())
    if mask is None or not mask.any():
        return out
    out["lesion_energy_ratio"] = float(cam[mask].sum() / energy / mask.mean())
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    ly, lx = np.nonzero(mask)
    reach = tolerance * side
    out["pointing_hit"] = float(np.min((ly - y) ** 2 + (lx - x) ** 2) <= reach ** 2)
    return out
