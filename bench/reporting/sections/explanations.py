"""Where the models look (Grad-CAM; docs/protocol.md, "Where the models look"): the measures of each
comparison model's saved maps (:mod:`bench.reporting.camtable`) and a grid of example maps. The
report reads the maps ``python -m bench.explain`` saved in each run; it never computes one."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.atomic import write_npz
from bench.core.tablefmt import write_table
from bench.engine.runfolder import Run
from bench.reporting import camtable, figures
from bench.reporting.camtable import explanation_rows
from bench.reporting.figures import plt
from bench.reporting.sections.context import ReportContext, plain_words
from bench.reporting.tables import REFERENCE, comparison_sets

EXAMPLES = "explain_examples.npz"


def _explained(run: Run, method: str = "gradcam") -> pd.DataFrame | None:
    return run.explanations(method)


def explanation_table(runs: list[Run]) -> pd.DataFrame:
    """Where each comparison model looks (bench.evaluation.explain): per model, image set and subgroup, n
    measured of n and the measures over images, seeds averaged per image first
    (:func:`bench.reporting.camtable.explanation_rows`)."""
    return explanation_rows(comparison_sets(runs), _explained)


def left_out(runs: list[Run], method: str = "gradcam") -> list[str]:
    """One line per run of a comparison row that has no maps, naming the run and why (nothing is
    left out of the section silently): no weights in its folder (results sets commit none), or
    not explained yet (``python -m bench.explain`` says why a run cannot be)."""
    lines = []
    for model, rs in comparison_sets(runs):
        for r in rs:
            if _explained(r, method) is not None:
                continue
            why = ("its folder has no model.safetensors (results sets commit no weights), so it "
                   "has no maps" if not r.weights.is_file() else
                   f"not explained: python -m bench.explain --runs {r.path.parent} explains it "
                   "or says why it cannot")
            lines.append(f"* Left out of this section: {r.path.name} ({model}): {why}.")
    return lines


def explanation_examples(runs: list[Run]) -> dict[str, np.ndarray]:
    """Per comparison model, the most confident true positive, false negative and false positive
    test image of its first seed: grey thumbnail, map and lesion mask, keyed by model, kind, image,
    P(malignant), seed, status and map size with layer (for the report's figure)."""
    out: dict[str, np.ndarray] = {}
    for model, rs in comparison_sets(runs):
        run = rs[0]
        cam = _explained(run)
        if cam is not None and "status" not in cam:
            continue  # made before maps were checked for resolution: nothing to show
        arrays = run.explanation_arrays("test/ids", "test/images", "test/maps", "test/masks")
        if cam is None or arrays is None:
            continue
        ids = list(arrays["test/ids"])
        test = cam[cam.set == "test"]
        picks = {"true positive": test[(test.label == 1) & test.correct].sort_values(
                     "prob_malignant", ascending=False),
                 "false negative": test[(test.label == 1) & ~test.correct].sort_values(
                     "prob_malignant"),
                 "false positive": test[(test.label == 0) & ~test.correct].sort_values(
                     "prob_malignant", ascending=False)}
        for kind, chosen in picks.items():
            if len(chosen):
                k = ids.index(chosen.id.iloc[0])
                key = (f"{model}|{kind}|{chosen.id.iloc[0]}|{chosen.prob_malignant.iloc[0]:.2f}|"
                       f"{run.seed}|{chosen.status.iloc[0]}|"
                       f"{chosen.map_size.iloc[0]} {chosen.layer.iloc[0]}")
                out[f"{key}|image"] = arrays["test/images"][k]
                out[f"{key}|map"] = arrays["test/maps"][k].astype(np.float32)
                out[f"{key}|mask"] = arrays["test/masks"][k]
    return out


PER_PAGE = 6  # model rows per figure page: a page fits a screen


def example_models(examples) -> list[str]:
    """The models with example maps (keys of ``examples``), as the tables order them: Fus2Net
    first, each model's variants (e.g. trained on cleaned images) after it."""
    return sorted(dict.fromkeys(k.split("|")[0] for k in examples),
                  key=lambda m: (m.split(" (")[0] != REFERENCE, m.split(" (")[0], m))


def page_names(n_models: int, per_page: int = PER_PAGE, stem: str = "explanations") -> list[str]:
    """``explanations_1``, ``explanations_2``, ...: one figure per ``per_page`` model rows."""
    return [f"{stem}_{k + 1}" for k in range(math.ceil(n_models / per_page))]


def explanation_grid(examples: dict[str, np.ndarray], base: Path,
                     per_page: int = PER_PAGE) -> list[Path]:
    """Pages ``<base>_1``, ``<base>_2``, ... of at most ``per_page`` model rows each (a page fits
    a screen). Rows: models; columns: a true positive, a false negative and a false positive test
    image with its Grad-CAM map overlaid (one colour scale, with its bar), the lesion mask
    outlined, the seed, map size and layer said, and an empty map marked as such."""
    models = example_models(examples)
    names = page_names(len(models), per_page, base.name)
    out: list[Path] = []
    for k, name in enumerate(names):
        title = f" (page {k + 1} of {len(names)})" if len(names) > 1 else ""
        out += _grid_page(examples, models[k * per_page:(k + 1) * per_page],
                          base.with_name(name), title)
    return out


def _grid_page(examples: dict[str, np.ndarray], models: list[str], base: Path,
               title: str) -> list[Path]:
    kinds = ["true positive", "false negative", "false positive"]
    keys = sorted({k.rsplit("|", 1)[0] for k in examples})
    rows = max(1, len(models))
    fig, axes = plt.subplots(rows, 3, figsize=(7.2, 2.4 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    shown = None
    for r, model in enumerate(models):
        for c, kind in enumerate(kinds):
            key = next((k for k in keys if k.startswith(f"{model}|{kind}|")), None)
            ax = axes[r, c]
            if key is None:
                ax.set_title(f"{model}: no {kind}", fontsize=7)
                continue
            parts = key.split("|")
            image_id, prob = parts[2], parts[3]
            seed, status, where = (parts[4:7] + ["?", "?", "?"])[:3]
            ax.imshow(examples[f"{key}|image"], cmap="gray", vmin=0, vmax=255)
            if status == "measured":
                shown = ax.imshow(examples[f"{key}|map"], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            else:
                ax.text(0.5, 0.5, status, color="yellow", ha="center", va="center", fontsize=9,
                        transform=ax.transAxes, bbox={"facecolor": "black", "alpha": 0.6})
            if examples[f"{key}|mask"].any():
                ax.contour(examples[f"{key}|mask"].astype(float), levels=[0.5], colors="white",
                           linewidths=0.8)
            # the map's size and layer on a line of their own: a long layer name
            # (backbone.Mixed_5d, vgg.features.25) beside the probability ran into the next panel
            ax.set_title(f"{figures.wrapped(model)}\nseed {seed}: {kind}, {image_id}\nP(malignant) {prob}"
                         f"\nmap {where}", fontsize=6.5)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), fraction=0.03, shrink=0.6)
        bar.set_label("Grad-CAM (share of the map's peak)", fontsize=7)
    fig.suptitle("Grad-CAM for malignancy on held-out test images (white: lesion mask)" + title,
                 fontsize=9)
    return figures.save(fig, base)


def write_tables(ctx: ReportContext) -> None:
    """``explanations.{csv,md,tex}`` and the example maps, when any run was explained."""
    cams = explanation_table(ctx.runs)
    if not len(cams):
        return
    caption = camtable.caption(ctx.runs[0].record.settings.img_size)
    write_table(cams, camtable.display(cams), ctx.tdir / "explanations", caption)
    every = cams[cams.images == "all"].reset_index(drop=True)  # the README's rows
    write_table(every, camtable.display(every), ctx.tdir / "explanations_all",
                caption + " All images of each set; by correct/wrong prediction and by class in "
                "tables/explanations.md.")
    write_npz(ctx.tdir / EXAMPLES, explanation_examples(ctx.runs))
    ctx.tables["explanations"] = cams


def _stale(fdir: Path) -> None:
    """Remove an earlier report's explanation figures (one or paginated): fewer pages, or none,
    must not leave old ones to mislead."""
    for path in fdir.glob("explanations*.*"):
        page = path.stem.removeprefix("explanations")
        if path.suffix in (".png", ".pdf") and (page == "" or page[1:].isdigit() and page[0] == "_"):
            path.unlink(missing_ok=True)


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    if not (tdir / EXAMPLES).is_file():
        return []
    with np.load(tdir / EXAMPLES) as npz:
        examples = dict(npz)
    if not examples:  # the maps (git-ignored) are not here: the pages drawn from them stay, as
        return []     # the README lists them from the table
    _stale(fdir)
    return explanation_grid(examples, fdir / "explanations")


def _pages(cams: pd.DataFrame) -> list[str]:
    """The figure's pages, from the table alone (the README must not depend on whether the
    example maps, which git does not keep, are present): one row per model with a measured map."""
    measured = cams[(cams.n_measured > 0) | (cams.n_measured_some > 0)]
    return page_names(measured.model.nunique())


def readme(ctx: ReportContext) -> list[str]:
    if "explanations" not in ctx.tables:
        return []
    cams = ctx.tables["explanations"]
    notes = camtable.notes(cams) or [
        "No model's maps are at chance level in the lesion or carry the border-energy flag."]
    missing = left_out(ctx.runs)
    pages = _pages(cams) if ((cams.n_measured > 0) | (cams.n_measured_some > 0)).any() else []
    figure = [f"![Explanations, page {k + 1} of {len(pages)}](figures/{name}.png)"
              for k, name in enumerate(pages)]
    figure = [*figure, ""] if figure else []
    return ["## Where the models look (Grad-CAM)", "", *notes, "",
            *(["", *missing, ""] if missing else []),
            ctx.table_md("explanations_all"), "",
            *plain_words(
                "Grad-CAM shows which part of an image pushed a model towards 'malignant'; these "
                "columns check whether that part is the lesion the radiologist outlined (a "
                "pointing hit, a lesion energy ratio above 1) or the image border, where calipers, "
                "labels and scanner text sit (a frame energy ratio above 1, and above what the "
                "same model gives phantom images that carry no marks: flagged ⚑).",
                "A model can score well while looking at the wrong place, so a flagged row warns "
                "that its accuracy may not hold on images marked up differently."),
            *figure]
