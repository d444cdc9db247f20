"""How much a finished model relies on burnt-in annotations (docs/protocol.md, "Burnt-in
annotations").

For every finished run with weights, on its held-out test set and on every external set it was
scored on:

* **Cleaning**: each image is scored as it is and with its annotations inpainted
  (:mod:`bench.data.annotations`); ``ΔAUC = AUC(original) − AUC(cleaned)`` on the same images
  with Obuchowski's clustered interval (groups: the split's same-lesion groups, or the external
  set's patient IDs). A model that reads the marks loses AUC when they are gone.
* **Insertion**: the annotation pixels of a malignant image are pasted onto a cleaned benign image
  (and the reverse), and the change of P(malignant) against the cleaned image alone is averaged
  over the targets; the interval resamples the targets' groups (cluster bootstrap). A model that
  reads the marks moves towards the class the marks came from.

    python -m bench.reliance --runs results/busi-cpu/runs [--out DIR] [--device cpu]

Writes ``reliance/reliance.json`` and ``reliance/images.csv`` into each run folder (reused while
the weights and the detector are unchanged), and ``reliance.csv``/``.md`` and ``reliance.png`` into
``--out`` (default: the runs folder's parent's ``tables``/``figures``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from bench.core.errors import BenchError
from bench.core.provenance import file_sha256, from_portable
from bench.data.annotations import CLEAN_METHOD, clean, detect, detector_version, paste, read_array
from bench.data.cache import ImageCache
from bench.data.datasets import load_index
from bench.engine.external import external_index, final_model
from bench.engine.runner import run_model
from bench.engine.spec import RunSpec
from bench.engine.train import predict
from bench.evaluation.insertion import (
    DIRECTIONS,
    effects_record,
    insertion_design,
    insertion_effects,
    insertion_shifts,
)
from bench.stats.clustered import obuchowski_delta
from bench.stats.metrics import roc_auc
from models import get_model_config

log = logging.getLogger(__name__)

N_BOOT = 2000


def to_input(arr: np.ndarray, size: int, channels: int) -> np.ndarray:
    """An image array as the model input the cache makes of a file (bench/data/images.py)."""
    img = Image.fromarray(arr).convert("RGB" if channels == 3 else "L")
    out = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1).copy()


def score_arrays(model: torch.nn.Module, spec: RunSpec, arrays: list[np.ndarray],
                 device: str) -> np.ndarray:
    """P(malignant) of images given as arrays, preprocessed as for training."""
    if not arrays:
        return np.zeros(0)
    x = torch.from_numpy(np.stack([to_input(a, spec.img_size, spec.channels) for a in arrays]))
    cache = ImageCache(x, torch.zeros(len(arrays), dtype=torch.long), pd.DataFrame())
    return predict(model, get_model_config(spec.model), cache, np.arange(len(arrays)),
                   device=device, channels_last=False)


def cluster_mean(values: np.ndarray, groups: np.ndarray, n_boot: int = N_BOOT, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` with a cluster-bootstrap percentile interval (whole groups resampled)."""
    v = np.asarray(values, float)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    ids, inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    sums = np.bincount(inv, weights=v, minlength=len(ids))
    counts = np.bincount(inv, minlength=len(ids))
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(ids), (n_boot, len(ids)))
    boots = sums[draw].sum(1) / counts[draw].sum(1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return float(v.mean()), float(lo), float(hi)


_DETECTED: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}


