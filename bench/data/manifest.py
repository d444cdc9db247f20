"""Same-lesion grouping, held-out test selection and group-aware CV folds (docs/protocol.md).

Two images belong together when any of these holds:

* **same picture**: their 256-bit difference hashes (dHash: 17×16 grey thumbnail, sign of
  horizontal gradients) differ in at most ``hash_threshold`` bits (default 40 of 256; on BUSI the
  pair count is flat between 32 and 48 bits and rises steeply past 56), or their decoded pixels are
  identical;
* **same patient**: a shared patient ID;
* **same lesion**: the rule of :mod:`bench.data.lesion` (several kinds of evidence, a model fitted
  on pairs judged by eye, average-linkage grouping that does not snowball).

A group never straddles train/test or two folds; a group whose members carry different labels is
excluded and reported. :func:`check_leakage` applies the same grouping to any manifest it is given,
so a foreign or old manifest with a same-lesion group across train/test or folds is refused.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import StratifiedGroupKFold

from bench.core.atomic import write_csv
from bench.core.errors import BenchError, plain
from bench.core.paths import SPLITS_DIR
from bench.data.copies import dhash
from bench.data.images import BadImageError, read_image
from bench.data.index import CLASSES, DataIndex, Sample, read_table
from bench.data.lesion import (
    LesionRule,
    PairEvidence,
    announce,
    components,
    evidence_for,
    lesion_groups,
    load_rule,
    pair_links,
)

COLUMNS = ["id", "path", "label", "group", "split", "fold"]
HASH_SIDE = 16


@dataclass(frozen=True)
class SplitConfig:
    test_per_class: int = 50
    folds: int = 10
    seed: int = 2021
    hash_threshold: int = 40  # bits of the 256-bit dHash
    rule: LesionRule = field(default_factory=load_rule)


@dataclass
class Fingerprints:
    """What the split needs of each usable image: dHash bits, pixel digest, same-lesion evidence."""

    samples: list[Sample]
    bits: np.ndarray
    digests: list[str]
    evidence: PairEvidence
    bad: list[tuple[str, str]]
    reviewed: list[tuple[int, int]] = field(default_factory=list)  # judged the same lesion
    different: list[tuple[int, int]] = field(default_factory=list)  # judged different


def _grey(path: Path) -> tuple[Image.Image, np.ndarray, str]:
    img = read_image(path).convert("L")
    digest = hashlib.sha256(img.tobytes() + str(img.size).encode()).hexdigest()
    return img, dhash(img), digest


def decode(files: list[Path], skip_bad: bool) -> list[tuple[Image.Image, np.ndarray, str] | str]:
    """Grey image, dHash bits and pixel digest of each file (threads); an undecodable file gives
    its error message (or raises, unless ``skip_bad``)."""

    def one(path: Path):
        try:
            return _grey(path)
        except BadImageError as exc:
            if not skip_bad:
                raise
            return str(exc)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, files))


def fingerprints(index: DataIndex, skip_bad: bool, rule: LesionRule | None = None) -> Fingerprints:
    """Decode every sample once; bad images raise, or with ``skip_bad`` are skipped."""
    rule = rule or load_rule()
    announce([index.abspath(s) for s in index.samples], rule)  # before decoding: the long part
    decoded = decode([index.abspath(s) for s in index.samples], skip_bad)
    kept, bits, digests, images, bad = [], [], [], [], []
    for s, r in zip(index.samples, decoded, strict=True):
        if isinstance(r, str):
            bad.append((s.path, r))
        else:
            kept.append(s)
            images.append(r[0])
            bits.append(r[1])
            digests.append(r[2])
    ev = evidence_for([index.abspath(s) for s in kept], lambda: images, rule)
    return Fingerprints(kept, np.array(bits, dtype=bool).reshape(len(kept), -1), digests, ev, bad,
                        *reviewed_links(index.kind, kept))


REVIEWED = SPLITS_DIR


def reviewed_links(kind: str, samples: list[Sample], folder: Path = REVIEWED
                   ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Pairs judged by eye in ``<folder>/<kind>_pairs_reviewed.csv``, as index pairs of
    ``samples``: those judged the same lesion, which always group, and those judged different,
    whose own link is dropped; a pair judged unsure (or disputed) is left to the rule
    (docs/protocol.md, Same lesion: forcing every unsure pair to group would chain 460 of the 647
    BUSI images into one group). Used only when every image the file names is among
    ``samples`` (it was judged on this data)."""
    path = folder / f"{kind}_pairs_reviewed.csv"
    if not path.is_file():
        return [], []
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    pos = {s.id: k for k, s in enumerate(samples)}
    if not set(df.a) | set(df.b) <= pos.keys():
        return [], []

    def pairs(rows: pd.DataFrame) -> list[tuple[int, int]]:
        return [(pos[a], pos[b]) for a, b in zip(rows.a, rows.b, strict=True)]

    return pairs(df[df.verdict == "same"]), pairs(df[df.verdict == "different"])


