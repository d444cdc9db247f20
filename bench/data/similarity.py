"""Same-scene detection for the split and the leakage guard (SPEC §3, "re-framed shots").

A whole-image hash misses re-framed shots of one lesion (a small shift, crop or zoom, other gain,
the next frame of a cine loop). This measure survives them:

1. **Band-passed thumbnail.** Each image is reduced to grey, area-resized to ``side``×``side``
   at several scales, and its coarse shading is removed (difference of Gaussians: the image minus
   its Gaussian blur of ``sigma`` px), so layers, lesion outline, calipers and labels count, and
   overall gain and depth shading do not.
2. **Normalised cross-correlation at every offset and scale.** The central ``centre`` share of
   image A is slid over image B at each scale in ``scales`` (zero-mean NCC: invariant to
   brightness and contrast); the best value over offsets, scales and both directions (A in B, B
   in A) is the pair's raw similarity ``ncc``.
3. **Contrast to each image's own background.** Breast-ultrasound images all look alike at this
   size, so raw NCC alone groups different lesions. Each row of the similarity matrix is
   standardised (``z = (ncc - mean) / sd`` over the image's similarities to every other image),
   and a pair's score is the smaller of its two ``z`` values: B must stand out among A's
   neighbours *and* A among B's.

Two images show the same scene when ``z >= z_threshold`` and ``ncc >= min_ncc``. Calibrated on BUSI
(``datasets/splits/busi_report.json`` gives the counts, ``busi_review.png`` the pairs just above
and below the threshold): re-framed shots of one lesion score z 3.5-7.7 (cine frames of one scene
such as ``malignant (4)``/``(6)`` lowest), and pairs at 3.2-3.3 are still often the same scene by
eye (``malignant (5)``/``(6)``, ``(83)``/``(84)``). Since grouping too much is the safe side, the
threshold is the lowest before groups snowball: largest group 7 images at z 3.3, 11 at 3.2, 16 at
3.1, 24 at 3.0. Pairs from two angles of one lesion (``malignant (24)``/``(25)``, z 2.3) are beyond
any pixel measure we tried (dHash, ORB keypoints with a RANSAC fit, raw NCC). The full matrix of 647 BUSI images takes about 5 s on 2 CPU cores and is
cached under ``datasets/cache/similarity/`` by the images' paths, sizes and modification times.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter

from bench.atomic import write_atomic

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = PROJECT_ROOT / "datasets" / "cache" / "similarity"


@dataclass(frozen=True)
class SimilarityConfig:
    """The same-scene measure's settings (module docstring); recorded in every split report."""

    side: int = 32
    sigma: float = 4.0
    centre: float = 0.6
    scales: tuple[float, ...] = (0.8, 0.9, 1.0, 1.12, 1.25)
    z_threshold: float = 3.2
    min_ncc: float = 0.5

    def describe(self) -> str:
        return (f"z-normalised multi-scale NCC of band-passed {self.side} px thumbnails "
                f"(DoG sigma {self.sigma} px, centre {self.centre:.0%}, scales "
                f"{', '.join(f'{s:g}' for s in self.scales)}): same scene when min z >= "
                f"{self.z_threshold:g} and NCC >= {self.min_ncc:g}")


SAME_SCENE = SimilarityConfig()  # the calibrated default


def thumbnails(img: Image.Image, cfg: SimilarityConfig) -> list[np.ndarray]:
    """Band-passed grey thumbnails of ``img``, one per scale (float32, zero mean)."""
    grey = img.convert("L").convert("F")
    out = []
    for s in cfg.scales:
        size = max(4, round(cfg.side * s))
        a = np.asarray(grey.resize((size, size), Image.BOX), dtype=np.float32)
        d = a - gaussian_filter(a, cfg.sigma * s, mode="mirror")
        out.append(d - d.mean())
    return out


def similarity_matrix(thumbs: Sequence[list[np.ndarray]], cfg: SimilarityConfig,
                      chunk: int = 128) -> np.ndarray:
    """Symmetric n×n matrix of the best NCC over offsets, scales and both directions."""
    n = len(thumbs)
    best = torch.full((n, n), -1.0, dtype=torch.float32)
    if n < 2:
        return best.numpy()
    base = cfg.scales.index(1.0) if 1.0 in cfg.scales else 0
    ref = torch.from_numpy(np.stack([t[base] for t in thumbs])).float()
    c = round(ref.shape[-1] * cfg.centre)
    o = (ref.shape[-1] - c) // 2
    tmpl = ref[:, o:o + c, o:o + c]
    tmpl = tmpl - tmpl.mean(dim=(1, 2), keepdim=True)
    tmpl = tmpl / tmpl.flatten(1).norm(dim=1).clamp_min(1e-9)[:, None, None]
    box = torch.ones(1, 1, c, c, dtype=torch.float32)
    for k in range(len(cfg.scales)):
        img = torch.from_numpy(np.stack([t[k] for t in thumbs])).float()[:, None]
        if img.shape[-1] < c:
            continue
        s1, s2 = F.conv2d(img, box), F.conv2d(img * img, box)
        norm = (s2 - s1 * s1 / (c * c)).clamp_min(1e-9).sqrt()  # n×1×h×w window norms
        for i0 in range(0, n, chunk):
            r = F.conv2d(img, tmpl[i0:i0 + chunk, None]) / norm  # image j × template i
            best[i0:i0 + chunk] = torch.maximum(best[i0:i0 + chunk], r.flatten(2).amax(2).T)
    sim = torch.maximum(best, best.T).numpy()
    np.fill_diagonal(sim, 1.0)
    return sim


