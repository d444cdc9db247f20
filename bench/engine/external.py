"""External validation (docs/protocol.md, External validation): a model trained on data set A, scored unchanged on data set B.

After a run's final fit, every usable image of each external set is scored once with the final
weights, the run's preprocessing (input size, channels, the model's normalisation) and the
threshold 0.5; nothing of B touches training, flip-balancing or any choice of settings. Across
data sets only the same picture counts as a duplicate (:mod:`bench.data.copies`: identical pixels,
a re-saved, rescaled or cropped copy): look-alike lesions of another site are not duplicates, and
leaving them out would remove the easy cases and bias the external AUC. The headline metrics use
every scored image; copies of training images are listed with their evidence, shown beside their
training image on ``copies_01.png``, and the metrics without them are given as well.

Each set gets ``<run>/external/<name>/predictions.csv`` (the run's prediction columns, the patient
``group`` where the set has one and ``training_copy``, the training image an image copies) and
``metrics.json`` (metrics on all images and without the copies, counts, the copies, the content
hash of B's images and the SHA-256 of the weights that scored it). A run
that already scored a set with the same weights and the same images reuses it; adding
``--external`` to a finished run only scores.

With ``--adapt-bn target`` (or its control ``source``; :mod:`bench.engine.adaptation`) the
BatchNorm statistics of a copy of the final model are re-estimated on the unlabelled external
images (or on the run's training images) before scoring; such a scoring is written to
``external/<name>/adapt-bn-<mode>/`` with the adaptation in its ``metrics.json`` (``adapt_bn``),
so it never replaces the set's own scores.

External sets are given as data paths (any layout :func:`bench.data.datasets.load_index` reads) or
as ``synthetic:B``, the phantom's second site (another scanner; :mod:`bench.data.synthetic`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.core.errors import BenchError
from bench.core.provenance import file_sha256, from_portable, recorded_location
from bench.data.cache import build_cache
from bench.data.content import content_sha256
from bench.data.copies import find_copies, pictures
from bench.data.datasets import load_index
from bench.data.images import BadImageError
from bench.data.index import DataIndex
from bench.data.review import tile_pairs
from bench.data.synthetic import SITES, PhantomSpec
from bench.engine.adaptation import (
    adapt_batchnorm,
    adaptation_folder,
    adaptation_record,
    batchnorm_layers,
    check_mode,
)
from bench.engine.protocol import load_weights
from bench.engine.runfolder import PRED_COLUMNS, ExternalFolder, RunFolder
from bench.engine.spec import Execution, RunSpec
from bench.engine.train import predict
from bench.stats.metrics import binary_metrics
from models import create_model, get_model_config

log = logging.getLogger(__name__)

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
        raise BenchError(f"`external` {value}: unknown phantom site {site!r}; sites are "
                         f"{', '.join(SITES)}")
    return load_index(None, synthetic=PhantomSpec(**EXTERNAL_PHANTOM, site=site))


def external_index(source: str) -> DataIndex:
    """The images of a recorded external ``source`` (``synthetic:B``, or a path recorded
    relative to the project: :func:`bench.core.provenance.from_portable`, never the current folder)."""
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
                raise BenchError(f"`external` {given}: {exc}") from None
            name = name or (path.stem if path.is_file() else path.resolve().name).lower()
            source = recorded_location(path)
        if not index.samples:
            raise BenchError(f"`external` {given}: the data set has no benign or malignant images")
        if name in RESERVED_NAMES:
            raise BenchError(f"`external` {given}: the name {name!r} is one of the run's own "
                             f"splits; name the set with `external` NAME={value}")
        if any(s.name == name for s in sets):
            raise BenchError(f"`external`: two sets are both called {name!r}; name one with "
                             f"`external` NAME={value}")
        sets.append(ExternalSet(name, source, index, given))
    return sets


def check_same_source(folder: RunFolder, ext: ExternalSet, data_sha: str) -> None:
    """An external set name is scored from one source only: another set of the same name (e.g.
    ``a/ext`` and then ``b/ext``) would replace the first one's scores. The same images under
    another recorded path (an older record) are the same set."""
    old = folder.external(ext.name).record()
    if old is None:
        return
    source = old.get("source")
    if source is not None and source != ext.source and old.get("content_sha256") != data_sha:
        raise BenchError(f"`external` {ext.shown}: {folder.name} already has an external set "
                         f"named {ext.name!r}, scored from {source}; name this one with "
                         f"`external` NAME={ext.shown}")


Copies = tuple[dict[str, tuple[str, str]], list[tuple[str, str]]]
# training_copies per process: every seed and model of a suite scores the same external set
# against the same training images, and the copy test is the slow part of scoring (it decodes
# and describes every image); keyed by both sets' files as they are on disk
_COPIES: dict[tuple, Copies] = {}


def _on_disk(index: DataIndex) -> tuple:
    out = []
    for s in index.samples:
        path = index.abspath(s)
        try:
            st = path.stat()
            out.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)


def training_copies(ext: ExternalSet, train: DataIndex, skip_bad: bool) -> Copies:
    """External IDs that are a copy of a training image's picture (→ that image's ID and the
    evidence), and the external images that could not be decoded. Only the same picture counts
    across data sets (:mod:`bench.data.copies`), never a look-alike lesion. Computed once per
    process for the same files."""
    key = (_on_disk(ext.index), tuple(s.id for s in ext.index.samples), _on_disk(train),
           tuple(s.id for s in train.samples), skip_bad)
    if key not in _COPIES:
        if len(_COPIES) >= 4:  # a suite scores a few external sets; keep memory flat
            _COPIES.pop(next(iter(_COPIES)))
        _COPIES[key] = _find_training_copies(ext, train, skip_bad)
    copies, bad = _COPIES[key]
    return dict(copies), list(bad)


def _find_training_copies(ext: ExternalSet, train: DataIndex, skip_bad: bool) -> Copies:
    log.info(f"external {ext.name}: looking for copies of the {len(train.samples)} training images "
             f"among its {len(ext.index.samples)} images (same picture; once per process)")
    ref = pictures([train.abspath(s) for s in train.samples])
    if any(isinstance(p, BadImageError) for p in ref):
        raise BenchError("training images could not be decoded while scoring `external`")
    new = pictures([ext.index.abspath(s) for s in ext.index.samples])
    bad = [(s.path, str(p)) for s, p in zip(ext.index.samples, new, strict=True)
           if isinstance(p, BadImageError)]
    if bad and not skip_bad:
        raise BenchError(f"`external` {ext.source}: {bad[0][1]}")
    usable = [(s, p) for s, p in zip(ext.index.samples, new, strict=True)
              if not isinstance(p, BadImageError)]
    found = find_copies([p for _, p in usable], ref)
    return {usable[c.new][0].id: (train.samples[c.ref].id, c.evidence) for c in found}, bad


def copies_sheet(folder: Path, ext: ExternalSet, train: DataIndex,
                 copies: dict[str, tuple[str, str]]) -> Path | None:
    """Contact sheet of the external images left out as copies, beside their training image."""
    if not copies:
        return None
    ext_by, train_by = ({s.id: s for s in ix.samples} for ix in (ext.index, train))
    rows = [((ext.index, ext_by[e], f"external {e}"), (train, train_by[t], f"training {t}: {why}"))
            for e, (t, why) in sorted(copies.items())]
    return tile_pairs(rows, folder, stem="copies")[0]


def training_subset(train_index: DataIndex, manifest: pd.DataFrame) -> DataIndex:
    """The run's training images (the manifest's ``train`` rows) as an index."""
    by_path = {s.path: s for s in train_index.samples}
    return DataIndex(train_index.kind, train_index.root,
                     [by_path[p] for p in manifest.path[manifest.split == "train"] if p in by_path])


def source_images(spec: RunSpec, train: DataIndex) -> torch.Tensor:
    """The run's training images at its input size (unflipped, unaugmented), without labels: what
    ``--adapt-bn source`` re-estimates the statistics on."""
    rows = pd.DataFrame({"path": [s.path for s in train.samples], "label": 0})  # never read
    cache, _ = build_cache(train.root, rows, spec.img_size, spec.channels,
                           skip_bad=spec.skip_bad_images)
    return cache.images


def scored_predictions(spec: RunSpec, ex: Execution, weights: Path, ext: ExternalSet,
                       keep: list, copies: dict[str, tuple[str, str]], adapt_bn: str = "none",
                       train: DataIndex | None = None) -> tuple[pd.DataFrame, list, dict | None]:
    """P(malignant) of the usable external images with the final weights, in the run's
    prediction columns plus ``group`` and ``training_copy``; the images the cache skipped; and the
    adaptation's record (``None`` for ``adapt_bn`` none). ``adapt_bn`` target re-estimates the
    BatchNorm statistics on these images' pixels only, source on ``train``'s."""
    rows = pd.DataFrame({"id": [s.id for s in keep], "path": [s.path for s in keep],
                         "label": [s.label for s in keep], "group": [s.group for s in keep]})
    cache, skipped = build_cache(ext.index.root, rows, spec.img_size, spec.channels,
                                 skip_bad=spec.skip_bad_images)
    model = final_model(spec, weights)
    cfg = get_model_config(spec.model)
    record = None
    if check_mode(adapt_bn) != "none":
        images = cache.images if adapt_bn == "target" else source_images(spec, train)
        model = adapt_batchnorm(model, cfg, images, device=ex.device,
                                batch_size=spec.batch_size, channels_last=ex.channels_last)
        record = adaptation_record(adapt_bn, len(images), len(batchnorm_layers(model)),
                                   spec.batch_size)
    probs = predict(model, cfg, cache, np.arange(len(cache)),
                    device=ex.device, channels_last=ex.channels_last)
    preds = cache.rows.assign(prob_malignant=probs, split="external", fold=-1)
    preds["training_copy"] = preds.id.map(lambda i: copies.get(i, ("", ""))[0])
    return preds[[*PRED_COLUMNS, "group", "training_copy"]], skipped, record


def result_folder(folder: RunFolder, name: str, adapt_bn: str) -> ExternalFolder:
    """Where a scoring of set ``name`` with ``adapt_bn`` goes: ``external/<name>/`` for none,
    ``external/<name>/adapt-bn-<mode>/`` otherwise (one folder per adaptation: none replaces
    another)."""
    base = folder.external(name)
    sub = adaptation_folder(adapt_bn)
    return ExternalFolder(base.path / sub) if sub else base


def score_external(folder: RunFolder, spec: RunSpec, ex: Execution, ext: ExternalSet,
                   train_index: DataIndex, manifest: pd.DataFrame, adapt_bn: str = "none"
                   ) -> dict:
    """Score one external set with the run's final weights (BatchNorm adapted as ``adapt_bn``
    says: :mod:`bench.engine.adaptation`); returns its ``metrics.json``."""
    weights = folder.weights
    if not weights.is_file():
        raise BenchError(f"{folder.name}: no final weights to score `external` {ext.shown} "
                         "with (the final fit failed)")
    data_sha = content_sha256(ext.index.root, [s.path for s in ext.index.samples])
    check_same_source(folder, ext, data_sha)
    weights_sha = file_sha256(weights)
    out = result_folder(folder, ext.name, adapt_bn)
    shown = ext.name if adapt_bn == "none" else f"{ext.name} (BatchNorm adapted: {adapt_bn})"
    old = out.reusable(data_sha, weights_sha)
    if old is not None:
        log.info(f"external {shown}: reusing its scores (same weights, same images)")
        return old
    step = f"external/{ext.name}" + (f"/{out.path.name}" if adapt_bn != "none" else "")
    with folder.timed(step):
        metrics = _score(folder, spec, ex, ext, train_index, manifest, data_sha, weights_sha,
                         adapt_bn)
    log.info(f"external {shown}: scored {metrics['scored']} images ({metrics['training_copies']} "
              "of them copies of training images, kept in the headline metrics); AUC "
               f"{metrics['test']['auc']:.3f}, accuracy {metrics['test']['accuracy']:.3f}")
    return metrics


def _score(folder: RunFolder, spec: RunSpec, ex: Execution, ext: ExternalSet,
           train_index: DataIndex, manifest: pd.DataFrame, data_sha: str, weights_sha: str,
           adapt_bn: str = "none") -> dict:
    """Score ``ext`` (copies of training images found and flagged) and write its folder."""
    out = result_folder(folder, ext.name, adapt_bn)
    train = training_subset(train_index, manifest)
    copies, bad = training_copies(ext, train, spec.skip_bad_images)
    unreadable = {p for p, _ in bad}
    keep = [s for s in ext.index.samples if s.path not in unreadable]
    if {s.label for s in keep} != {0, 1}:
        raise BenchError(f"`external` {ext.source}: after leaving out {len(bad)} unreadable "
                         f"image(s), {'no images are' if not keep else 'only one class is'} left; "
                         "an external set needs benign and malignant images")
    preds, skipped, adapted = scored_predictions(spec, ex, folder.weights, ext, keep, copies,
                                                 adapt_bn, train)
    originals = preds[preds.training_copy == ""]
    metrics = {
        "external_set": ext.name, "source": ext.source, "data_kind": ext.index.kind,
        "content_sha256": data_sha, "weights_sha256": weights_sha,
        "images": len(ext.index.samples), "scored": int(len(preds)),
        "training_copies": len(copies),
        "copies": [{"id": k, "copy_of_training_image": t, "evidence": why}
                   for k, (t, why) in sorted(copies.items())],
        "skipped_bad_images": [{"path": p, "reason": r} for p, r in [*bad, *skipped]],
        "has_patient_ids": bool(any(s.group for s in keep)),
        "test": binary_metrics(preds.label, preds.prob_malignant),
        "test_without_copies": (binary_metrics(originals.label, originals.prob_malignant)
                                if copies and originals.label.nunique() == 2 else None),
    }
    if adapted is not None:  # only adapted scorings carry the key (the protocol's records stay)
        metrics["adapt_bn"] = adapted
    copies_sheet(out.path, ext, train, copies)
    out.write(preds, metrics)
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
