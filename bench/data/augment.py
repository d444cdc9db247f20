"""Training-time preprocessing on batches of tensors (docs/protocol.md, The paper), on CPU or GPU alike.

* Flip-balancing (the paper's "170 malignant images flipped horizontally AND vertically"):
  :func:`flip_balance` adds h- and v-flipped copies of randomly chosen minority-class images of a
  *training fold* until the classes are equal. It is only ever given training indices.
* Augmentation (the paper names rotation, lighting, shift, shear and flip; its ranges are not
  given, so these Keras-``ImageDataGenerator``-style ranges are our documented choice):
  rotation ±15°, shift ±10% of the side, shear ±10°, horizontal flip p=0.5, brightness ×[0.8, 1.2];
  bilinear sampling with edge replication (Keras ``fill_mode='nearest'``).
* Ultrasound-aware augmentation (``--augment ultrasound``; docs/protocol.md, "Ultrasound-aware
  augmentation"): :class:`UltrasoundAugment` is the paper's augmentation followed by what changes
  between scanners and settings: depth crop and zoom, probe resolution (down-up sampling, blur),
  overall gain and a time-gain-compensation slope, dynamic range (gamma), multiplicative speckle,
  sector and border masks (:func:`ultrasound`). The paper's augmentation (:class:`AugmentConfig`)
  draws and computes exactly as before; the ultrasound draws come after its draws.
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


@dataclass(frozen=True)
class UltrasoundAugment(AugmentConfig):
    """The paper's augmentation plus the ultrasound transforms, each applied to an image with its
    probability ``*_p`` and a strength drawn uniformly from its range (docs/protocol.md,
    "Ultrasound-aware augmentation"; lengths are fractions of the image side, so a transform does
    the same at 64 and 224 px). An image a transform skips gets that transform's identity."""

    zoom_p: float = 0.3  # depth crop and zoom: keep the top-centre part, this share of each side
    zoom_keep: tuple[float, float] = (0.8, 1.0)
    resolution_p: float = 0.3  # down-up sampling by an integer factor (area down, bilinear up)
    resolution_factors: tuple[int, ...] = (2, 3)
    blur_p: float = 0.3  # Gaussian blur, sigma as a fraction of the side
    blur_sigma: tuple[float, float] = (0.004, 0.015)
    gain_p: float = 0.5  # overall gain, dB (amplitude x 10^(dB/20))
    gain_db: tuple[float, float] = (-3.0, 3.0)
    tgc_p: float = 0.5  # time-gain compensation: gain changing linearly with depth, dB top->bottom
    tgc_db: tuple[float, float] = (-6.0, 6.0)
    gamma_p: float = 0.5  # dynamic range: 255 (x/255)^gamma, gamma log-uniform
    gamma: tuple[float, float] = (0.7, 1.4)
    speckle_p: float = 0.5  # multiplicative speckle x (1 + sigma n), n N(0,1) on a coarse grid
    speckle_sigma: tuple[float, float] = (0.05, 0.25)
    speckle_grid: int = 32  # the noise grid's side (bilinear to the image: grains of side/32 px)
    sector_p: float = 0.25  # zero outside a fan from an apex above the top centre
    sector_half_angle_deg: tuple[float, float] = (30.0, 50.0)
    sector_apex: tuple[float, float] = (0.0, 0.5)  # apex height above the top edge (of the side)
    border_p: float = 0.25  # zero a margin on all four edges
    border: tuple[float, float] = (0.02, 0.08)


AUGMENT_POLICIES = ("paper", "ultrasound")


