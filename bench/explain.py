"""``python -m bench.explain --runs DIR``: where the models look (SPEC §4, shortcut checks).

For each finished run, Grad-CAM maps (captum's ``LayerGradCam`` at the layer the model's registry
config names, ``cam_layer``; the malignant class, i.e. where the evidence for malignancy lies, so
that a shortcut shows whatever the prediction; ReLU on the map) of the final model on every
held-out test image and on each scored external set, measured against the lesion masks (the union
of an image's mask files) with :mod:`bench.localization`: pointing game, lesion energy ratio and
frame energy ratio (tolerance 3% and band 10% of the image side).

An image without a mask gets ``has_mask`` false and no lesion measures, never an error. Results go
to ``<run>/explain/<method>/``: ``cam_metrics.csv`` (one row per image) and ``maps.npz`` (maps,
grey image thumbnails and masks at ``MAP_SIDE`` px, float16 / uint8: compact, for the report's
figure), and ``info.json``. A run explained with the same method and weights is not redone.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from PIL import Image

from bench import figures, report, tables
from bench.atomic import write_atomic, write_csv, write_json
from bench.data.cache import build_cache
from bench.data.datasets import load_index
from bench.data.images import BadImageError, read_image
from bench.data.index import DataIndex
from bench.device import resolve_device
from bench.errors import BenchError, cli_main
from bench.external import final_model, resolve_external
from bench.localization import BAND, TOLERANCE, cam_measures
from bench.provenance import file_sha256
from bench.runs import load_runs
from bench.spec import RunSpec
from bench.train import normalize
from models import get_model_config

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


def union_mask(index: DataIndex, masks: tuple[str, ...], side: int) -> np.ndarray | None:
    """The union of an image's mask files at ``side``×``side`` (nearest), or ``None``."""
    if not masks:
        return None
    out = np.zeros((side, side), dtype=bool)
    for rel in masks:
        try:
            m = read_image(index.root / rel).convert("L").resize((side, side), Image.NEAREST)
        except BadImageError:
            continue
        out |= np.asarray(m) > 127
    return out


def explain_images(spec: RunSpec, model: torch.nn.Module, index: DataIndex, rows: pd.DataFrame,
                   device: str, batch: int = 16) -> Explained:
    """Maps and measures of ``rows`` (``id,path,label,prob_malignant``) of data set ``index``."""
    cfg = get_model_config(spec.model)
    cache, _ = build_cache(index.root, rows, spec.img_size, spec.channels)
    model = model.to(device).eval()
    by_id = {s.id: s for s in index.samples}
    records, maps, thumbs, masks = [], [], [], []
    for start in range(0, len(cache), batch):
        pos = np.arange(start, min(start + batch, len(cache)))
        x = normalize(cache.images[pos].to(device).float(), cfg)
        with torch.no_grad():
            pred = model(x).argmax(dim=1)
        cams = gradcam(model, cfg.cam_layer, x, torch.ones_like(pred))  # evidence for malignancy
        for k, i in enumerate(pos):
            row = cache.rows.iloc[i]
            cam = cams[k]
            mask = union_mask(index, by_id[row.id].masks, cam.shape[0]) if row.id in by_id else None
            m = cam_measures(cam, mask)
            records.append({"id": row.id, "label": int(row.label),
                            "prob_malignant": float(row.prob_malignant),
                            "predicted": int(pred[k]), "correct": int(pred[k]) == int(row.label),
                            "has_mask": mask is not None and bool(mask.any()), **m})
            small = Image.fromarray(np.asarray(cam * 255, dtype=np.uint8)).resize(
                (MAP_SIDE, MAP_SIDE), Image.BILINEAR)
            maps.append(np.asarray(small, dtype=np.float16) / 255)
            thumbs.append(np.asarray(Image.fromarray(cache.images[i].numpy().mean(0).astype(
                np.uint8)).resize((MAP_SIDE, MAP_SIDE), Image.BILINEAR)))
            masks.append(np.zeros((MAP_SIDE, MAP_SIDE), bool) if mask is None else np.asarray(
                Image.fromarray(mask).resize((MAP_SIDE, MAP_SIDE), Image.NEAREST)))
    return Explained(pd.DataFrame(records), np.stack(maps), np.stack(thumbs), np.stack(masks))


def explain_run(run, method: str = "gradcam", device: str = "cpu", data: Path | None = None
                ) -> Path:
    """Explain one finished run (test set and scored external sets); returns its folder."""
    if method not in METHODS:
        raise BenchError(f"--method {method!r}: choose from {', '.join(METHODS)}")
    weights = run.path / "model.safetensors"
    if not weights.is_file():
        raise BenchError(f"{run.path.name}: no final weights to explain (the final fit failed)")
    folder = run.path / "explain" / method
    spec = RunSpec(**{k: v for k, v in run.settings.items() if k in RunSpec.__dataclass_fields__})
    cfg = get_model_config(spec.model)
    info = {"method": method, "weights_sha256": file_sha256(weights), "map_side": MAP_SIDE,
            "tolerance": TOLERANCE, "band": BAND, "library": "captum LayerGradCam",
            "external_sets": sorted(run.external), "cam_layer": cfg.cam_layer}
    if (folder / "info.json").is_file() and json.loads((folder / "info.json").read_text()) == info:
        print(f"{run.path.name}: explanations up to date")
        return folder
    index = load_index(data if data is not None else data_of(run), spec.data_kind)
    model = final_model(spec, weights)
    parts = [("test", index, run.test)]
    for name, (preds, meta) in sorted(run.external.items()):
        (ext,) = resolve_external([meta["source"]])
        parts.append((name, ext.index, preds))
    frames, arrays = [], {}
    for name, idx, rows in parts:
        got = explain_images(spec, model, idx, rows.reset_index(drop=True), device)
        frames.append(got.metrics.assign(set=name))
        arrays.update({f"{name}/maps": got.maps, f"{name}/images": got.thumbs,
                       f"{name}/masks": got.masks, f"{name}/ids": got.metrics.id.to_numpy(str)})
    write_csv(folder / "cam_metrics.csv", pd.concat(frames, ignore_index=True))
    write_atomic(folder / "maps.npz", lambda p: np.savez_compressed(p.open("wb"), **arrays))
    write_json(folder / "info.json", info)
    print(f"{run.path.name}: explained {sum(len(f) for f in frames)} images ({method}, layer "
          f"{cfg.cam_layer})")
    return folder


def data_of(run) -> Path | None:
    """The data a run was trained on, from its recorded command (``None``: the phantom)."""
    if run.data_arg is None:
        return None
    path = Path(run.data_arg)
    return path if path.is_absolute() else Path(__file__).resolve().parents[1] / path


@cli_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="a folder of run folders")
    p.add_argument("--method", default="gradcam", choices=METHODS)
    p.add_argument("--data", type=Path, default=None,
                   help="the runs' data set, when it moved since they were trained")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", type=Path, default=None,
                   help="also write the explanation table and figure of these runs here "
                        "(bench.report does so for a whole results set)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    runs = load_runs(args.runs)
    for run in runs:
        if run.config.get("status") == "complete":
            explain_run(run, args.method, device, args.data)
    if args.out is not None:
        runs = load_runs(args.runs)
        cams = tables.explanation_table(runs)
        report.write_table(cams, report.explanation_display(cams), args.out / "explanations",
                           "Where the models look (Grad-CAM): see bench.explain")
        figures.explanation_grid(tables.explanation_examples(runs), args.out / "explanations")
        print(f"wrote {args.out / 'explanations.md'} and its figure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
