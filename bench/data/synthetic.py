"""Synthetic breast-ultrasound phantom: the embedded default dataset (docs/protocol.md, Data sets).

Each image is a simulated linear-probe B-mode scan (320×240, 8-bit grey):

1. Tissue echogenicity in layers with wavy interfaces — skin (bright), subcutaneous fat
   (hypoechoic, lobulated), fibroglandular tissue (echogenic, textured) and chest-wall muscle
   (striated) — with specular lines at the interfaces.
2. One lesion whose appearance follows five BI-RADS ultrasound descriptors:

   | descriptor  | benign appearance                     | malignant appearance                         |
   |-------------|---------------------------------------|----------------------------------------------|
   | shape       | oval, parallel (wider than tall)      | not parallel (taller than wide)              |
   | margin      | circumscribed (smooth)                | irregular, with spiculations                 |
   | echo        | homogeneous hypoechoic                | heterogeneous                                |
   | halo        | none                                  | echogenic halo around the margin             |
   | posterior   | acoustic enhancement                  | acoustic shadowing                           |

   **Overlap (documented, configurable):** each descriptor independently shows the *other* class's
   appearance with probability ``overlap`` (default 0.2); size, depth, position, gain, attenuation
   and tissue texture are drawn from the same distributions for both classes. With five descriptors
   at 0.8/0.2 an ideal observer that counts malignant-looking descriptors is right ≈ 94% of the
   time, so the task is learnable but not trivial.
3. Depth attenuation ``exp(-α·depth)``, multiplicative speckle (the magnitude of a spatially
   correlated complex Gaussian field: Rayleigh statistics, grain elongated laterally) and log
   compression to a 40–60 dB dynamic range (display gamma 1.5).

**Sites.** ``site="A"`` is the default scanner. ``site="B"`` is another scanner and hospital, for
external validation: a lower-frequency probe (speckle grain about three times as large), lower display
gain, stronger attenuation with a time-gain compensation ramp that brightens the far field, a wider
dynamic range (60–72 dB instead of 40–60: flatter contrast), display gamma 1.2 instead of 1.5, and
a population of smaller lesions (7–14% of the image width instead of 16–32%). Every
random draw happens in the same order at both sites, so site A is unchanged by site B's existence.

Default counts follow the paper (696 benign, 356 malignant). Generation is deterministic for a seed
(each image has its own ``numpy`` generator seeded with ``(seed, index)``), writes lesion masks
beside the images (``<id>_mask.png``, as BUSI does) and a ``synthetic.json`` with every image's
descriptors, and is cached under ``datasets/cache/`` so it runs once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from bench.core.atomic import publish_folder
from bench.core.paths import CACHE_DIR

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
HEIGHT, WIDTH = 240, 320
DESCRIPTORS = ("shape", "margin", "echo", "halo", "posterior")
MARKER = "synthetic.json"


@dataclass(frozen=True)
class Site:
    """Scanner and population settings of one phantom "site" (module docstring)."""

    speckle_sigma: tuple[float, float] = (0.7, 1.6)  # correlation of the speckle field (px)
    gain: tuple[float, float] = (0.85, 1.0)
    attenuation: tuple[float, float] = (0.5, 1.4)  # α of exp(-α·depth)
    tgc: float = 0.0  # time-gain compensation: far-field gain exp(tgc·depth)
    dynamic_range_db: tuple[float, float] = (40.0, 60.0)
    gamma: float = 1.5
    lesion_width: tuple[float, float] = (0.16, 0.32)  # fraction of the image width


SITES = {
    "A": Site(),
    "B": Site(speckle_sigma=(2.2, 4.4), gain=(0.75, 0.9), attenuation=(1.2, 2.0), tgc=1.3,
              dynamic_range_db=(60.0, 72.0), gamma=1.2, lesion_width=(0.07, 0.14)),
}


def _site_hash(site: Site) -> str:
    return hashlib.sha256(json.dumps(asdict(site), sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class PhantomSpec:
    """What to generate; part of the cache key."""

    n_benign: int = 696
    n_malignant: int = 356
    seed: int = 0
    overlap: float = 0.2
    site: str = "A"

    def cache_name(self) -> str:
        """Folder name under the cache; a site other than A adds its name and a hash of its
        settings, so changing them regenerates the data."""
        site = "" if self.site == "A" else f"-site{self.site}-{_site_hash(SITES[self.site])}"
        return (f"synthetic-v{GENERATOR_VERSION}-s{self.seed}-b{self.n_benign}"
                f"-m{self.n_malignant}-o{self.overlap:g}{site}")


def default_cache_root() -> Path:
    """``datasets/cache`` in the project checkout (git-ignored); ``FUS2BENCH_CACHE`` overrides."""
    env = os.environ.get("FUS2BENCH_CACHE")
    if env:
        return Path(env)
    return CACHE_DIR


def _smooth_noise(rng: np.random.Generator, sigma: tuple[float, float]) -> np.ndarray:
    n = gaussian_filter(rng.standard_normal((HEIGHT, WIDTH)), sigma)
    return n / (n.std() + 1e-8)


def _interface(rng: np.random.Generator, xx: np.ndarray, base: float, amp: float) -> np.ndarray:
    """A wavy tissue interface: depth (0..1) as a function of the lateral coordinate."""
    f1, f2 = rng.uniform(0.5, 1.5), rng.uniform(2.0, 4.0)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    return base + amp * (np.sin(2 * np.pi * f1 * xx + p1) + 0.4 * np.sin(2 * np.pi * f2 * xx + p2))


def _tissue(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Layered breast tissue echogenicity (skin, fat, fibroglandular, muscle), values ~0..1."""
    s1 = _interface(rng, xx[0], rng.uniform(0.04, 0.07), 0.006)[None, :]
    s2 = _interface(rng, xx[0], rng.uniform(0.18, 0.32), 0.03)[None, :]
    s3 = _interface(rng, xx[0], rng.uniform(0.72, 0.88), 0.03)[None, :]
    fat = 0.13 + 0.04 * _smooth_noise(rng, (6, 10))
    gland = rng.uniform(0.55, 0.75) + 0.12 * _smooth_noise(rng, (2.5, 5))
    muscle = 0.42 + 0.12 * np.sin(2 * np.pi * yy * rng.uniform(25, 40) + 2 * _smooth_noise(rng, (8, 30)))
    e = np.where(yy < s1, 0.95, np.where(yy < s2, fat, np.where(yy < s3, gland, muscle)))
    for s, strength in ((s2, 0.5), (s3, 0.7)):  # specular reflections at the interfaces
        e = e + strength * np.exp(-(((yy - s) * HEIGHT) ** 2) / 2.0)
    return np.clip(e, 0.02, None)