def augment_policy(name: str) -> AugmentConfig:
    """The augmentation of a policy name (``--augment``): ``paper`` (the default) or
    ``ultrasound``."""
    if name == "paper":
        return AugmentConfig()
    if name == "ultrasound":
        return UltrasoundAugment()
    raise ValueError(f"unknown augmentation policy {name!r}; policies are "
                     f"{', '.join(AUGMENT_POLICIES)}")


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

    params = {
        "angle": uniform(-cfg.rotation_deg, cfg.rotation_deg) * math.pi / 180,
        "shear": uniform(-cfg.shear_deg, cfg.shear_deg) * math.pi / 180,
        "tx": uniform(-cfg.shift, cfg.shift),
        "ty": uniform(-cfg.shift, cfg.shift),
        "flip": (torch.rand(n, generator=gen) < 0.5) if cfg.hflip else torch.zeros(n, dtype=torch.bool),
        "brightness": uniform(*cfg.brightness),
    }
    if isinstance(cfg, UltrasoundAugment):
        params.update(sample_ultrasound(n, cfg, gen))
    return params


def sample_ultrasound(n: int, cfg: UltrasoundAugment, gen: torch.Generator
                      ) -> dict[str, torch.Tensor]:
    """The ultrasound transforms' parameters for ``n`` images (keys ``us_*``, leading dimension
    ``n`` so that the stacked engine can concatenate its members' draws). Every draw is made for
    every image, in a fixed order, whether the transform is applied or not."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    def applied(p: float, value: torch.Tensor, identity: float) -> torch.Tensor:
        return torch.where(torch.rand(n, generator=gen) < p, value, torch.full_like(value, identity))

    factors = torch.tensor(cfg.resolution_factors, dtype=torch.float32)
    lo_g, hi_g = (math.log(g) for g in cfg.gamma)
    g = cfg.speckle_grid
    return {
        "us_zoom": applied(cfg.zoom_p, uniform(*cfg.zoom_keep), 1.0),
        "us_down": applied(cfg.resolution_p, factors[torch.randint(len(factors), (n,),
                                                                   generator=gen)], 1.0),
        "us_blur": applied(cfg.blur_p, uniform(*cfg.blur_sigma), 0.0),
        "us_gain_db": applied(cfg.gain_p, uniform(*cfg.gain_db), 0.0),
        "us_tgc_db": applied(cfg.tgc_p, uniform(*cfg.tgc_db), 0.0),
        "us_gamma": applied(cfg.gamma_p, torch.exp(uniform(lo_g, hi_g)), 1.0),
        "us_speckle": applied(cfg.speckle_p, uniform(*cfg.speckle_sigma), 0.0),
        "us_noise": torch.randn(n, g, g, generator=gen),
        "us_sector": applied(cfg.sector_p, uniform(*cfg.sector_half_angle_deg) * math.pi / 180,
                             math.pi),
        "us_apex": uniform(*cfg.sector_apex),
        "us_border": applied(cfg.border_p, uniform(*cfg.border), 0.0),
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
    x = x.clamp_(0, 255)
    return ultrasound(x, p) if "us_gamma" in p else x


def _per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image values (N,) as an N×1×1×1 tensor on ``x``'s device and dtype."""
    return values.to(x.device, x.dtype).view(-1, 1, 1, 1)


