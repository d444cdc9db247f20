"""What the data pipeline does to an image (the command: ``python -m bench.illustrate``), saved
with a run for the report's Fig. 5 and Fig. 6 analogues (docs/protocol.md, Training recipe and preprocessing).

For one benign and one malignant *training* image of the run's split (the first of each class by
id, so the choice is reproducible and never a test image), it stores in ``<run>/illustrations.npz``:

* ``{cls}/original``: the decoded image (grey, at most ``ORIGINAL_SIDE`` px on its long side);
* ``{cls}/resized``: the image as the run's cache holds it (``img_size`` px, uint8);
* ``{cls}/normalized``: the model's input after normalisation (per-image standardisation, paper
  Eq. 1, or ImageNet mean/std), float16;
* ``{cls}/display`` and ``{cls}/augmented``: the training augmentation (:mod:`bench.data.augment`,
  the same function and ranges the engines use) applied ``N_VIEWS`` times at the run's training
  size (``img_size``), as the model sees it;
  ``{cls}/params``: each view's parameters (rotation °, shear °, shift x, shift y, flip, brightness);
* ``{cls}/ultrasound``: each transform of the ``--augment ultrasound`` policy
  (:class:`bench.data.augment.UltrasoundAugment`) alone, at the end of its range, on the image at
  the training size; ``ultrasound_names``: what each view shows (docs/protocol.md,
  "Ultrasound-aware augmentation");
* ``ranges``: the augmentation ranges as JSON; ``ids``: the two image ids.

The views' parameters are also written to ``<run>/illustrations.csv`` and the ultrasound views'
names to ``<run>/illustrations_ultrasound.csv``: results sets commit both, but not the arrays.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from bench.core.errors import BenchError
from bench.data import augment as us
from bench.data.augment import AugmentConfig, UltrasoundAugment, augment, sample_params
from bench.data.cache import build_cache
from bench.data.images import read_image
from bench.engine.runfolder import Run
from bench.engine.train import normalize
from models import get_model_config

log = logging.getLogger(__name__)

ORIGINAL_SIDE = 320
N_VIEWS = 5
SEED = 0
PARAM_NAMES = ("rotation_deg", "shear_deg", "shift_x", "shift_y", "hflip", "brightness")
CLASSES = ("benign", "malignant")


def training_examples(split: pd.DataFrame) -> pd.DataFrame:
    """The first training image of each class by id (never a test or excluded image)."""
    train = split[split.split == "train"].sort_values("id")
    picks = [train[train.label == c].head(1) for c in (0, 1)]
    if any(len(p) == 0 for p in picks):
        raise BenchError("the split has no training image of one class to illustrate")
    return pd.concat(picks, ignore_index=True)


def augmentation_views(image: torch.Tensor, cfg: AugmentConfig, n: int, seed: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` augmented copies of one C×H×W uint8 image and their parameters (n×6)."""
    params = sample_params(n, cfg, torch.Generator().manual_seed(seed))
    x = image.float().unsqueeze(0).expand(n, -1, -1, -1).contiguous()
    views = augment(x, params).round().to(torch.uint8).numpy()
    table = np.stack([params["angle"] * 180 / math.pi, params["shear"] * 180 / math.pi,
                      params["tx"], params["ty"], params["flip"].float(), params["brightness"]],
                     axis=1).astype(np.float32)
    return views, table


