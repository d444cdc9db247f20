"""Copies of one picture across data sets (docs/protocol.md, "External validation").

Across data sets only the *same picture* counts as a duplicate of a training image: identical
pixels, a re-saved, recompressed or rescaled copy, or a crop of it. Look-alike lesions of another
site (an oval cyst on another scanner) are not duplicates, so the within-data-set same-lesion
evidence (:mod:`bench.data.lesion`) is deliberately not used here. A pair is a copy when one of
these holds:

* **identical pixels**: the SHA-256 of the decoded grey pixels and the size are equal;
* **near-identical hash**: the 256-bit dHash of both (grey, resized to 17×16) differs in at most
  ``hash_bits`` bits (a re-saved or rescaled copy differs in 0-10 on BUSI; different lesions of
  one scanner in 80-180);
* **geometric match**: ORB keypoints matched with Lowe's ratio test and a RANSAC affine
  transform (a crop, a shift, a rescale, also to another aspect ratio as when a data set resizes
  every image to a square) supported by at least ``min_inliers`` inliers, its scales between
  ``1/max_scale`` and ``max_scale`` and at most 2:1 between the axes. On BUSI, re-saved copies give 340-415 inliers, cine
  frames of one scene (moved probe) 20-50 and unrelated pairs at most 19.

Only the ``candidates`` training images most like each new image (raw multi-scale NCC of
band-passed thumbnails, :mod:`bench.data.similarity`, which a crop, rescale or recompression barely
changes) are matched with keypoints, which keeps the search linear in the new set's size.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.data.images import BadImageError, read_image
from bench.data.similarity import SAME_SCENE, similarity_matrix, thumbnails

ORB_SIDE = 512  # longer side (px) at which keypoints are found


@dataclass(frozen=True)
class CopyConfig:
    """Thresholds of the same-picture test (module docstring)."""

    hash_bits: int = 24
    min_inliers: int = 60
    max_scale: float = 4.0
    candidates: int = 5


@dataclass(frozen=True)
class Copy:
    """A new image that is a copy of a reference image, and the evidence."""

    new: int
    ref: int
    evidence: str


@dataclass
class Picture:
    """What the copy test needs of one decoded image."""

    digest: str
    dhash: np.ndarray
    thumbs: list[np.ndarray]
    points: np.ndarray  # keypoint coordinates in the image resized to ``ORB_SIDE``
    descriptors: np.ndarray | None


def dhash(img: Image.Image, side: int = 16) -> np.ndarray:
    """Difference hash: ``side``×``side`` booleans (grey thumbnail, is-right-pixel-brighter)."""
    a = np.asarray(img.convert("L").resize((side + 1, side), Image.LANCZOS), dtype=np.int16)
    return (a[:, 1:] > a[:, :-1]).ravel()


def picture(path: Path) -> Picture:
    """:func:`picture_of` the image at ``path`` (raises ``BadImageError``)."""
    return picture_of(read_image(path))


def picture_of(img: Image.Image) -> Picture:
    """Digest, dHash, NCC thumbnails and ORB keypoints of one decoded image."""
    grey = img.convert("L")
    digest = hashlib.sha256(grey.tobytes() + str(grey.size).encode()).hexdigest()
    scale = min(1.0, ORB_SIDE / max(grey.size))
    small = grey.resize((max(8, round(grey.width * scale)), max(8, round(grey.height * scale))),
                        Image.BILINEAR) if scale < 1 else grey
    keypoints, desc = cv2.ORB_create(nfeatures=500).detectAndCompute(np.asarray(small), None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    return Picture(digest, dhash(grey), thumbnails(grey, SAME_SCENE), points, desc)


def pictures(paths: list[Path]) -> list[Picture | BadImageError]:
    """:func:`picture` of every path (threads); an undecodable image gives its error."""

    def one(p: Path) -> Picture | BadImageError:
        try:
            return picture(p)
        except BadImageError as exc:
            return exc

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, paths))


def geometric_inliers(a: Picture, b: Picture, max_scale: float) -> int:
    """Inliers of the RANSAC similarity transform between two images' ORB matches (0 when there
    are too few matches or the scale is implausible)."""
    if a.descriptors is None or b.descriptors is None or min(len(a.points), len(b.points)) < 8:
        return 0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < 6:
        return 0
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    transform, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0)
    if transform is None or mask is None:
        return 0
    scales = np.linalg.svd(transform[:, :2], compute_uv=False)
    if not (1 / max_scale <= scales.min() and scales.max() <= max_scale
            and scales.max() / scales.min() <= 2.0):
        return 0
    return int(mask.sum())


def find_copies(new: list[Picture], ref: list[Picture], cfg: CopyConfig = CopyConfig()
                ) -> list[Copy]:
    """Each new image that is a copy of a reference image (the strongest evidence first)."""
    if not new or not ref:
        return []
    digests = {p.digest: k for k, p in reversed(list(enumerate(ref)))}
    ref_bits = np.packbits(np.stack([p.dhash for p in ref]), axis=1)
    sim = similarity_matrix([p.thumbs for p in [*ref, *new]], SAME_SCENE)
    cross = sim[len(ref):, :len(ref)]
    copies = []
    for a, pic in enumerate(new):
        if pic.digest in digests:
            copies.append(Copy(a, digests[pic.digest], "identical pixels"))
            continue
        bits = np.unpackbits(np.packbits(pic.dhash)[None] ^ ref_bits, axis=1).sum(axis=1)
        b = int(np.argmin(bits))
        if bits[b] <= cfg.hash_bits:
            copies.append(Copy(a, b, f"dHash differs in {int(bits[b])} of 256 bits"))
            continue
        order = np.argsort(-cross[a], kind="stable")[:cfg.candidates]
        best = max(((geometric_inliers(pic, ref[int(b)], cfg.max_scale), int(b)) for b in order),
                   default=(0, -1))
        if best[0] >= cfg.min_inliers:
            copies.append(Copy(a, best[1], f"ORB + RANSAC: {best[0]} inliers"))
    return copies
