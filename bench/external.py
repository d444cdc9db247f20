"""External validation (SPEC §3): a model trained on data set A, scored unchanged on data set B.

After a run's final fit, every usable image of each external set is scored once with the final
weights, the run's preprocessing (input size, channels, the model's normalisation) and the
threshold 0.5; nothing of B touches training, flip-balancing or any choice of settings. Images of B
that are the same picture or the same scene as a training image of A (the split's measures,
:mod:`bench.data.manifest`) are reported and left out of B's metrics, with the count.

Each set gets ``<run>/external/<name>/predictions.csv`` (the run's prediction columns plus the
patient ``group`` where the set has one) and ``metrics.json`` (metrics, counts, the excluded
duplicates, the content hash of B's images and the SHA-256 of the weights that scored it). A run
that already scored a set with the same weights and the same images reuses it; adding
``--external`` to a finished run only scores.

External sets are given as data paths (any layout :func:`bench.data.datasets.load_index` reads) or
as ``synthetic:B``, the phantom's second site (another scanner; :mod:`bench.data.synthetic`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.atomic import write_csv, write_json
from bench.data.cache import build_cache
from bench.data.content import content_sha256
from bench.data.datasets import load_index
from bench.data.index import DataIndex, Sample
from bench.data.manifest import SplitConfig, fingerprints
from bench.data.similarity import cross_contrast
from bench.data.synthetic import SITES, PhantomSpec
from bench.errors import BenchError
from bench.metrics import binary_metrics
from bench.protocol import load_weights
from bench.provenance import file_sha256, from_portable, recorded_location
from bench.spec import Execution, RunSpec
from bench.stages import PRED_COLUMNS
from bench.train import predict
from models import create_model, get_model_config

# the phantom's second site as an external set: another scanner and population (not the seed,
# size or class mix of the training phantom)
EXTERNAL_PHANTOM = {"n_benign": 200, "n_malignant": 200, "seed": 1}


@dataclass
class ExternalSet:
    """An external data set to score: its name (the folder under ``external/``) and its index."""

    name: str
    source: str  # synthetic:B, or the path resolved and made portable (relative to the project)
    index: DataIndex
    given: str = ""  # as the user typed it (for messages)

    @property
    def shown(self) -> str:
        return self.given or self.source


# names an external set cannot take: the run's own splits (explanations and tables key image sets
# by name, so an external "test" would merge with the held-out test set)
RESERVED_NAMES = ("test", "train", "val", "excluded", "internal test")


def phantom_site(value: str) -> DataIndex:
    """``synthetic:B``: the phantom's second site as an external set."""
    site = value.split(":", 1)[1]
    if site not in SITES:
        raise BenchError(f"--external {value}: unknown phantom site {site!r}; sites are "
                         f"{', '.join(SITES)}")
    return load_index(None, synthetic=PhantomSpec(**EXTERNAL_PHANTOM, site=site))


def external_index(source: str) -> DataIndex:
    """The images of a recorded external ``source`` (``synthetic:B``, or a path recorded
    relative to the project: :func:`bench.provenance.from_portable`, never the current folder)."""
    if source.startswith("synthetic:"):
        return phantom_site(source)
    path = from_portable(source)
    try:
        return load_index(path)
    except BenchError as exc:
        raise BenchError(f"external set {source}: {exc}") from None


def split_name(value: str) -> tuple[str | None, str]:
    """``NAME=PATH`` → (name, path); a plain path (or one that exists as given) → (None, path)."""
    name, sep, rest = value.partition("=")
    if sep and rest and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) and \
            not Path(value).exists():
        return name.lower(), rest
    return None, value