def depth_zoom(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Depth crop and zoom: the top-centre ``keep`` share of each side (the shallow part, the
    probe at the top) enlarged to the whole image, bilinear; ``keep`` 1 is the identity."""
    k = keep.to(x.device, x.dtype)
    theta = torch.zeros(len(k), 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 1, 2] = k, k, k - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return torch.where((k < 1).view(-1, 1, 1, 1), out, x)


def down_up(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Probe resolution: each image area-downsampled by its integer ``factor`` and bilinearly
    upsampled back (factor 1: unchanged); one pass per factor present, for the whole batch."""
    h, w = x.shape[-2:]
    f = factor.to(x.device)
    out = x
    for level in sorted({int(v) for v in factor.tolist() if v > 1}):
        small = F.interpolate(x, size=(max(1, h // level), max(1, w // level)), mode="area")
        back = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        out = torch.where((f == level).view(-1, 1, 1, 1), back, out)
    return out


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-image ``sigma`` (a fraction of the image side; 0: the
    identity), as one grouped convolution over the batch (edges replicated). Each image's kernel
    is cut at its own 3 sigma, so an image is blurred the same whatever else is in its batch (the
    stacked engine batches several members' images together)."""
    n, c, h, w = x.shape
    s = sigma.to(x.device, x.dtype) * max(h, w)
    radius = max(1, math.ceil(3 * float(s.max()))) if n else 1
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kern = torch.exp(-0.5 * (t.view(1, -1) / s.clamp_min(1e-6).view(-1, 1)) ** 2)
    kern = torch.where(t.view(1, -1).abs() <= torch.ceil(3 * s).view(-1, 1), kern, 0)
    kern = torch.where((s > 0).view(-1, 1), kern, (t == 0).to(x.dtype).view(1, -1))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, k)
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, kern.view(n * c, 1, -1, 1), groups=n * c)
    y = F.conv2d(y, kern.view(n * c, 1, 1, -1), groups=n * c)
    return y.view(n, c, h, w)


def gain_curve(x: torch.Tensor, gain_db: torch.Tensor, tgc_db: torch.Tensor) -> torch.Tensor:
    """Overall gain and time-gain compensation: row r (depth d = r/(H-1), 0 at the probe) is
    multiplied by 10^((gain + tgc (d - 1/2))/20): monotone in depth, the identity at 0 dB."""
    h = x.shape[-2]
    depth = torch.linspace(0, 1, h, device=x.device, dtype=x.dtype).view(1, 1, -1, 1) - 0.5
    db = _per_image(gain_db, x) + _per_image(tgc_db, x) * depth
    return x * torch.pow(10.0, db / 20)


def gamma_curve(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Dynamic range: ``255 (x/255)^gamma`` on a batch in [0, 255] (gamma 1: the identity)."""
    return 255 * (x.clamp(0, 255) / 255) ** _per_image(gamma, x)


def speckle(x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Multiplicative speckle ``x (1 + sigma n)``: ``noise`` (N×G×G, standard normal) bilinearly
    enlarged to the image, so its grains are side/G px; the factor has mean 1 (kept >= 0)."""
    field = F.interpolate(noise.to(x.device, x.dtype).unsqueeze(1), size=x.shape[-2:],
                          mode="bilinear", align_corners=False)
    return x * (1 + _per_image(sigma, x) * field).clamp_min(0)


def sector_border_mask(x: torch.Tensor, half_angle: torch.Tensor, apex: torch.Tensor,
                       border: torch.Tensor) -> torch.Tensor:
    """Zero outside a fan (a convex probe's sector: apex ``apex`` side-lengths above the top
    centre, ``half_angle`` radians either side of the vertical; pi: no sector) and in a margin of
    ``border`` of the side on all four edges (0: none)."""
    h, w = x.shape[-2:]
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / h
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / w - 0.5
    a = _per_image(apex, x)
    angle = torch.atan2(xs.view(1, 1, 1, -1).abs(), ys.view(1, 1, -1, 1) + a)
    inside = angle <= _per_image(half_angle, x)
    b = _per_image(border, x)
    yy, xx = ys.view(1, 1, -1, 1), xs.view(1, 1, 1, -1) + 0.5
    inside = inside & (yy >= b) & (yy <= 1 - b) & (xx >= b) & (xx <= 1 - b)
    return x * inside.to(x.dtype)


def ultrasound(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """The ultrasound transforms on a float batch in [0, 255] (any device), in the order a scanner
    would cause them: depth zoom, probe resolution (down-up, blur), gain and TGC, dynamic range,
    speckle, then the sector/border mask; clamped to [0, 255]."""
    x = depth_zoom(x, p["us_zoom"])
    x = gaussian_blur(down_up(x, p["us_down"]), p["us_blur"])
    x = gamma_curve(gain_curve(x, p["us_gain_db"], p["us_tgc_db"]), p["us_gamma"])
    x = speckle(x, p["us_speckle"], p["us_noise"])
    x = sector_border_mask(x, p["us_sector"], p["us_apex"], p["us_border"])
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