def _lesion(rng: np.random.Generator, malignant: bool, overlap: float, yy: np.ndarray,
            xx: np.ndarray, site: Site = SITES["A"]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Lesion mask, echo map, halo weight and posterior factor, plus its descriptors."""
    looks = {d: bool(malignant) != bool(rng.random() < overlap) for d in DESCRIPTORS}
    width = rng.uniform(*site.lesion_width)  # fraction of the image width
    aspect = rng.uniform(0.95, 1.4) if looks["shape"] else rng.uniform(0.45, 0.8)  # height/width
    rx = width * WIDTH / 2
    ry = min(aspect * rx, 0.28 * HEIGHT)
    cx = rng.uniform(0.3, 0.7) * WIDTH
    cy = rng.uniform(0.38, 0.55) * HEIGHT
    px, py = xx * WIDTH - cx, yy * HEIGHT - cy
    theta = np.arctan2(py / ry, px / rx)
    rho = np.hypot(px / rx, py / ry)
    grid = np.linspace(-np.pi, np.pi, 1024, endpoint=False)  # margin as a function of angle
    r = np.ones_like(grid)
    if looks["margin"]:  # irregular + spiculated
        for k in range(2, 7):
            r += rng.uniform(0.03, 0.08) * np.cos(k * grid + rng.uniform(0, 2 * np.pi))
        for t0 in rng.uniform(-np.pi, np.pi, rng.integers(7, 14)):
            d = np.angle(np.exp(1j * (grid - t0)))
            r += rng.uniform(0.25, 0.5) * np.exp(-(d**2) / (2 * 0.05**2))
    else:  # circumscribed
        for k in range(2, 4):
            r += rng.uniform(0.0, 0.03) * np.cos(k * grid + rng.uniform(0, 2 * np.pi))
    radius = r[((theta + np.pi) / (2 * np.pi) * grid.size).astype(int) % grid.size]
    mask = rho < radius
    level = rng.uniform(0.06, 0.16)
    if looks["echo"]:
        echo = level + 0.22 * np.clip(_smooth_noise(rng, (2.5, 2.5)), -0.3, 2.5)
    else:
        echo = level + 0.02 * _smooth_noise(rng, (3, 3))
    edge = rho / radius
    halo = np.exp(-(((edge - 1.15) / 0.12) ** 2)) * (edge > 1.0) if looks["halo"] else np.zeros_like(rho)
    # posterior acoustic feature: a column below the lesion, fading with distance
    cols = mask.any(axis=0)
    bottom = np.where(cols, HEIGHT - 1 - np.argmax(mask[::-1], axis=0), 0).astype(float)
    lateral = gaussian_filter1d(cols.astype(float), 4.0)
    below = np.clip(yy * HEIGHT - bottom[None, :], 0, None) * (yy * HEIGHT > bottom[None, :])
    fade = np.exp(-below / rng.uniform(50, 110)) * (below > 0)
    if looks["posterior"]:  # shadowing
        posterior = 1.0 - rng.uniform(0.6, 0.85) * fade * lateral[None, :]
    else:  # enhancement
        posterior = 1.0 + rng.uniform(0.5, 0.9) * fade * lateral[None, :]
    info = {
        **{d: ("malignant" if v else "benign") for d, v in looks.items()},
        "width_px": round(2 * rx, 1), "height_px": round(2 * ry, 1),
        "center": [round(cx, 1), round(cy, 1)],
    }
    return mask, np.clip(echo, 0.01, None), halo, posterior, info


def render(index: int, malignant: bool, spec: PhantomSpec) -> tuple[np.ndarray, np.ndarray, dict]:
    """One phantom image (uint8 H×W), its lesion mask (bool) and descriptors; deterministic."""
    site = SITES[spec.site]
    rng = np.random.default_rng([spec.seed, index, int(malignant)])
    yy, xx = np.meshgrid(np.linspace(0, 1, HEIGHT), np.linspace(0, 1, WIDTH), indexing="ij")
    e = _tissue(rng, yy, xx)
    mask, echo, halo, posterior, info = _lesion(rng, malignant, spec.overlap, yy, xx, site)
    soft = gaussian_filter(mask.astype(float), 1.0)
    e = (1 - soft) * e + soft * echo + 0.6 * halo
    e = e * posterior * np.exp(-rng.uniform(*site.attenuation) * yy)  # depth attenuation
    if site.tgc:
        e = e * np.exp(site.tgc * yy)  # time-gain compensation ramp
    field = gaussian_filter(rng.standard_normal((HEIGHT, WIDTH)), site.speckle_sigma) + \
        1j * gaussian_filter(rng.standard_normal((HEIGHT, WIDTH)), site.speckle_sigma)
    speckle = np.abs(field)
    envelope = e * speckle / speckle.mean()
    dr = rng.uniform(*site.dynamic_range_db)
    db = 20 * np.log10(envelope / np.quantile(envelope, 0.999) + 1e-6)
    img = np.clip(np.clip((db + dr) / dr, 0, 1) ** site.gamma * 255 * rng.uniform(*site.gain),
                  0, 255)
    info["dynamic_range_db"] = round(dr, 1)
    return img.astype(np.uint8), mask, info


def _write_one(args: tuple[int, bool, str, PhantomSpec, str]) -> dict:
    index, malignant, stem, spec, out = args
    img, mask, info = render(index, malignant, spec)
    cls = "malignant" if malignant else "benign"
    Image.fromarray(img).save(Path(out) / cls / f"{stem}.png", optimize=False, compress_level=1)
    Image.fromarray(mask.astype(np.uint8) * 255).save(Path(out) / cls / f"{stem}_mask.png")
    return {"id": stem, "label": cls, **info}


def generate(spec: PhantomSpec, out: Path, workers: int | None = None) -> Path:
    """Write the phantom data set to ``out`` (BUSI-like folders, masks, ``synthetic.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    for cls in ("benign", "malignant"):
        (out / cls).mkdir(exist_ok=True)
    jobs = [(i, False, f"syn_benign_{i:04d}", spec, str(out)) for i in range(spec.n_benign)]
    jobs += [(i, True, f"syn_malignant_{i:04d}", spec, str(out)) for i in range(spec.n_malignant)]
    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            records = list(pool.map(_write_one, jobs, chunksize=16))
    else:
        records = [_write_one(j) for j in jobs]
    meta = {"generator": "fus2bench synthetic phantom", "version": GENERATOR_VERSION,
            "spec": asdict(spec), "size": [WIDTH, HEIGHT], "images": records}
    (out / MARKER).write_text(json.dumps(meta, indent=1))
    return out


def ensure_synthetic(spec: PhantomSpec = PhantomSpec(), cache_root: Path | None = None,
                     verbose: bool = True) -> Path:
    """Return the cached phantom data set for ``spec``, generating it once: under a lock, into a
    temporary folder renamed into place (:func:`bench.core.atomic.publish_folder`), so processes
    that ask for it at once share one build and never read a half-written one."""
    target = (cache_root or default_cache_root()) / spec.cache_name()

    def build(tmp: Path) -> None:
        if verbose:
            log.info(f"generating synthetic phantom data ({spec.n_benign} benign, {spec.n_malignant} "
                     f"malignant, seed {spec.seed}) into {target} ...")
        generate(spec, tmp)

    publish_folder(target, build, lambda p: (p / MARKER).is_file(),
                   f"waiting: another process is generating the phantom data into {target}")
    return target
