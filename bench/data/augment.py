"""Training-time preprocessing on batches of tensors (docs/protocol.md, The paper), on CPU or GPU alike.

* Flip-balancing (the paper's "170 malignant images flipped horizontally AND vertically"):
  :func:`flip_balance` adds h- and v-flipped copies of randomly chosen minority-class images of a
  *training fold* until the classes are equal. It is only ever given training indices.
* Augmentation (the paper names rotation, lighting, shift, shear and flip; its ranges are not
  given, so these Keras-``ImageDataGenerator``-style ranges are our documented choice):
  rotation ±15°, shift ±10% of the side, shear ±10°, horizontal flip p=0.5, brightness ×[0.8, 1.2];
  bilinear sampling with edge replication (Keras ``fill_mode='nearest'``).
* Normalisation: per-image standardisation ``(x − mean(x)) / std(x)`` (paper Eq. 1) or ImageNet
  mean/std for pretrained backbones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

NO_FLIP, HFLIP, VFLIP = 0, 1, 2


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 15.0
    shift: float = 0.1
    shear_deg: float = 10.0
    hflip: bool = True
    brightness: tuple[float, float] = (0.8, 1.2)


def flip_balance(indices: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Balance a training set with flipped minority copies; returns ``(indices, flip_codes)``.

    ``labels`` are the labels of ``indices``. Each chosen minority image contributes an h-flip and a
    v-flip copy (the last pair is cut to one copy when the gap is odd).
    """
    indices = np.asarray(indices)
    labels = np.asarray(labels)
    codes = np.zeros(len(indices), dtype=np.int64)
    counts = [int((labels == c).sum()) for c in (0, 1)]
    minority = int(np.argmin(counts))
    gap = abs(counts[1] - counts[0])
    pool = indices[labels == minority]
    if gap == 0 or len(pool) == 0:
        return indices, codes
    n_pick = min(math.ceil(gap / 2), len(pool))
    picked = rng.choice(pool, size=n_pick, replace=False)
    extra_idx = np.repeat(picked, 2)[:gap]
    extra_codes = np.tile([HFLIP, VFLIP], n_pick)[:gap]
    return np.concatenate([indices, extra_idx]), np.concatenate([codes, extra_codes])


def apply_flips(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Deterministic flips of a batch (N×C×H×W) by per-image code."""
    h = (codes == HFLIP).view(-1, 1, 1, 1)
    v = (codes == VFLIP).view(-1, 1, 1, 1)
    x = torch.where(h, x.flip(-1), x)
    return torch.where(v, x.flip(-2), x)


def sample_params(n: int, cfg: AugmentConfig, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random augmentation parameters for ``n`` images (drawn on the CPU for reproducibility)."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    return {
        "angle": uniform(-cfg.rotation_deg, cfg.rotation_deg) * math.pi / 180,
        "shear": uniform(-cfg.shear_deg, cfg.shear_deg) * math.pi / 180,
        "tx": uniform(-cfg.shift, cfg.shift),
        "ty": uniform(-cfg.shift, cfg.shift),
        "flip": (torch.rand(n, generator=gen) < 0.5) if cfg.hflip else torch.zeros(n, dtype=torch.bool),
        "brightness": uniform(*cfg.brightness),
    }


def affine_matrices(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Output→input sampling matrices (N×2×3, normalised coordinates) for ``F.affine_grid``."""
    a, s = p["angle"], p["shear"]
    cos, sin = torch.cos(a), torch.sin(a)
    # forward map: rotate · shear(x) ; sampling uses its inverse
    fwd = torch.zeros(len(a), 3, 3)
    fwd[:, 0, 0], fwd[:, 0, 1] = cos, -sin + cos * torch.tan(s)
    fwd[:, 1, 0], fwd[:, 1, 1] = sin, cos + sin * torch.tan(s)
    fwd[:, 0, 2], fwd[:, 1, 2] = 2 * p["tx"], 2 * p["ty"]
    fwd[:, 2, 2] = 1
    flip = torch.where(p["flip"], -1.0, 1.0)
    fwd[:, :, 0] = fwd[:, :, 0] * flip.view(-1, 1)
    return torch.linalg.inv(fwd)[:, :2, :]


def augment(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Random affine + brightness on a float batch in [0, 255] (any device)."""
    theta = affine_matrices(p).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x * p["brightness"].to(x.device, x.dtype).view(-1, 1, 1, 1)
    return x.clamp_(0, 255)


def standardize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-image zero-mean, unit-variance (paper Eq. 1), over all channels and pixels."""
    flat = x.flatten(1)
    mean = flat.mean(1).view(-1, 1, 1, 1)
    std = flat.std(1, unbiased=False).clamp_min(eps).view(-1, 1, 1, 1)
    return (x - mean) / std


def imagenet_normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Scale [0, 255] to [0, 1] then subtract the channel mean and divide by the channel std."""
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    if x.shape[1] != m.shape[1]:  # single-channel input to a 3-channel-normalised model
        m, s = m.mean(1, keepdim=True), s.mean(1, keepdim=True)
    return (x / 255.0 - m) / s