def hard_links(samples: list[Sample], bits: np.ndarray, digests: list[str], threshold: int,
               reviewed: list[tuple[int, int]] = ()) -> np.ndarray:
    """Components of the same-picture (dHash, identical pixels), same-patient and reviewed
    same-lesion links → root."""
    n = len(samples)
    links: list[tuple[int, int]] = list(reviewed)
    packed = np.packbits(bits, axis=1)
    for i in range(n - 1):
        dist = np.unpackbits(packed[i] ^ packed[i + 1:], axis=1).sum(axis=1)
        links += [(i, i + 1 + int(j)) for j in np.nonzero(dist <= threshold)[0]]
    for keys in (digests, [s.group for s in samples]):
        first: dict[str, int] = {}
        links += [(i, first.setdefault(k, i)) for i, k in enumerate(keys) if k]
    return components(n, links)


def group_images(fp: Fingerprints, cfg: SplitConfig, margin: float = 0.0,
                 method: str = "average") -> np.ndarray:
    """Group label of each usable image (same picture, same patient, same lesion).

    Where every image carries a patient ID, the patient is the group and the same-lesion rule,
    which stands in for missing patient IDs, is not applied across patients (docs/protocol.md,
    "Images that belong together"): a rule fitted on one scanner's images links different
    patients' look-alike lesions on another's. Same pictures still link across patients."""
    hard = hard_links(fp.samples, fp.bits, fp.digests, cfg.hash_threshold, fp.reviewed)
    if fp.samples and all(s.group for s in fp.samples):
        return hard  # root = first member's index, as lesion_groups labels
    return lesion_groups(fp.evidence, cfg.rule, hard, method=method, margin=margin,
                         unlinked=fp.different)


def _exact_groups(sizes: list[int], target: int) -> list[int] | None:
    """Positions of ``sizes`` that sum to ``target`` (the earliest such set in the list's order,
    by subset-sum over the sizes), or ``None`` when no set of them does."""
    reach: list[list[int] | None] = [[]] + [None] * target
    for k, size in enumerate(sizes):
        for total in range(target, size - 1, -1):
            if reach[total] is None and reach[total - size] is not None:
                reach[total] = [*reach[total - size], k]
    return reach[target]


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
        if need:  # the greedy draw missed: any set of whole groups of exactly per_class
            exact = _exact_groups([len(groups[g]) for g in keys], per_class)
            if exact is not None:
                chosen -= set(keys)
                chosen |= {keys[k] for k in exact}
                need = 0
        if need:
            total = sum(len(groups[g]) for g in keys)
            if total < per_class:
                raise BenchError(
                    f"too few usable {name} images for a held-out test of {per_class} per class "
                    f"(only {total} after removing duplicate-label conflicts); add data or lower "
                    "`test_per_class`")
            sizes = sorted((len(groups[g]) for g in keys), reverse=True)
            raise BenchError(
                f"cannot hold out exactly {per_class} {name} images as whole groups: the {total} "
                f"usable {name} images form {len(keys)} groups (same picture, patient or lesion; "
                f"largest {sizes[0]}), a group is never split, and no set of whole groups adds "
                f"up to {per_class}; choose another `test_per_class` or add data")
    return chosen


def make_split(index: DataIndex, cfg: SplitConfig | None = None, skip_bad: bool = False
               ) -> tuple[pd.DataFrame, dict]:
    """Build the manifest (``id,path,label,group,split,fold``) and the split report."""
    cfg = cfg or SplitConfig()
    fp = fingerprints(index, skip_bad, cfg.rule)
    samples, bad = fp.samples, fp.bad
    labels = np.array([s.label for s in samples])
    roots = group_images(fp, cfg)
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
                             "add data, lower `test_per_class` or `folds`")
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
    report["same_lesion"] = lesion_summary(fp, cfg)
    return manifest, report


