"""Fus2Net's errors (Fig. 3 analogue): the held-out images the seed-averaged Fus2Net gets wrong,
most confidently wrong first, and a grid of them as the model saw them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.atomic import write_npz
from bench.core.tablefmt import fmt, write_table
from bench.engine.runfolder import Run
from bench.reporting import figures
from bench.reporting.figures import plt
from bench.reporting.sections.context import ReportContext, plain_words, read_table
from bench.reporting.tables import REFERENCE, comparison_sets
from bench.stats.metrics import THRESHOLD

CAPTION = ("Fus2Net's misclassified held-out images: seed-averaged P(malignant) at threshold "
           "0.5, most confidently wrong first, with each seed's probability.")


def misclassified(runs: list[Run], model: str = REFERENCE) -> tuple[pd.DataFrame, dict]:
    """Fig. 3 analogue: the held-out images ``model`` gets wrong at threshold 0.5 on its
    seed-averaged probability, most confidently wrong first, with each seed's probability; and
    their thumbnails as the model saw them (from the first seed's explanation, when present)."""
    sets = dict(comparison_sets(runs))
    cols = ["id", "label", "prob_malignant", "predicted", "seeds_wrong", "n_seeds"]
    if model not in sets:
        return pd.DataFrame(columns=cols), {}
    rs = sets[model]
    tests = [r.test.sort_values("id").reset_index(drop=True) for r in rs]
    probs = np.stack([t.prob_malignant.to_numpy() for t in tests])
    y = tests[0].label.to_numpy()
    mean = probs.mean(0)
    df = pd.DataFrame({"id": tests[0].id.astype(str), "label": y, "prob_malignant": mean,
                       "predicted": (mean >= THRESHOLD).astype(int),
                       "seeds_wrong": ((probs >= THRESHOLD).astype(int) != y).sum(0),
                       "n_seeds": len(rs)})
    for r, p in zip(rs, probs, strict=True):
        df[f"prob_seed_{r.seed}"] = p
    wrong = df[df.predicted != df.label].copy()
    wrong["confidence"] = (wrong.prob_malignant - THRESHOLD).abs()
    wrong = wrong.sort_values(["confidence", "id"], ascending=[False, True]).drop(
        columns="confidence").reset_index(drop=True)
    images: dict[str, np.ndarray] = {}
    arrays = rs[0].explanation_arrays("test/ids", "test/images")
    if arrays is not None:
        ids = list(arrays["test/ids"])
        for i in wrong.id:
            if i in ids:
                images[str(i)] = arrays["test/images"][ids.index(i)]
    return wrong, images


def misclassified_display(t: pd.DataFrame) -> pd.DataFrame:
    names = {0: "benign", 1: "malignant"}
    seeds = [c for c in t.columns if c.startswith("prob_seed_")]
    return pd.DataFrame({
        "image": t.id, "true label": [names[int(v)] for v in t.label],
        "P(malignant), seed mean": [fmt(v) for v in t.prob_malignant],
        "per seed": [", ".join(fmt(r[c]) for c in seeds) for r in t.to_dict("records")],
        "wrong in seeds": [f"{int(a)}/{int(b)}" for a, b in zip(t.seeds_wrong, t.n_seeds,
                                                                strict=True)]})


def misclassified_grid(table: pd.DataFrame, images: dict[str, np.ndarray], base: Path,
                       limit: int = 24) -> list[Path]:
    """Fig. 3 analogue: Fus2Net's misclassified held-out images (most confidently wrong first),
    with true label and seed-averaged P(malignant), as the model saw them."""
    shown = table.head(limit)
    cols = 6
    rows = max(1, int(np.ceil(len(shown) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    names = {0: "benign", 1: "malignant"}
    for ax, r in zip(axes.flat, shown.to_dict("records"), strict=False):
        img = images.get(str(r["id"]))
        if img is not None:
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        else:
            ax.text(0.5, 0.5, "(no thumbnail:\nrun bench.explain)", ha="center", va="center",
                    fontsize=6, transform=ax.transAxes)
        ax.set_title(f"{r['id']}\ntrue {names[int(r['label'])]}, P(mal) {r['prob_malignant']:.2f}\n"
                     f"wrong in {int(r['seeds_wrong'])}/{int(r['n_seeds'])} seeds", fontsize=6)
    more = f" (first {limit} of {len(table)})" if len(table) > limit else ""
    fig.suptitle(f"Fus2Net's misclassified held-out images{more}: seed-averaged probability at "
                 "threshold 0.5, most confidently wrong first", fontsize=9)
    fig.tight_layout()
    return figures.save(fig, base)


def write_tables(ctx: ReportContext) -> None:
    """``fig3_misclassified.{csv,md,tex}`` and the thumbnails (``.npz``)."""
    wrong, thumbs = misclassified(ctx.runs)
    write_table(wrong, misclassified_display(wrong), ctx.tdir / "fig3_misclassified", CAPTION)
    write_npz(ctx.tdir / "fig3_misclassified.npz", thumbs)


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    if not (tdir / "fig3_misclassified.csv").is_file():
        return []
    wrong = pd.read_csv(tdir / "fig3_misclassified.csv", dtype={"id": str})
    with np.load(tdir / "fig3_misclassified.npz") as npz:
        thumbs = {k: npz[k] for k in npz.files}
    base = fdir / "fig3_misclassified"
    if len(wrong) and not thumbs and base.with_suffix(".png").is_file():
        # the thumbnails come from the explanation arrays, which git does not keep: a clone of a
        # results set keeps its committed figure rather than one of empty frames
        return []
    return misclassified_grid(wrong, thumbs, base)


def readme(ctx: ReportContext) -> list[str]:
    n_wrong = len(read_table(ctx.tdir / "fig3_misclassified.csv"))
    return ["## Fus2Net's errors (Fig. 3 analogue)", "",
            f"{n_wrong} held-out images are misclassified by the seed-averaged Fus2Net "
            "(table: `tables/fig3_misclassified.md`).", "",
            *plain_words(
                "These are the held-out images that Fus2Net, averaged over its training seeds, "
                "put on the wrong side of the 50% cut-off, the most confident mistakes first.",
                "Looking at them shows the kinds of lesion this model finds hard, which is where "
                "a reader should least rely on it."),
            "![Misclassified](figures/fig3_misclassified.png)", ""]