def ultrasound_views(image: torch.Tensor, cfg: UltrasoundAugment | None = None, seed: int = 0
                     ) -> tuple[list[str], np.ndarray]:
    """Each ultrasound transform alone on one C×H×W uint8 image, at the end of its range (the
    strongest setting the policy draws): names and views (T×C×H×W uint8)."""
    cfg = cfg or UltrasoundAugment()
    x = image.float().unsqueeze(0)
    one = lambda v: torch.tensor([float(v)])  # noqa: E731
    noise = torch.randn(1, cfg.speckle_grid, cfg.speckle_grid,
                        generator=torch.Generator().manual_seed(seed))
    views = [
        (f"speckle sigma {cfg.speckle_sigma[1]:g}", us.speckle(x, one(cfg.speckle_sigma[1]), noise)),
        (f"gain {cfg.gain_db[1]:+g} dB", us.gain_curve(x, one(cfg.gain_db[1]), one(0))),
        (f"gain {cfg.gain_db[0]:+g} dB", us.gain_curve(x, one(cfg.gain_db[0]), one(0))),
        (f"TGC {cfg.tgc_db[1]:+g} dB over depth", us.gain_curve(x, one(0), one(cfg.tgc_db[1]))),
        (f"gamma {cfg.gamma[0]:g}", us.gamma_curve(x, one(cfg.gamma[0]))),
        (f"gamma {cfg.gamma[1]:g}", us.gamma_curve(x, one(cfg.gamma[1]))),
        (f"blur sigma {cfg.blur_sigma[1]:.1%} of side",
         us.gaussian_blur(x, one(cfg.blur_sigma[1]))),
        (f"down-up x{max(cfg.resolution_factors)}",
         us.down_up(x, one(max(cfg.resolution_factors)))),
        (f"depth zoom (keep {cfg.zoom_keep[0]:.0%})", us.depth_zoom(x, one(cfg.zoom_keep[0]))),
        (f"sector {cfg.sector_half_angle_deg[0]:g} deg",
         us.sector_border_mask(x, one(math.radians(cfg.sector_half_angle_deg[0])),
                               one(cfg.sector_apex[0]), one(0))),
        (f"border {cfg.border[1]:.0%}",
         us.sector_border_mask(x, one(math.pi), one(0), one(cfg.border[1]))),
    ]
    return ([name for name, _ in views],
            np.stack([v[0].clamp(0, 255).round().to(torch.uint8).numpy() for _, v in views]))


def _grey(arr: np.ndarray) -> np.ndarray:
    """C×H×W uint8 → H×W uint8 (mean over channels)."""
    return arr.mean(0).round().astype(np.uint8)


def illustrate_run(run: Run, data: Path | None = None) -> Path:
    """Write ``<run>/illustrations.npz`` (see the module docstring); returns its path."""
    from bench.evaluation.explain import run_index

    folder = run.folder
    split = folder.read_split()
    picks = training_examples(split)
    index = run_index(run, data)
    cfg = get_model_config(run.model)
    size, channels = run.spec.img_size, run.spec.channels
    with folder.timed("illustrations"):
        cache, _ = build_cache(index.root, picks, size, channels)
        aug = AugmentConfig()
        arrays: dict[str, np.ndarray] = {"ids": picks.id.to_numpy(str),
                                         "ranges": np.array(json.dumps(asdict(aug)))}
        for k, cls in enumerate(CLASSES):
            img = read_image(index.root / picks.path.iloc[k]).convert("L")
            img.thumbnail((ORIGINAL_SIDE, ORIGINAL_SIDE), Image.BILINEAR)
            views, params = augmentation_views(cache.images[k], aug, N_VIEWS, SEED + k)
            names, shown = ultrasound_views(cache.images[k], seed=SEED + k)
            arrays.update({
                f"{cls}/original": np.asarray(img, dtype=np.uint8),
                f"{cls}/resized": _grey(cache.images[k].numpy()),
                f"{cls}/normalized": normalize(cache.images[k:k + 1].float(), cfg)[0].mean(0).numpy()
                .astype(np.float16),
                f"{cls}/display": _grey(cache.images[k].numpy()),
                f"{cls}/augmented": np.stack([_grey(v) for v in views]),
                f"{cls}/params": params,
                f"{cls}/ultrasound": np.stack([_grey(v) for v in shown]),
                "ultrasound_names": np.array(names),
            })
        rows = [{"image": cls, "id": arrays["ids"][k], "view": v + 1,
                 **dict(zip(PARAM_NAMES, map(float, p), strict=True))}
                for k, cls in enumerate(CLASSES) for v, p in enumerate(arrays[f"{cls}/params"])]
        out = folder.write_illustrations(arrays, pd.DataFrame(rows))  # results sets commit the .csv
    log.info(f"{run.path.name}: pipeline illustrations written ({', '.join(picks.id)})")
    return out