def resolve_external(values: list[str]) -> list[ExternalSet]:
    """Read every external set now (before any training), so a bad one stops the run early.
    A set is named after its folder (or ``NAME=PATH``); names are unique and never one of the
    run's own splits (:data:`RESERVED_NAMES`). Paths are recorded resolved (relative to the
    project when inside it), so later readers find them from any working directory."""
    sets: list[ExternalSet] = []
    for given in values:
        name, value = split_name(given)
        if value.startswith("synthetic:"):
            index = phantom_site(value)
            name = name or f"synthetic-site{value.split(':', 1)[1]}"
            source = value
        else:
            path = Path(value)
            try:
                index = load_index(path)
            except BenchError as exc:
                raise BenchError(f"--external {given}: {exc}") from None
            name = name or (path.stem if path.is_file() else path.resolve().name).lower()
            source = recorded_location(path)
        if not index.samples:
            raise BenchError(f"--external {given}: the data set has no benign or malignant images")
        if name in RESERVED_NAMES:
            raise BenchError(f"--external {given}: the name {name!r} is one of the run's own "
                             f"splits; name the set with --external NAME={value}")
        if any(s.name == name for s in sets):
            raise BenchError(f"--external: two sets are both called {name!r}; name one with "
                             f"--external NAME={value}")
        sets.append(ExternalSet(name, source, index, given))
    return sets


def check_same_source(run_dir: Path, ext: ExternalSet, data_sha: str) -> None:
    """An external set name is scored from one source only: another set of the same name (e.g.
    ``a/ext`` and then ``b/ext``) would replace the first one's scores. The same images under
    another recorded path (an older record) are the same set."""
    done = run_dir / "external" / ext.name / "metrics.json"
    if not done.is_file():
        return
    try:
        old = json.loads(done.read_text())
    except (OSError, ValueError):
        return
    source = old.get("source")
    if source is not None and source != ext.source and old.get("content_sha256") != data_sha:
        raise BenchError(f"--external {ext.shown}: {run_dir.name} already has an external set "
                         f"named {ext.name!r}, scored from {source}; name this one with "
                         f"--external NAME={ext.shown}")


