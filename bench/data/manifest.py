"""Duplicate grouping, held-out test selection and group-aware CV folds (SPEC §3).

Two images belong together when any of these holds:

* **same picture**: their 256-bit difference hashes (dHash: 17×16 grey thumbnail, sign of
  horizontal gradients) differ in at most ``hash_threshold`` bits (default 40 of 256; on BUSI the
  pair count is flat between 32 and 48 bits and rises steeply past 56), or their decoded pixels are
  identical;
* **same scene**: the re-framing-tolerant measure of :mod:`bench.data.similarity` (shifted,
  cropped, zoomed or re-gained shots of one lesion, which differ by 45-86 dHash bits);
* **same patient**: a shared patient ID.

These pairs form groups (union-find); a group never straddles train/test or two folds; a group
whose members carry different labels is excluded and reported. :func:`check_leakage` applies the
same measure to any manifest it is given, so a foreign or old manifest with a same-scene pair
across train/test or folds is refused.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import StratifiedGroupKFold

from bench.atomic import write_csv
from bench.data.images import BadImageError, read_image
from bench.data.index import CLASSES, DataIndex, Sample, read_table
from bench.data.similarity import SAME_SCENE, PairScores, SimilarityConfig, pair_scores, thumbnails
from bench.errors import BenchError, plain

COLUMNS = ["id", "path", "label", "group", "split", "fold"]
HASH_SIDE = 16


@dataclass(frozen=True)
class SplitConfig:
    test_per_class: int = 50
    folds: int = 10
    seed: int = 2021
    hash_threshold: int = 40  # bits of the 256-bit dHash
    similarity: SimilarityConfig = SimilarityConfig()


def dhash(img: Image.Image, side: int = HASH_SIDE) -> np.ndarray:
    """Difference hash: ``side``×``side`` booleans (grey thumbnail, is-right-pixel-brighter)."""
    a = np.asarray(img.convert("L").resize((side + 1, side), Image.LANCZOS), dtype=np.int16)
    return (a[:, 1:] > a[:, :-1]).ravel()


@dataclass
class Fingerprints:
    """What the split needs of each usable image: dHash bits, pixel digest, same-scene scores."""

    samples: list[Sample]
    bits: np.ndarray
    digests: list[str]
    scenes: PairScores
    bad: list[tuple[str, str]]


def fingerprint(path: Path, sim: SimilarityConfig) -> tuple[np.ndarray, str, list[np.ndarray]]:
    """dHash bits, a SHA-256 of the decoded grey pixels and the same-scene thumbnails of one image."""
    img = read_image(path)
    grey = img.convert("L")
    digest = hashlib.sha256(grey.tobytes() + str(grey.size).encode()).hexdigest()
    return dhash(grey), digest, thumbnails(grey, sim)


def fingerprints(index: DataIndex, skip_bad: bool,
                 sim: SimilarityConfig = SAME_SCENE) -> Fingerprints:
    """Decode every sample once (threads); bad images raise, or with ``skip_bad`` are skipped."""

    def one(s: Sample):
        try:
            return fingerprint(index.abspath(s), sim)
        except BadImageError as exc:
            if not skip_bad:
                raise
            return exc

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, index.samples))
    kept, bits, digests, thumbs, bad = [], [], [], [], []
    for s, r in zip(index.samples, results, strict=True):
        if isinstance(r, BadImageError):
            bad.append((s.path, str(r)))
        else:
            kept.append(s)
            bits.append(r[0])
            digests.append(r[1])
            thumbs.append(r[2])
    scenes = pair_scores([index.abspath(s) for s in kept], thumbs, sim)
    return Fingerprints(kept, np.array(bits, dtype=bool).reshape(len(kept), -1), digests, scenes,
                        bad)


def group_duplicates(samples: list[Sample], bits: np.ndarray, digests: list[str],
                     threshold: int, same_scene: np.ndarray | None = None) -> np.ndarray:
    """Union-find over near-duplicate pairs, same-scene pairs (boolean n×n), identical pixels and
    shared patient IDs → group index."""
    n = len(samples)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    packed = np.packbits(bits, axis=1)
    for i in range(n - 1):
        dist = np.unpackbits(packed[i] ^ packed[i + 1:], axis=1).sum(axis=1)
        for j in np.nonzero(dist <= threshold)[0]:
            union(i, i + 1 + int(j))
    if same_scene is not None:
        for i, j in zip(*np.nonzero(same_scene), strict=True):
            union(int(i), int(j))
    first: dict[str, int] = {}
    for i, key in enumerate(digests):
        union(i, first.setdefault(key, i))
    first.clear()
    for i, s in enumerate(samples):
        if s.group:
            union(i, first.setdefault(s.group, i))
    return np.array([find(i) for i in range(n)])


def _pick_test(groups: dict[int, list[int]], labels: np.ndarray, per_class: int,
               rng: np.random.Generator) -> set[int]:
    """Whole groups, in random order, until each class has exactly ``per_class`` test images."""
    chosen: set[int] = set()
    for label, name in enumerate(CLASSES):
        keys = [g for g, m in groups.items() if labels[m[0]] == label]
        rng.shuffle(keys)
        need = per_class
        for g in keys:
            if need == 0:
                break
            if len(groups[g]) <= need:
                chosen.add(g)
                need -= len(groups[g])
        if need:
            total = sum(len(groups[g]) for g in keys)
            raise BenchError(
                f"too few usable {name} images for a held-out test of {per_class} per class "
                f"({total} after removing duplicate-label conflicts); add data or lower "
                "--test-per-class"
            )
    return chosen


def make_split(index: DataIndex, cfg: SplitConfig = SplitConfig(), skip_bad: bool = False
               ) -> tuple[pd.DataFrame, dict]:
    """Build the manifest (``id,path,label,group,split,fold``) and the split report."""
    fp = fingerprints(index, skip_bad, cfg.similarity)
    samples, bad = fp.samples, fp.bad
    labels = np.array([s.label for s in samples])
    roots = group_duplicates(samples, fp.bits, fp.digests, cfg.hash_threshold,
                             fp.scenes.same_scene(cfg.similarity))
    order = {r: k for k, r in enumerate(dict.fromkeys(roots.tolist()))}
    gid = np.array([order[r] for r in roots])
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(gid):
        groups.setdefault(int(g), []).append(i)
    conflicts = {g for g, m in groups.items() if len(set(labels[m])) > 1}
    clean = {g: m for g, m in groups.items() if g not in conflicts}
    rng = np.random.default_rng(cfg.seed)
    test = _pick_test(clean, labels, cfg.test_per_class, rng)
    train_idx = [i for g, m in clean.items() if g not in test for i in m]
    train_idx.sort()
    fold = np.full(len(samples), -1)
    if cfg.folds >= 2:
        n_groups = [len({gid[i] for i in train_idx if labels[i] == c}) for c in (0, 1)]
        if min(n_groups) < cfg.folds:
            raise BenchError(f"too few training images for {cfg.folds}-fold CV after the held-out "
                             f"test ({n_groups[0]} benign and {n_groups[1]} malignant groups); "
                             "add data, lower --test-per-class or --folds")
        sgkf = StratifiedGroupKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
        for k, (_, val) in enumerate(sgkf.split(train_idx, labels[train_idx], gid[train_idx])):
            fold[np.array(train_idx)[val]] = k
    split = np.where([gid[i] in test for i in range(len(samples))], "test", "train").astype(object)
    split[[i for g in conflicts for i in groups[g]]] = "excluded"
    manifest = pd.DataFrame({
        "id": [s.id for s in samples], "path": [s.path for s in samples], "label": labels,
        "group": [f"g{g:04d}" for g in gid], "split": split, "fold": fold,
    })
    report = split_report(index, manifest, cfg, groups, conflicts, samples, bad)
    report["same_scene"] = scene_summary(fp, cfg)
    return manifest, report


def scene_summary(fp: Fingerprints, cfg: SplitConfig, near: int = 12) -> dict:
    """How the same-scene measure changed the grouping, and the pairs either side of its threshold
    (for the contact sheet that calibrates it by eye)."""
    hash_only = group_duplicates(fp.samples, fp.bits, fp.digests, cfg.hash_threshold)
    ranked = fp.scenes.ranked()
    sim = cfg.similarity
    above = [p for p in ranked if p[2] >= sim.z_threshold and p[3] >= sim.min_ncc]
    below = [p for p in ranked if p[2] < sim.z_threshold][:near]

    def named(pairs):
        return [{"a": fp.samples[i].id, "b": fp.samples[j].id, "z": round(z, 2), "ncc": round(c, 3)}
                for i, j, z, c in pairs]

    def sizes(roots: np.ndarray) -> tuple[int, int]:
        _, counts = np.unique(roots, return_counts=True)
        return int(counts.max()) if len(counts) else 0, int((counts > 1).sum())

    largest_before, groups_before = sizes(hash_only)
    largest_after, groups_after = sizes(group_duplicates(
        fp.samples, fp.bits, fp.digests, cfg.hash_threshold, fp.scenes.same_scene(sim)))
    return {
        "method": sim.describe(), "config": asdict(sim), "pairs": len(above),
        "multi_image_groups": {"hash_only": groups_before, "with_same_scene": groups_after},
        "largest_group": {"hash_only": largest_before, "with_same_scene": largest_after},
        "just_above_threshold": named(above[-near:]), "just_below_threshold": named(below),
    }


def split_report(index: DataIndex, manifest: pd.DataFrame, cfg: SplitConfig,
                 groups: dict[int, list[int]], conflicts: set[int], samples: list[Sample],
                 bad: list[tuple[str, str]]) -> dict:
    """Counts, duplicate groups, excluded conflicts, skipped and ignored files (JSON-ready)."""
    counts = manifest.groupby(["split", "label"]).size()
    per_split = {sp: {CLASSES[lab]: int(n) for (s2, lab), n in counts.items() if s2 == sp}
                 for sp in ("train", "test", "excluded")}
    folds = manifest[manifest.fold >= 0].groupby(["fold", "label"]).size()
    return {
        "data_kind": index.kind,
        "data_root": index.root.name,
        "config": asdict(cfg),
        "dedup_method": f"dHash {HASH_SIDE * HASH_SIDE} bits, Hamming <= {cfg.hash_threshold}; "
                        f"identical pixels; same scene ({cfg.similarity.describe()}); "
                        "shared patient ID",
        "images": len(samples),
        "counts": per_split,
        "fold_counts": {int(k): {CLASSES[lab]: int(n) for (k2, lab), n in folds.items() if k2 == k}
                        for k in sorted(set(manifest.fold[manifest.fold >= 0]))},
        "groups": len(groups),
        "duplicate_groups": [[samples[i].id for i in m] for g, m in sorted(groups.items())
                             if len(m) > 1],
        "excluded_label_conflicts": [[f"{samples[i].id} ({CLASSES[samples[i].label]})" for i in groups[g]]
                                     for g in sorted(conflicts)],
        "skipped_bad_images": [{"path": p, "reason": r} for p, r in bad],
        "ignored_files": [{"path": p, "reason": r} for p, r in index.ignored],
    }


def write_manifest(manifest: pd.DataFrame, path: Path) -> Path:
    return write_csv(path, manifest[COLUMNS])


def read_manifest(path: Path) -> pd.DataFrame:
    """Read and validate a split manifest CSV."""
    if not path.is_file():
        raise BenchError(f"--split {path}: manifest file does not exist")
    df = read_table(path, tuple(COLUMNS), f"a manifest has {','.join(COLUMNS)}", "--split",
                    dtype={"id": str, "path": str, "group": str, "split": str},
                    keep_default_na=False)
    bad = set(df.split) - {"train", "test", "excluded"}
    if bad:
        raise BenchError(f"--split {path}: unknown split value(s) {sorted(bad)}")
    for col, allowed in (("label", "0 (benign) or 1 (malignant)"), ("fold", "an integer")):
        values = pd.to_numeric(df[col], errors="coerce")
        wrong = df[col][values.isna() | (values != values.round())]
        if col == "label":
            wrong = df[col][~values.isin([0, 1])]
        if len(wrong):
            line = int(wrong.index[0]) + 2
            raise BenchError(f"--split {path} line {line}: {col} {plain(wrong.iloc[0])!r} is "
                             f"not {allowed}; rebuild the manifest with python -m bench.split")
        df[col] = values.astype(int)
    # a training row's fold is its CV fold, 0..K-1, or -1 on every training row (no CV folds);
    # a negative fold would otherwise be taken modulo K into some fold
    train = df[df.split == "train"]
    bad_fold = train[(train.fold < -1) | ((train.fold == -1) & (train.fold >= 0).any())] \
        if len(train) else train
    if len(bad_fold):
        line = int(bad_fold.index[0]) + 2
        raise BenchError(f"--split {path} line {line}: fold {plain(bad_fold.fold.iloc[0])} of a "
                         "training image is not a CV fold (0, 1, ...; or -1 on every training "
                         "row for no CV); rebuild the manifest with python -m bench.split")
    return df[COLUMNS]


def check_leakage(manifest: pd.DataFrame, where: str, index: DataIndex | None = None,
                  sim: SimilarityConfig = SAME_SCENE) -> None:
    """Refuse a manifest in which an ID repeats, a group is in train and test or in two folds, or
    (with the data's ``index``) two images of one scene sit in train and test or in two folds."""
    dup = manifest.id[manifest.id.duplicated()]
    if len(dup):
        raise BenchError(f"{where}: image ID {dup.iloc[0]!r} appears twice; IDs must be unique")
    used = manifest[manifest.split != "excluded"]
    spread = used.groupby("group").split.nunique()
    if (spread > 1).any():
        g = spread[spread > 1].index[0]
        raise BenchError(f"{where}: duplicate group {g} is in both train and test (leakage); "
                         "rebuild the split with python -m bench.split")
    folds = used[used.split == "train"].groupby("group").fold.nunique()
    if (folds > 1).any():
        g = folds[folds > 1].index[0]
        raise BenchError(f"{where}: duplicate group {g} spans two CV folds (leakage); "
                         "rebuild the split with python -m bench.split")
    if index is not None:
        check_same_scene(manifest.reset_index(drop=True), index, where, sim)


# Float noise between machines moves z by ~1e-4; a manifest built with the same measure must not
# be refused over a pair that sat on the threshold when it was built.
GUARD_MARGIN = 0.05


def manifest_scores(manifest: pd.DataFrame, index: DataIndex,
                    sim: SimilarityConfig = SAME_SCENE) -> PairScores | None:
    """Same-scene scores over every manifest row, excluded ones too, as when the split was built
    (the contrast score depends on the whole set); ``None`` when images are missing or too few."""
    files = [index.root / p for p in manifest.path]
    if len(files) < 3 or not all(f.is_file() for f in files):
        return None

    def load(path: Path) -> Image.Image:
        try:
            return read_image(path)
        except BadImageError:  # reported (or skipped) where the images are decoded for training
            return Image.new("L", (64, 64))

    return pair_scores(files, None, sim, load=load)


def same_scene_leaks(manifest: pd.DataFrame, scores: PairScores, sim: SimilarityConfig = SAME_SCENE,
                     margin: float = 0.0) -> list[tuple[int, int, str]]:
    """Same-scene pairs across train/test (listed first) or across CV folds: ``(i, j, where)``."""
    rows = manifest.reset_index(drop=True)
    part = np.where(rows.split == "test", -2, rows.fold.to_numpy())
    part = np.where(rows.split == "excluded", -3, part)
    leaks = []
    for i, j in zip(*np.nonzero(scores.same_scene(sim, margin=margin)), strict=True):
        if part[i] == part[j] or -3 in (part[i], part[j]):
            continue
        test = "test" in (rows.split[i], rows.split[j])
        leaks.append((int(i), int(j), "in train and test" if test
                      else f"in CV folds {rows.fold[i]} and {rows.fold[j]}"))
    return sorted(leaks, key=lambda leak: leak[2] != "in train and test")


def check_same_scene(manifest: pd.DataFrame, index: DataIndex, where: str,
                     sim: SimilarityConfig) -> None:
    """The runtime leakage guard: no same-scene pair across train/test or across CV folds."""
    scores = manifest_scores(manifest, index, sim)
    if scores is None:
        return  # match_manifest reports missing images
    leaks = same_scene_leaks(manifest, scores, sim, margin=GUARD_MARGIN)
    if leaks:
        i, j, what = leaks[0]
        a, b = manifest.iloc[i], manifest.iloc[j]
        raise BenchError(
            f"{where}: {a.id!r} and {b.id!r} show the same scene (z {scores.z[i, j]:.2f}, NCC "
            f"{scores.ncc[i, j]:.2f}) but are {what} (leakage; {len(leaks)} such pair(s)); "
            "rebuild the split with python -m bench.split")


def match_manifest(manifest: pd.DataFrame, index: DataIndex, where: str) -> pd.DataFrame:
    """Check the manifest against the data: every listed image exists with the same label."""
    by_path = {s.path: s for s in index.samples}
    for row in manifest.itertuples(index=False):
        s = by_path.get(row.path)
        if s is None:
            raise BenchError(f"{where}: image {row.path!r} is not in the data at {index.root}; "
                             "is --data the data set this manifest was built from? For a subset "
                             "or another copy of it, build a manifest for it (python -m "
                             "bench.split --data DIR --out my_split.csv) and pass --split "
                             "my_split.csv")
        if s.label != int(row.label):
            raise BenchError(f"{where}: label of {row.path!r} is {row.label} in the manifest but "
                             f"{CLASSES[s.label]} in the data; rebuild the split")
    return manifest