def lesion_summary(fp: Fingerprints, cfg: SplitConfig, near: int = 12) -> dict:
    """How the same-lesion rule grouped the images: candidate pairs and links, group sizes under
    same-picture links alone, single linkage (what chaining would do) and the average linkage
    used; the pairs either side of the rule's threshold (for the contact sheet)."""
    rule, ev = cfg.rule, fp.evidence
    hard = hard_links(fp.samples, fp.bits, fp.digests, cfg.hash_threshold)
    p = rule.probability(ev.features) if len(ev.pairs) else np.zeros(0)
    order = np.argsort(-p, kind="stable")
    above = [k for k in order if p[k] >= rule.threshold][-near:]
    below = [k for k in order if p[k] < rule.threshold][:near]

    def named(ks):
        return [{"a": fp.samples[ev.pairs[k, 0]].id, "b": fp.samples[ev.pairs[k, 1]].id,
                 "p": round(float(p[k]), 3), "nccz": round(float(ev.column("nccz")[k]), 2),
                 "embz": round(float(ev.column("embz")[k]), 2)} for k in ks]

    def sizes(labels: np.ndarray) -> dict:
        _, counts = np.unique(labels, return_counts=True)
        return {"multi_image_groups": int((counts > 1).sum()), "largest_group": int(counts.max())}

    average = group_images(fp, cfg)
    biggest = np.bincount(np.unique(average, return_inverse=True)[1]).argmax()
    members = [fp.samples[i].id for i in np.nonzero(
        np.unique(average, return_inverse=True)[1] == biggest)[0]]
    return {
        "method": rule.describe(), "rule": rule.settings(), "validation": rule.validation,
        "candidate_pairs": int(len(ev.pairs)), "pairs_called_same": len(pair_links(ev, rule)),
        "reviewed_pairs_linked": len(fp.reviewed),
        "same_picture_only": sizes(hard),
        "single_linkage": sizes(group_images(fp, cfg, method="single")),
        "average_linkage": sizes(average), "largest_group_members": members,
        "just_above_threshold": named(above), "just_below_threshold": named(below),
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
        "config": {**{k: v for k, v in asdict(cfg).items() if k != "rule"},
                   "rule": cfg.rule.settings()},
        "dedup_method": f"dHash {HASH_SIDE * HASH_SIDE} bits, Hamming <= {cfg.hash_threshold}; "
                        f"identical pixels; shared patient ID; {cfg.rule.describe()}",
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
        raise BenchError(f"`split` {path}: manifest file does not exist")
    df = read_table(path, tuple(COLUMNS), f"a manifest has {','.join(COLUMNS)}", "`split`",
                    dtype={"id": str, "path": str, "group": str, "split": str},
                    keep_default_na=False)
    bad = set(df.split) - {"train", "test", "excluded"}
    if bad:
        raise BenchError(f"`split` {path}: unknown split value(s) {sorted(bad)}")
    for col, allowed in (("label", "0 (benign) or 1 (malignant)"), ("fold", "an integer")):
        values = pd.to_numeric(df[col], errors="coerce")
        wrong = df[col][values.isna() | (values != values.round())]
        if col == "label":
            wrong = df[col][~values.isin([0, 1])]
        if len(wrong):
            line = int(wrong.index[0]) + 2
            raise BenchError(f"`split` {path} line {line}: {col} {plain(wrong.iloc[0])!r} is "
                             f"not {allowed}; rebuild the manifest with python -m bench.split")
        df[col] = values.astype(int)
    # a training row's fold is its CV fold, 0..K-1, or -1 on every training row (no CV folds);
    # a negative fold would otherwise be taken modulo K into some fold
    train = df[df.split == "train"]
    bad_fold = train[(train.fold < -1) | ((train.fold == -1) & (train.fold >= 0).any())] \
        if len(train) else train
    if len(bad_fold):
        line = int(bad_fold.index[0]) + 2
        raise BenchError(f"`split` {path} line {line}: fold {plain(bad_fold.fold.iloc[0])} of a "
                         "training image is not a CV fold (0, 1, ...; or -1 on every training "
                         "row for no CV); rebuild the manifest with python -m bench.split")
    return df[COLUMNS]


def check_leakage(manifest: pd.DataFrame, where: str, index: DataIndex | None = None,
                  cfg: SplitConfig | None = None) -> None:
    """Refuse a manifest in which an ID repeats, a group is in train and test or in two folds, or
    (with the data's ``index``) one same-lesion group of the split's rule sits in train and test
    or in two folds."""
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
        check_same_lesion(manifest.reset_index(drop=True), index, where, cfg or SplitConfig())


# Float noise between machines moves the evidence slightly; a manifest built with the same rule
# must not be refused over a link that sat on the cut when it was built, so the guard cuts the
# linkage a little higher (a finer grouping: every guard group lies inside a split group).
GUARD_MARGIN = 0.05


def manifest_fingerprints(manifest: pd.DataFrame, index: DataIndex, cfg: SplitConfig
                          ) -> Fingerprints | None:
    """Fingerprints of every manifest row, excluded ones too, as when the split was built (the
    contrast scores depend on the whole set); ``None`` when images are missing or too few."""
    files = [index.root / p for p in manifest.path]
    if len(files) < 3 or not all(f.is_file() for f in files):
        return None
    announce(files, cfg.rule)  # before decoding: the long part
    decoded = [r if not isinstance(r, str) else (Image.new("L", (64, 64)), np.zeros(
        HASH_SIDE * HASH_SIDE, bool), f"unreadable:{k}") for k, r in enumerate(decode(files, True))]
    by_path = {s.path: s for s in index.samples}
    samples = [by_path.get(p) or Sample(id=i, path=p, label=int(lab))
               for i, p, lab in zip(manifest.id, manifest.path, manifest.label, strict=True)]
    images = [d[0] for d in decoded]
    ev = evidence_for(files, lambda: images, cfg.rule)
    return Fingerprints(samples, np.array([d[1] for d in decoded], dtype=bool),
                        [d[2] for d in decoded], ev, [], *reviewed_links(index.kind, samples))


def lesion_leaks(manifest: pd.DataFrame, labels: np.ndarray) -> list[tuple[int, int, str]]:
    """One image pair per same-lesion group and pair of sides that the manifest separates:
    ``(i, j, where)``, train/test first, then across CV folds."""
    rows = manifest.reset_index(drop=True)
    part = np.where(rows.split == "test", -2, rows.fold.to_numpy())
    part = np.where(rows.split == "excluded", -3, part)
    leaks = []
    for g in np.unique(labels):
        members = [i for i in np.nonzero(labels == g)[0] if part[i] != -3]
        first: dict[int, int] = {}
        for i in members:
            first.setdefault(int(part[i]), int(i))
        sides = sorted(first)
        for a in range(len(sides)):
            for b in range(a + 1, len(sides)):
                i, j = first[sides[a]], first[sides[b]]
                test = -2 in (sides[a], sides[b])
                leaks.append((i, j, "in train and test" if test
                              else f"in CV folds {rows.fold[i]} and {rows.fold[j]}"))
    return sorted(leaks, key=lambda leak: leak[2] != "in train and test")


def check_same_lesion(manifest: pd.DataFrame, index: DataIndex, where: str, cfg: SplitConfig
                      ) -> None:
    """The runtime leakage guard: no same-lesion group across train/test or across CV folds."""
    fp = manifest_fingerprints(manifest, index, cfg)
    if fp is None:
        return  # match_manifest reports missing images
    leaks = lesion_leaks(manifest, group_images(fp, cfg, margin=GUARD_MARGIN))
    if leaks:
        i, j, what = leaks[0]
        a, b = manifest.iloc[i], manifest.iloc[j]
        raise BenchError(
            f"{where}: {a.id!r} and {b.id!r} belong to one same-lesion group but are {what} "
            f"(leakage; {len(leaks)} such split group(s)); rebuild the split with python -m "
            "bench.cli.split")


def match_manifest(manifest: pd.DataFrame, index: DataIndex, where: str) -> pd.DataFrame:
    """Check the manifest against the data: every listed image exists with the same label."""
    by_path = {s.path: s for s in index.samples}
    for row in manifest.itertuples(index=False):
        s = by_path.get(row.path)
        if s is None:
            raise BenchError(f"{where}: image {row.path!r} is not in the data at {index.root}; "
                             "is `data` the data set this manifest was built from? For a subset "
                             "or another copy of it, build a manifest for it (python -m "
                             "bench.split --data DIR --out my_split.csv) and pass `split` "
                             "my_split.csv")
        if s.label != int(row.label):
            raise BenchError(f"{where}: label of {row.path!r} is {row.label} in the manifest but "
                             f"{CLASSES[s.label]} in the data; rebuild the split")
    return manifest