def _detected(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An image and its annotation mask, memoised per file (runs of one data set share them)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DETECTED:
        if len(_DETECTED) > 4000:
            _DETECTED.clear()
        img = read_array(path)
        _DETECTED[key] = (img, detect(img).mask)
    return _DETECTED[key]


Scorer = Callable[[list[np.ndarray]], np.ndarray]


def prepared_images(root: Path, rows: pd.DataFrame
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The images of ``rows`` (paths relative to ``root``) as they are, their annotation masks
    and the images cleaned (:data:`CLEAN_METHOD`)."""
    originals, masks, cleaned = [], [], []
    for rel in rows.path:
        img, m = _detected(root / rel)
        originals.append(img)
        masks.append(m)
        cleaned.append(clean(img, m, CLEAN_METHOD))
    return originals, masks, cleaned


def insertion_of(score: Scorer, root: Path, rows: pd.DataFrame, seed: int = 0,
                 n_boot: int = N_BOOT) -> tuple[dict, pd.DataFrame]:
    """The insertion test with its same-class and random-shape controls
    (:mod:`bench.evaluation.insertion`) of a classifier ``score`` on ``rows`` (``id, path,
    label, group``; paths relative to ``root``): the effects by direction and control, and the
    per-target table. The cross-class donors are those of :func:`reliance_of` with the same
    ``seed``."""
    rows = rows.reset_index(drop=True)
    originals, masks, cleaned = prepared_images(root, rows)
    table = insertion_shifts(score, rows.id.astype(str).tolist(), rows.label.to_numpy(int),
                             rows.group.astype(str).to_numpy(), originals, masks, cleaned, seed)
    return effects_record(insertion_effects(table, n_boot, seed)), table


def reliance_of(score: Scorer, root: Path, rows: pd.DataFrame, seed: int = 0
                ) -> tuple[dict, pd.DataFrame]:
    """The cleaning and insertion measures of a classifier ``score`` (image arrays → P(malignant))
    on ``rows`` (``id, path, label, group``; paths relative to ``root``). Returns the summary and
    the per-image table."""
    rows = rows.reset_index(drop=True)
    originals, masks, cleaned = prepared_images(root, rows)
    y = rows.label.to_numpy(int)
    groups = rows.group.astype(str).to_numpy()
    p_orig = score(originals)
    p_clean = score(cleaned)
    marked = np.array([m.any() for m in masks])
    shift = np.full(len(rows), np.nan)
    source = np.full(len(rows), "", dtype=object)
    design = insertion_design(y, groups, marked, seed)  # the cross-class donors of the controls
    for name, _, _ in DIRECTIONS:  # benign targets get malignant marks, and the reverse
        pairs = [p for p in design if p.direction == name]
        if not pairs:
            continue
        targets = np.array([p.target for p in pairs])
        picks = np.array([p.cross for p in pairs])
        arrays = [paste(originals[d], masks[d], cleaned[t]) for t, d in zip(targets, picks, strict=True)]
        p_ins = score(arrays)
        shift[targets] = p_ins - p_clean[targets]
        source[targets] = rows.id.to_numpy()[picks]
    per = rows.assign(prob_original=p_orig, prob_cleaned=p_clean, marked=marked.astype(int),
                      mask_fraction=[float(m.mean()) for m in masks], inserted_from=source,
                      insertion_shift=shift)
    return reliance_summary(y, p_orig, p_clean, shift, marked, groups), per


def reliance_summary(y: np.ndarray, p_orig: np.ndarray, p_clean: np.ndarray, shift: np.ndarray,
                     marked: np.ndarray, groups: np.ndarray) -> dict:
    """The measures from per-image P(malignant) as is and cleaned and insertion shifts (NaN where
    nothing was pasted): counts, ΔAUC with Obuchowski's clustered CI, and each insertion
    direction's mean shift with a cluster-bootstrap CI. Also applied to seed-averaged
    probabilities (the report's one row per configuration)."""
    y = np.asarray(y, int)
    marked = np.asarray(marked, bool)
    shift = np.asarray(shift, float)
    groups = np.asarray(groups).astype(str)
    out: dict = {"images": len(y), "marked_benign": int(marked[y == 0].sum()),
                 "marked_malignant": int(marked[y == 1].sum()),
                 "benign": int((y == 0).sum()), "malignant": int((y == 1).sum())}
    if 0 < y.sum() < y.size:
        d = obuchowski_delta(y, p_orig, p_clean, groups)
        out.update(auc_original=roc_auc(y, p_orig), auc_cleaned=roc_auc(y, p_clean),
                   delta_auc=d.delta, delta_lo=d.lo, delta_hi=d.hi, delta_p=d.p,
                   clusters=d.n_clusters)
    for name, target in (("malignant_marks_on_benign", 0), ("benign_marks_on_malignant", 1)):
        sel = (y == target) & ~np.isnan(shift)
        mean, lo, hi = cluster_mean(shift[sel], groups[sel])
        out[name] = {"n": int(sel.sum()), "mean_shift": mean, "lo": lo, "hi": hi}
    return out


def _run_index(run, data: Path | None):
    recorded = run.data_arg
    path = data if data is not None else (None if recorded is None else from_portable(recorded))
    if path is not None and not path.exists():
        raise BenchError(f"{run.path.name}: its data {path} do not exist; pass `data`")
    return load_index(path, run.record.settings.data_kind)


def reliance_run(run, device: str, data: Path | None = None, controls: bool = False,
                 n_boot: int = N_BOOT) -> dict | None:
    """Measure one run (test set and scored external sets); ``None`` when it has no weights.
    With ``controls``, also the insertion test with its same-class and random-shape controls
    (``reliance/insertion.*``, :mod:`bench.evaluation.insertion`). Each is reused while the
    weights, the detector (and ``n_boot``) are unchanged."""
    folder = run.folder
    weights = folder.weights
    if not weights.is_file():
        log.info(f"note: {run.path.name}: reliance not measured: no model.safetensors in the run folder")
        return None
    info = {"weights_sha256": file_sha256(weights), "detector": detector_version(),
            "method": CLEAN_METHOD, "external_sets": sorted(run.external)}
    old = folder.reliance_record()
    fresh = old is not None and old.get("info") == info
    insertion_info = {**info, "seed": 0, "n_boot": n_boot}
    old_ins = folder.insertion_record()
    ins_fresh = not controls or (old_ins is not None and old_ins.get("info") == insertion_info)
    if fresh and ins_fresh:
        return old
    run_model(run.record, run.path.name)  # a model from a file, module or plugin: its record
    try:
        spec = run.spec
    except BenchError as exc:
        raise BenchError(f"{run.path.name}: {exc}") from None
    model = final_model(spec, weights)
    index = _run_index(run, data)
    split = folder.read_split()
    test = split[split.split == "test"][["id", "path", "label", "group"]]
    head = {"run": run.path.name, "model": spec.model, "seed": spec.seed,
            "annotations": spec.annotations}
    parts = [("test", index.root, test)]
    for name, (preds, meta) in sorted(run.external.items()):
        ext = external_index(meta["source"])
        rows = preds[["id", "path", "label"]].assign(
            group=[g if g else i for g, i in zip(preds.get("group", preds.id).astype(str).replace("nan", ""),
                                                  preds.id, strict=True)])
        parts.append((name, ext.root, rows))

    def score(arrays: list[np.ndarray]) -> np.ndarray:
        return score_arrays(model, spec, arrays, device)

    result = old if fresh else {"info": {**info}, **head, "sets": {}}
    if not fresh:
        frames = []
        with folder.timed("reliance"):
            for name, root, rows in parts:
                summary, per = reliance_of(score, root, rows)
                result["sets"][name] = summary
                frames.append(per.assign(set=name))
            folder.write_reliance(result, pd.concat(frames, ignore_index=True))
        t = result["sets"]["test"]
        if "delta_auc" in t:
            log.info(f"{run.path.name}: test AUC {t['auc_original']:.3f} as is, {t['auc_cleaned']:.3f} "
                     f"cleaned (ΔAUC {t['delta_auc']:+.3f}, 95% CI {t['delta_lo']:+.3f} to "
                     f"{t['delta_hi']:+.3f}); malignant marks on benign images shift P(malignant) by "
                     f"{t['malignant_marks_on_benign']['mean_shift']:+.3f}")
    if not ins_fresh:
        record: dict = {"info": insertion_info, **head, "sets": {}}
        tables = []
        with folder.timed("reliance/insertion"):
            for name, root, rows in parts:
                effects, table = insertion_of(score, root, rows, seed=0, n_boot=n_boot)
                record["sets"][name] = effects
                tables.append(table.assign(set=name))
            folder.write_insertion(record, pd.concat(tables, ignore_index=True))
        for direction, by_control in record["sets"]["test"].items():
            words = "; ".join(f"{c} {e['effect']:+.3f} [{e['lo']:+.3f}, {e['hi']:+.3f}]"
                              for c, e in by_control.items())
            log.info(f"{run.path.name}: test, {direction.replace('_', ' ')} (towards the marks' "
                     f"class; none = the cross-class shift, else minus the control): {words}")
    return result
