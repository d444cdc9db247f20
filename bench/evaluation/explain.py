"""Where the models look (docs/protocol.md, Where the models look); the command is ``python -m bench.explain``.

For each finished run, Grad-CAM maps (captum's ``LayerGradCam`` at the deepest layer whose map is
at least 7×7 at the run's input size, :mod:`bench.evaluation.camlayer`; the malignant class, i.e. where the evidence for malignancy lies, so
that a shortcut shows whatever the prediction; ReLU on the map) of the final model on every
held-out test image and on each scored external set, measured against the lesion masks (the union
of an image's mask files) with :mod:`bench.stats.localization`: pointing game, lesion energy ratio and
frame energy ratio (tolerance 3% and band 10% of the image side).

Every image gets a row with its status (measured, empty map, not measurable) and the map size; an
image without a mask gets ``has_mask`` false and no lesion measures, never an error. Results go
to ``<run>/explain/<method>/``: ``cam_metrics.csv`` (one row per image) and ``maps.npz`` (maps,
grey image thumbnails and masks at ``MAP_SIDE`` px, float16 / uint8: compact, for the report's
figure), and ``info.json``. A run explained with the same method and weights is not redone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from PIL import Image

from bench.core.atomic import write_atomic, write_csv
from bench.core.errors import BenchError
from bench.core.provenance import file_sha256, from_portable
from bench.data.cache import build_cache
from bench.data.content import content_sha256
from bench.data.datasets import load_index
from bench.data.images import BadImageError, read_image
from bench.data.index import DataIndex
from bench.engine.external import RESERVED_NAMES, external_index, final_model
from bench.engine.runfolder import WEIGHTS
from bench.engine.runner import as_seen, run_model
from bench.engine.spec import RunSpec
from bench.engine.train import normalize
from bench.evaluation.camlayer import (
    EMPTY,
    MEASURED,
    MIN_SIDE,
    NOT_MEASURABLE,
    CamLayer,
    choose_cam_layer,
)
from bench.stats.localization import BAND, TOLERANCE, cam_measures
from models import create_model, get_model_config

log = logging.getLogger(__name__)

METHODS = ("gradcam",)
MAP_SIDE = 64
def gradcam(model: torch.nn.Module, layer_name: str, x: torch.Tensor,
            target: torch.Tensor) -> np.ndarray:
    """Grad-CAM maps (N×H×W, input size, each scaled to max 1) for the given target classes. A model
    that runs its layer on several views per image (the multiview model) gives the first view's."""
    layer = model.get_submodule(layer_name)
    attr = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    attr = attr.detach()[: len(x)].float()  # views are stacked after the images: keep view 1
    maps = F.interpolate(attr, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (maps / peak).clamp(0, 1).cpu().numpy()


@dataclass
class Explained:
    """One run's explanations of one image set."""

    metrics: pd.DataFrame
    maps: np.ndarray
    thumbs: np.ndarray
    masks: np.ndarray


def union_mask(root: Path, masks: tuple[str, ...], side: int) -> np.ndarray | None:
    """The union of an image's mask files (relative to ``root``) at ``side``×``side`` (nearest),
    or ``None``."""
    if not masks:
        return None
    out = np.zeros((side, side), dtype=bool)
    for rel in masks:
        try:
            m = read_image(root / rel).convert("L").resize((side, side), Image.NEAREST)
        except BadImageError:
            continue
        out |= np.asarray(m) > 127
    return out


def explain_images(spec: RunSpec, model: torch.nn.Module, index: DataIndex, rows: pd.DataFrame,
                   device: str, batch: int = 16, layer: CamLayer | None = None,
                   mask_root: Path | None = None) -> Explained:
    """Maps and measures of ``rows`` (``id,path,label,prob_malignant``) of data set ``index`` at
    ``layer`` (default: the one :func:`run_cam_layer` chooses). Every image gets a row with its
    ``status`` (measured, empty map, not measurable; bench.evaluation.camlayer) and ``map_size``; only a
    measured map has measures. Masks are read under ``mask_root`` (default: ``index.root``)."""
    cfg = get_model_config(spec.model)
    layer = layer or run_cam_layer(spec)
    cache, _ = build_cache(index.root, rows, spec.img_size, spec.channels)
    model = model.to(device).eval()
    by_id = {s.id: s for s in index.samples}
    records, maps, thumbs, masks = [], [], [], []
    for start in range(0, len(cache), batch):
        pos = np.arange(start, min(start + batch, len(cache)))
        x = normalize(cache.images[pos].to(device).float(), cfg)
        with torch.no_grad():
            pred = model(x).argmax(dim=1)
        cams = gradcam(model, layer.name, x, torch.ones_like(pred))  # evidence for malignancy
        for k, i in enumerate(pos):
            row = cache.rows.iloc[i]
            cam = cams[k]
            mask = union_mask(mask_root or index.root, by_id[row.id].masks, cam.shape[0]) \
                if row.id in by_id else None
            status = map_status(cam, layer)
            m = cam_measures(cam if status == MEASURED else np.zeros_like(cam), mask)
            records.append({"id": row.id, "label": int(row.label),
                            "prob_malignant": float(row.prob_malignant),
                            "predicted": int(pred[k]), "correct": int(pred[k]) == int(row.label),
                            "has_mask": mask is not None and bool(mask.any()), **m,
                            "status": status, "map_size": layer.size, "layer": layer.name})
            small = Image.fromarray(np.asarray(cam * 255, dtype=np.uint8)).resize(
                (MAP_SIDE, MAP_SIDE), Image.BILINEAR)
            maps.append(np.asarray(small, dtype=np.float16) / 255)
            thumbs.append(np.asarray(Image.fromarray(cache.images[i].numpy().mean(0).astype(
                np.uint8)).resize((MAP_SIDE, MAP_SIDE), Image.BILINEAR)))
            masks.append(np.zeros((MAP_SIDE, MAP_SIDE), bool) if mask is None else np.asarray(
                Image.fromarray(mask).resize((MAP_SIDE, MAP_SIDE), Image.NEAREST)))
    return Explained(pd.DataFrame(records), np.stack(maps), np.stack(thumbs), np.stack(masks))


def run_cam_layer(spec: RunSpec) -> CamLayer:
    """The layer a run is explained at for its input size (:func:`bench.evaluation.camlayer.choose_cam_layer`;
    the architecture alone decides, so no weights are needed)."""
    cfg = get_model_config(spec.model)
    model = create_model(spec.model, **{**spec.model_kwargs, "pretrained": "none"})
    return choose_cam_layer(model, cfg.cam_layer, spec.img_size,
                            int(spec.model_kwargs.get("in_chans", cfg.in_chans)))


def map_status(cam: np.ndarray, layer: CamLayer) -> str:
    """``not measurable`` (the layer's map is too coarse), ``empty map`` (no energy) or
    ``measured``."""
    if not layer.measurable:
        return NOT_MEASURABLE
    return MEASURED if float(cam.sum()) > 0 else EMPTY


class NotExplained(BenchError):
    """A run that cannot be explained here (said, and the other runs go on)."""


def run_index(run, data: Path | None = None) -> DataIndex:
    """The data set a run was trained on, as it saw it (:func:`run_indexes`)."""
    return run_indexes(run, data)[1]


def run_indexes(run, data: Path | None = None) -> tuple[DataIndex, DataIndex]:
    """The data set a run was trained on, as stored (where its masks are) and as the run saw it
    (:func:`bench.engine.runner.as_seen`): ``data`` when given, else the location the run recorded
    (:attr:`bench.engine.runfolder.Run.data_arg`, relative to the project), checked against the run's
    content hash, so another data set under that path is never explained in its place."""
    settings = run.record.settings
    given = data is not None
    recorded = run.data_arg
    where = f"`data` {data}" if given else (
        f"its recorded data {recorded}" if recorded is not None else "the built-in phantom")
    path = data if given else (None if recorded is None else from_portable(recorded))
    if path is not None and not path.exists():
        raise NotExplained(f"{run.path.name}: {where}: path does not exist; pass `data` with the "
                           "data set the run was trained on")
    try:
        original = index = load_index(path, settings.data_kind)
    except BenchError as exc:
        raise NotExplained(f"{run.path.name}: {where}: {exc}") from None
    want = settings.data_sha256
    manifest = run.folder.read_split()
    if want and len(manifest):
        paths = list(manifest.path[manifest.split != "excluded"])
        try:
            index = as_seen(index, paths, settings.annotations)
        except BenchError as exc:  # cleaned by another detector version: this run only
            raise NotExplained(f"{run.path.name}: {exc}") from None
        missing = next((p for p in paths if not (index.root / p).is_file()), None)
        if missing is not None or content_sha256(index.root, paths) != want:
            what = f"{missing} is missing there" if missing is not None else \
                "its images differ from the ones the run was trained on (content SHA-256)"
            raise NotExplained(f"{run.path.name}: {where}: {what}; pass `data` with the data set "
                               "the run was trained on")
    return original, index


def explain_info(run, method: str, spec: RunSpec, layer: CamLayer) -> dict:
    """``info.json`` of a run's explanations (its ``files`` aside): what they depend on."""
    weights = run.weights
    return {"method": method,
            "weights_sha256": file_sha256(weights) if weights.is_file()
            else run.record.outputs.get(WEIGHTS),
            "map_side": MAP_SIDE, "tolerance": TOLERANCE, "band": BAND,
            "library": "captum LayerGradCam", "external_sets": sorted(run.external),
            "cam_layer": layer.name, "configured_layer": get_model_config(spec.model).cam_layer,
            "map_size": layer.size, "min_map_side": MIN_SIDE}


@dataclass(frozen=True)
class ImageSet:
    """One set of images to explain: ``images`` as the run saw them
    (:func:`bench.engine.runner.as_seen`), its
    ``rows`` (predictions), and ``mask_root``, where the lesion masks are read: always the data set
    as stored, since a cleaned copy holds only the images."""

    name: str
    images: DataIndex
    rows: pd.DataFrame
    mask_root: Path


def image_sets(run, original: DataIndex, index: DataIndex) -> list[ImageSet]:
    """The sets to explain: the held-out test set (``original`` as stored, ``index`` as the run saw
    it) and each scored external set (its images checked to be the ones it was scored on)."""
    parts = [ImageSet("test", index, run.test, original.root)]
    for name, (preds, meta) in sorted(run.external.items()):
        try:
            ext = external_index(meta["source"])
        except BenchError as exc:
            raise NotExplained(f"{run.path.name}: {exc}; score it again with `external`") from None
        try:
            seen = as_seen(ext, [s.path for s in ext.samples], run.record.settings.annotations)
        except BenchError as exc:
            raise NotExplained(f"{run.path.name}: {exc}") from None
        got = content_sha256(seen.root, [s.path for s in seen.samples])
        if meta.get("content_sha256") not in (None, got):
            raise NotExplained(f"{run.path.name}: external set {name}: the images at "
                               f"{meta['source']} are not the ones it was scored on (content "
                               "SHA-256); score it again with `external`")
        parts.append(ImageSet(name, seen, preds, ext.root))
    return parts


def explain_run(run, method: str = "gradcam", *, device: str, data: Path | None = None
                ) -> Path | None:
    """Explain one finished run (test set and scored external sets) on ``device``; returns its
    folder, or ``None`` when the run has no weights here (results sets commit none; said in a
    note). A run that cannot be explained (its data not found or not the same images, weights
    that do not fit) raises :class:`NotExplained`."""
    if method not in METHODS:
        raise BenchError(f"`method`={method!r}: choose from {', '.join(METHODS)}")
    weights = run.weights
    folder = run.folder
    out = folder.explain(method)
    try:  # a model from a local file, module or plugin is registered again from its record
        run_model(run.record, run.path.name)
    except BenchError as exc:
        raise NotExplained(str(exc)) from None
    try:
        spec = run.spec
    except BenchError as exc:
        raise NotExplained(f"{run.path.name}: {exc}") from None
    layer = run_cam_layer(spec)
    info = explain_info(run, method, spec, layer)
    if info["weights_sha256"] is not None and out.matches(info):
        log.info(f"{run.path.name}: explanations up to date")
        return out.path
    if not weights.is_file():
        recorded = run.record.outputs.get(WEIGHTS)
        log.info(f"note: {run.path.name}: not explained: model.safetensors is not in the run folder "
                 "(results sets commit no weights; the final fit "
                 f"{'did not finish' if recorded is None else 'wrote them'}); rerun the "
                 "run to recreate them")
        return None
    for name in run.external:
        if name in RESERVED_NAMES:
            raise NotExplained(f"{run.path.name}: its external set is named {name!r}, as one of "
                               "the run's own splits; score it again under another name with "
                               f"`external` NAME=PATH and delete external/{name}")
    original, index = run_indexes(run, data)
    try:
        model = final_model(spec, weights)
    except BenchError as exc:
        raise NotExplained(str(exc)) from None
    parts = image_sets(run, original, index)
    frames, arrays = [], {}
    with folder.timed(f"explain/{method}"):
        for part in parts:
            got = explain_images(spec, model, part.images, part.rows.reset_index(drop=True), device,
                                 layer=layer, mask_root=part.mask_root)
            name = part.name  # the key of its arrays in maps.npz
            frames.append(got.metrics.assign(set=name))
            arrays.update({f"{name}/maps": got.maps, f"{name}/images": got.thumbs,
                           f"{name}/masks": got.masks, f"{name}/ids": got.metrics.id.to_numpy(str)})
        # the measures' checksum is verified before the report reads them (maps.npz holds figures
        # only and is not committed with results sets)
        out.write(info, {"cam_metrics.csv": lambda p: write_csv(p, pd.concat(frames, ignore_index=True)),
                         "maps.npz": lambda p: write_atomic(
                             p, lambda q: np.savez_compressed(q.open("wb"), **arrays))},
                  checksummed=("cam_metrics.csv",))
    log.info(f"{run.path.name}: explained {sum(len(f) for f in frames)} images ({method}, layer "
             f"{layer.name}, map {layer.size}{'' if layer.measurable else ': not measurable'})")
    return out.path


def explain_runs(runs: list, method: str = "gradcam", *, device: str,
                 data: Path | None = None) -> list[str]:
    """Explain every complete run of ``runs``; a run that cannot be explained does not stop the
    others. Returns one line per run not explained (the caller says them)."""
    problems = []
    for run in runs:
        if run.record.status != "complete":
            continue
        try:
            explain_run(run, method, device=device, data=data)
        except NotExplained as exc:
            problems.append(str(exc))
    return problems
