"""Preprocessing and augmentation (Fig. 5 and Fig. 6 analogues): the augmentation parameters and
example arrays ``python -m bench.illustrate`` saved in the first illustrated Fus2Net run
(:mod:`bench.evaluation.illustrate`), and the two figures drawn from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.atomic import write_npz
from bench.core.tablefmt import write_table_csv
from bench.engine.runfolder import Run
from bench.reporting import figures
from bench.reporting.figures import plt
from bench.reporting.sections.context import ReportContext
from bench.reporting.tables import REFERENCE, comparison_sets

# the ultrasound transforms shown (bench.evaluation.illustrate.ultrasound_views); written only when
# the illustrated run records them (its committed illustrations_ultrasound.csv, or its arrays), so
# older results sets keep their README and a clean clone rebuilds the committed one
ULTRASOUND_TABLE = "fig5_ultrasound.csv"


def pipeline_examples(runs: list[Run], model: str = REFERENCE
                      ) -> tuple[pd.DataFrame, list[str], dict[str, np.ndarray]]:
    """Fig. 5/6 analogues: the augmentation parameters of the first illustrated ``model``
    comparison run (``illustrations.csv``, :mod:`bench.evaluation.illustrate`), the ultrasound
    transforms it shows (``illustrations_ultrasound.csv``) and its arrays (``illustrations.npz``)
    when present (results sets commit the two tables, not the arrays)."""
    for r in dict(comparison_sets(runs)).get(model, []):
        params = r.folder.illustration_params()
        if params is not None:
            params["hflip"] = params.hflip.astype(bool)
            return (params.drop(columns="id"), r.folder.illustration_transforms(),
                    r.folder.illustration_arrays())
    return pd.DataFrame(), [], {}


def augmentation_figure(arrays: dict[str, np.ndarray], params: pd.DataFrame,
                        base: Path) -> list[Path]:
    """Fig. 5 analogue: one benign and one malignant training image and the training augmentation
    applied to each (parameters under each view, ranges in the title)."""
    ranges = json.loads(str(arrays["ranges"]))
    n = arrays["benign/augmented"].shape[0]
    fig, axes = plt.subplots(2, n + 1, figsize=(1.9 * (n + 1), 5.2), squeeze=False,
                             layout="constrained")
    for r, cls in enumerate(("benign", "malignant")):
        axes[r, 0].imshow(arrays[f"{cls}/display"], cmap="gray", vmin=0, vmax=255,
                          interpolation="nearest")
        axes[r, 0].set_title(f"{cls}: {arrays['ids'][r]}\n(before)", fontsize=7)
        for v in range(n):
            p = params[(params.image == cls) & (params.view == v + 1)].iloc[0]
            axes[r, v + 1].imshow(arrays[f"{cls}/augmented"][v], cmap="gray", vmin=0, vmax=255,
                                  interpolation="nearest")
            axes[r, v + 1].set_title(
                f"rot {p.rotation_deg:+.1f}°, shear {p.shear_deg:+.1f}°\nshift "
                f"{p.shift_x:+.2f}/{p.shift_y:+.2f}, ×{p.brightness:.2f}"
                f"{', h-flip' if p.hflip else ''}", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    lo, hi = ranges["brightness"]
    fig.suptitle(f"Training augmentation (ranges: rotation ±{ranges['rotation_deg']:g}°, shift "
                 f"±{ranges['shift']:.0%} of the side, shear ±{ranges['shear_deg']:g}°, "
                 f"horizontal flip p=0.5, brightness ×[{lo:g}, {hi:g}])\nat the training size, "
                 f"{arrays['benign/display'].shape[0]} px, as the model sees it (shown enlarged)",
                 fontsize=8)
    return figures.save(fig, base)


def ultrasound_figure(arrays: dict[str, np.ndarray], base: Path) -> list[Path]:
    """The ``--augment ultrasound`` policy's transforms, each alone at the end of its range, on the
    two training images at the training size (docs/protocol.md, "Ultrasound-aware augmentation")."""
    names = [str(n) for n in arrays["ultrasound_names"]]
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(1.5 * (len(names) + 1), 3.6),
                             squeeze=False, layout="constrained")
    for r, cls in enumerate(("benign", "malignant")):
        axes[r, 0].imshow(arrays[f"{cls}/display"], cmap="gray", vmin=0, vmax=255,
                          interpolation="nearest")
        axes[r, 0].set_title(f"{cls}\n(before)", fontsize=6)
        for v, name in enumerate(names):
            axes[r, v + 1].imshow(arrays[f"{cls}/ultrasound"][v], cmap="gray", vmin=0, vmax=255,
                                  interpolation="nearest")
            axes[r, v + 1].set_title(name, fontsize=5.5)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Ultrasound-aware augmentation (--augment ultrasound), each transform alone at "
                 f"the end of its range, at the training size, "
                 f"{arrays['benign/display'].shape[0]} px (shown enlarged)", fontsize=8)
    return figures.save(fig, base)


def preprocessing_figure(arrays: dict[str, np.ndarray], base: Path) -> list[Path]:
    """Fig. 6 analogue: a training image as decoded, resized to the model's input and normalised."""
    fig, axes = plt.subplots(2, 3, figsize=(9, 6), squeeze=False)
    for r, cls in enumerate(("benign", "malignant")):
        orig, small, norm = (arrays[f"{cls}/{k}"] for k in ("original", "resized", "normalized"))
        axes[r, 0].imshow(orig, cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_title(f"{cls} {arrays['ids'][r]}: decoded ({orig.shape[1]}×{orig.shape[0]} "
                             "shown)", fontsize=7)
        axes[r, 1].imshow(small, cmap="gray", vmin=0, vmax=255)
        axes[r, 1].set_title(f"resized to the model input ({small.shape[1]}×{small.shape[0]})",
                             fontsize=7)
        im = axes[r, 2].imshow(norm.astype(np.float32), cmap="gray")
        axes[r, 2].set_title(f"normalised (mean {float(norm.mean()):.2f}, sd "
                             f"{float(norm.astype(np.float32).std()):.2f})", fontsize=7)
        fig.colorbar(im, ax=axes[r, 2], fraction=0.046)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Preprocessing: decode → resize (bilinear) → normalise (Fus2Net: per-image "
                 "standardisation, paper Eq. 1)", fontsize=9)
    fig.tight_layout()
    return figures.save(fig, base)


def write_tables(ctx: ReportContext) -> None:
    """``fig5_augmentation.csv`` (committed) and ``pipeline_examples.npz`` (the arrays, not
    committed); either is dropped when there is nothing to write, so no earlier report's stays."""
    params, names, arrays = pipeline_examples(ctx.runs)
    transforms = pd.DataFrame({"transform": names})
    for name, present in (("fig5_augmentation.csv", len(params)), ("pipeline_examples.npz", arrays),
                          (ULTRASOUND_TABLE, len(transforms))):
        if not present:
            (ctx.tdir / name).unlink(missing_ok=True)
    if len(params):
        write_table_csv(ctx.tdir / "fig5_augmentation.csv", params)
    if len(transforms):  # committed, unlike the arrays: the README shows the figure when present
        write_table_csv(ctx.tdir / ULTRASOUND_TABLE, transforms)
    if arrays:
        write_npz(ctx.tdir / "pipeline_examples.npz", arrays)


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    if not (tdir / "pipeline_examples.npz").is_file():
        return []
    with np.load(tdir / "pipeline_examples.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    drawn = (augmentation_figure(arrays, pd.read_csv(tdir / "fig5_augmentation.csv"),
                                 fdir / "fig5_augmentation")
             + preprocessing_figure(arrays, fdir / "fig6_preprocessing"))
    if "ultrasound_names" in arrays:
        drawn += ultrasound_figure(arrays, fdir / "fig5_ultrasound")
    return drawn


def readme(ctx: ReportContext) -> list[str]:
    if not (ctx.tdir / "fig5_augmentation.csv").is_file():  # committed, unlike the arrays
        return []
    lines = ["## Preprocessing and augmentation (Fig. 5 and Fig. 6 analogues)", "",
             "![Augmentation](figures/fig5_augmentation.png)", ""]
    if (ctx.tdir / ULTRASOUND_TABLE).is_file():
        lines += ["![Ultrasound-aware augmentation](figures/fig5_ultrasound.png)", ""]
    return lines + ["![Preprocessing](figures/fig6_preprocessing.png)", ""]