def contrast_scores(sim: np.ndarray) -> np.ndarray:
    """``min(z_ab, z_ba)``: each row standardised over the image's other pairs (diagonal NaN)."""
    n = len(sim)
    off = sim.astype(np.float64).copy()
    np.fill_diagonal(off, np.nan)
    if n < 3:
        return np.full_like(off, np.nan)
    mu = np.nanmean(off, axis=1, keepdims=True)
    sd = np.nanstd(off, axis=1, keepdims=True)
    z = (off - mu) / np.where(sd > 1e-9, sd, np.inf)
    return np.round(np.minimum(z, z.T), 4)


def cross_contrast(sim: np.ndarray, n_ref: int) -> np.ndarray:
    """Contrast scores of new images against a reference population (the first ``n_ref`` rows and
    columns of ``sim``, e.g. a training set): ``min(z_new, z_ref)``, where both the new image's
    similarities and the reference image's are standardised over the reference images only, as
    in the split. Returns a (new × reference) matrix."""
    off = sim.astype(np.float64).copy()
    np.fill_diagonal(off, np.nan)
    ref = off[:, :n_ref]  # every image against the reference images
    mu = np.nanmean(ref, axis=1, keepdims=True)
    sd = np.where((s := np.nanstd(ref, axis=1, keepdims=True)) > 1e-9, s, np.inf)
    z_new = (ref[n_ref:] - mu[n_ref:]) / sd[n_ref:]  # new image a's row, over the reference
    z_ref = ((off[:n_ref, n_ref:] - mu[:n_ref]) / sd[:n_ref]).T  # reference b's row, same columns
    return np.round(np.minimum(z_new, z_ref), 4)


@dataclass(frozen=True)
class PairScores:
    """Raw NCC and contrast score of every pair of a list of images."""

    ncc: np.ndarray
    z: np.ndarray

    def same_scene(self, cfg: SimilarityConfig, margin: float = 0.0) -> np.ndarray:
        """Boolean n×n (upper triangle) of same-scene pairs; ``margin`` raises the z threshold."""
        hit = (self.z >= cfg.z_threshold + margin) & (self.ncc >= cfg.min_ncc)
        return np.triu(np.nan_to_num(hit, nan=False).astype(bool), 1)

    def ranked(self, limit: int | None = None) -> list[tuple[int, int, float, float]]:
        """``(i, j, z, ncc)`` of pairs, highest z first."""
        i, j = np.triu_indices(len(self.z), 1)
        z = np.nan_to_num(self.z[i, j], nan=-np.inf)
        order = np.argsort(-z, kind="stable")[:limit]
        return [(int(i[k]), int(j[k]), float(self.z[i[k], j[k]]), float(self.ncc[i[k], j[k]]))
                for k in order]


def cache_key(files: Sequence[Path], cfg: SimilarityConfig) -> str:
    """Key of a similarity matrix: the measure's settings and each file's path, size and mtime."""
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def pair_scores(files: Sequence[Path], thumbs: Sequence[list[np.ndarray]] | None,
                cfg: SimilarityConfig, load=None, cache_dir: Path | None = CACHE_DIR) -> PairScores:
    """Pair scores of ``files``, from the cache or computed (``thumbs`` given, or ``load(path)``
    returning a PIL image for each file)."""
    key = cache_key(files, cfg) if cache_dir is not None else ""
    path = cache_dir / f"{key}.npy" if cache_dir is not None else None
    sim = None
    if path is not None and path.is_file():
        try:
            sim = np.load(path)
            if sim.shape != (len(files), len(files)):
                sim = None
        except (OSError, ValueError):
            sim = None
    if sim is None:
        if thumbs is None:
            thumbs = [thumbnails(load(f), cfg) for f in files]
        sim = similarity_matrix(thumbs, cfg)
        if path is not None:
            try:
                write_atomic(path, lambda p: np.save(p.open("wb"), sim))
            except OSError:
                pass  # a read-only checkout still works, only slower
    return PairScores(ncc=sim, z=contrast_scores(sim))