def _training_duplicates(ext: ExternalSet, train: DataIndex, skip_bad: bool
                         ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """External IDs that show the same picture or the same scene as a training image (→ that
    image's ID), and the external images that could not be decoded.

    Same picture: identical pixels or dHash within the split's threshold. Same scene: the split's
    measure, with every z standardised over the training images (the population the split used),
    so a second site's images do not dilute it."""
    both = DataIndex(kind=ext.index.kind, root=Path("/"), samples=[
        *[Sample(id=f"train:{s.id}", path=str(train.root / s.path), label=s.label)
          for s in train.samples],
        *[Sample(id=f"external:{s.id}", path=str(ext.index.root / s.path), label=s.label)
          for s in ext.index.samples]])
    fp = fingerprints(both, skip_bad=True)
    bad = [(p, r) for p, r in fp.bad if p.startswith(str(ext.index.root))]
    if bad and not skip_bad:
        raise BenchError(f"--external {ext.source}: {bad[0][1]}")
    n_ref = sum(s.id.startswith("train:") for s in fp.samples)
    if any(s.id.startswith("train:") for s in fp.samples[n_ref:]):
        raise BenchError("training images could not be decoded while scoring --external")
    cfg = SplitConfig()
    z = cross_contrast(fp.scenes.ncc, n_ref)
    ncc = fp.scenes.ncc[n_ref:, :n_ref]
    packed = np.packbits(fp.bits, axis=1)
    dups: dict[str, str] = {}
    for a, s in enumerate(fp.samples[n_ref:]):
        bits = np.unpackbits(packed[n_ref + a] ^ packed[:n_ref], axis=1).sum(axis=1)
        same = (bits <= cfg.hash_threshold) | np.array(
            [d == fp.digests[n_ref + a] for d in fp.digests[:n_ref]])
        same |= (z[a] >= cfg.similarity.z_threshold) & (ncc[a] >= cfg.similarity.min_ncc)
        if same.any():
            b = int(np.argmax(np.where(same, z[a], -np.inf)))
            dups[s.id.removeprefix("external:")] = fp.samples[b].id.removeprefix("train:")
    return dups, bad


def score_external(run_dir: Path, spec: RunSpec, ex: Execution, ext: ExternalSet,
                   train_index: DataIndex, manifest: pd.DataFrame) -> dict:
    """Score one external set with the run's final weights; returns its ``metrics.json``."""
    folder = run_dir / "external" / ext.name
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise BenchError(f"{run_dir.name}: no final weights to score --external {ext.shown} "
                         "with (the final fit failed)")
    paths = [s.path for s in ext.index.samples]
    data_sha = content_sha256(ext.index.root, paths)
    check_same_source(run_dir, ext, data_sha)
    weights_sha = file_sha256(weights)
    done = folder / "metrics.json"
    if done.is_file() and (folder / "predictions.csv").is_file():
        old = json.loads(done.read_text())
        if old.get("content_sha256") == data_sha and old.get("weights_sha256") == weights_sha \
                and old.get("predictions_sha256") == file_sha256(folder / "predictions.csv"):
            print(f"external {ext.name}: reusing its scores (same weights, same images)")
            return old
    train_rows = manifest[manifest.split == "train"]
    by_path = {s.path: s for s in train_index.samples}
    train = DataIndex(train_index.kind, train_index.root,
                      [by_path[p] for p in train_rows.path if p in by_path])
    dups, bad = _training_duplicates(ext, train, spec.skip_bad_images)
    keep = [s for s in ext.index.samples if s.id not in dups
            and all(not b.endswith(s.path) for b, _ in bad)]
    labels = {s.label for s in keep}
    if labels != {0, 1}:
        raise BenchError(f"--external {ext.source}: after leaving out {len(dups)} duplicate(s) of "
                         f"training images and {len(bad)} unreadable image(s), "
                         f"{'no images are' if not keep else 'only one class is'} left; an "
                         "external set needs benign and malignant images")
    rows = pd.DataFrame({"id": [s.id for s in keep], "path": [s.path for s in keep],
                         "label": [s.label for s in keep], "group": [s.group for s in keep]})
    cache, skipped = build_cache(ext.index.root, rows, spec.img_size, spec.channels,
                                 skip_bad=spec.skip_bad_images)
    model = final_model(spec, weights)
    probs = predict(model, get_model_config(spec.model), cache, np.arange(len(cache)),
                    device=ex.device, channels_last=ex.channels_last)
    preds = cache.rows.assign(prob_malignant=probs, split="external", fold=-1)
    preds = preds[[*PRED_COLUMNS, "group"]]
    metrics = {
        "external_set": ext.name, "source": ext.source, "data_kind": ext.index.kind,
        "content_sha256": data_sha, "weights_sha256": weights_sha,
        "images": len(ext.index.samples), "scored": int(len(preds)),
        "excluded_training_duplicates": len(dups),
        "excluded": [{"id": k, "duplicate_of_training_image": v} for k, v in sorted(dups.items())],
        "skipped_bad_images": [{"path": p, "reason": r} for p, r in [*bad, *skipped]],
        "has_patient_ids": bool(any(s.group for s in keep)),
        "test": binary_metrics(preds.label, preds.prob_malignant),
    }
    write_csv(folder / "predictions.csv", preds)
    metrics["predictions_sha256"] = file_sha256(folder / "predictions.csv")  # the report verifies it
    write_json(done, metrics)
    print(f"external {ext.name}: scored {len(preds)} images (left out {len(dups)} duplicate(s) of "
          f"training images); AUC {metrics['test']['auc']:.3f}, accuracy "
          f"{metrics['test']['accuracy']:.3f}")
    return metrics


def final_model(spec: RunSpec, weights: Path) -> torch.nn.Module:
    """The run's final model: its architecture (no download) with the saved weights. Weights that
    do not fit the architecture (another model's, or damaged) are a one-line error."""
    model = create_model(spec.model, **{**spec.model_kwargs, "pretrained": "none"})
    try:
        return load_weights(model, weights)
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        first = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise BenchError(f"{weights}: these weights do not fit {spec.model} ({first}); rerun "
                         "the run to recreate them") from None
