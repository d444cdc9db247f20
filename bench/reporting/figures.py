"""Figures drawn from the saved report tables only (so ``bench.reporting.report`` can redraw without runs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.core.atomic import write_atomic  # noqa: E402

PDF_META = {"CreationDate": None, "Producer": None, "Creator": None}
PNG_META = {"Software": None}


def save(fig: plt.Figure, base: Path) -> list[Path]:
    """Write ``base.png`` and ``base.pdf`` atomically with fixed metadata (byte-identical reruns)."""
    out = []
    for ext, meta in ((".png", PNG_META), (".pdf", PDF_META)):
        path = base.with_suffix(ext)
        write_atomic(path, lambda p, ext=ext, meta=meta: fig.savefig(p, format=ext[1:], dpi=150,
                                                                     metadata=meta,
                                                                     bbox_inches="tight"))
        out.append(path)
    plt.close(fig)
    return out


def _label(row) -> str:
    flag = " [degenerate]" if isinstance(row.get("flag"), str) and row.get("flag") else ""
    return f"{row['model']}{flag}"


REFERENCE_COLOR = "black"


def model_styles(models: list[str]) -> dict[str, tuple]:
    """A distinct (colour, line style) per model, Fus2Net black: ``colorblind`` has 10 distinct
    colours, and line styles cycle after that so no two models share both."""
    palette = sns.color_palette("colorblind", 10)
    styles = ["-", "--", "-.", ":"]
    others = [m for m in models if m != "fus2net"]
    out = {"fus2net": (REFERENCE_COLOR, "-")}
    for k, m in enumerate(others):
        out[m] = (palette[k % len(palette)], styles[(k // len(palette)) % len(styles)])
    return out


def _roc_curves(ax, pts: pd.DataFrame, color, ls: str, lw: float, label: str) -> None:
    for _, seed in pts[pts.seed >= 0].groupby("seed"):
        ax.step(seed.fpr, seed.tpr, where="post", color=color, lw=0.6, alpha=0.25)
    mean = pts[pts.seed == -1]
    ax.plot(mean.fpr, mean.tpr, color=color, lw=lw, ls=ls, label=label)


def _model_panels(n: int, width: float):
    """Small multiples, one panel per model, at most four a row, shared axes; every panel starts
    hidden and is shown when drawn on."""
    cols = min(4, max(1, n))
    rows = int(np.ceil(n / cols)) if n else 1
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.3 * rows), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def roc_figure(points: pd.DataFrame, table: pd.DataFrame, base: Path) -> list[Path]:
    """Fig. 2 analogue as small multiples: one panel per model, each against Fus2Net (black, first
    panel alone); faint lines are single seeds, bold the mean over seeds; the legend gives the
    mean test AUC ± sd over seeds. Every model keeps one distinct colour and line style."""
    models = list(dict.fromkeys(points.model))
    ref = "fus2net" if "fus2net" in models else None
    styles = model_styles(models)
    fig, axes = _model_panels(len(models), 3.3)

    def label(model: str) -> str:
        row = table[table.model == model].iloc[0]
        sd = row.get("auc_sd")
        spread = f" ± {sd:.3f}" if sd == sd and sd is not None else ""
        k = int(row["n_seeds"])
        return f"{_label(row)}\nAUC {row['auc']:.3f}{spread} ({k} seed{'s' if k > 1 else ''})"

    order = ([ref] if ref else []) + [m for m in models if m != ref]
    for ax, model in zip(axes.flat, order, strict=False):
        ax.axis("on")
        if ref and model != ref:
            _roc_curves(ax, points[points.model == ref], REFERENCE_COLOR, "-", 1.2, label(ref))
        color, ls = styles[model]
        _roc_curves(ax, points[points.model == model], color, ls, 2.0, label(model))
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), title=model)
        ax.title.set_fontsize(9)
        ax.legend(loc="lower right", fontsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("1 − specificity")
    for ax in axes[:, 0]:
        ax.set_ylabel("sensitivity")
    fig.suptitle("ROC on the held-out test set, each model against Fus2Net (black); faint: "
                 "single seeds, bold: mean over seeds", fontsize=9)
    fig.tight_layout()
    return save(fig, base)


def confusion_grid(table: pd.DataFrame, base: Path) -> list[Path]:
    """One 2×2 confusion matrix per model at threshold 0.5: the mean count over its seeds (the
    counts behind Table 3's sensitivity and specificity), one colour scale for every panel (0 to
    the largest class size)."""
    rows = table.dropna(subset=["tp_mean"]) if "tp_mean" in table else table.iloc[0:0]
    n = max(1, len(rows))
    cols = min(4, n)
    grid_rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(grid_rows, cols, figsize=(3.1 * cols, 2.9 * grid_rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    vmax = float(max([1.0] + [max(r.tn_mean + r.fp_mean, r.fn_mean + r.tp_mean)
                              for r in rows.itertuples()]))
    for ax, (_, row) in zip(axes.flat, rows.iterrows(), strict=False):
        ax.axis("on")
        m = np.array([[row.tn_mean, row.fp_mean], [row.fn_mean, row.tp_mean]], dtype=float)
        whole = np.allclose(m, np.round(m))
        sns.heatmap(m, annot=True, fmt=".0f" if whole else ".1f", cbar=False, cmap="Blues",
                    vmin=0, vmax=vmax, ax=ax, xticklabels=["benign", "malignant"],
                    yticklabels=["benign", "malignant"])
        seeds = int(row.n_seeds)
        ax.set(xlabel="predicted", ylabel="true")
        what = "1 seed" if seeds == 1 else f"mean of {seeds} seeds"
        ax.set_title(f"{_label(row)}\n{what}", fontsize=8)
    fig.suptitle("Held-out test set, P(malignant) ≥ 0.5: images per cell (mean over seeds; one "
                 f"colour scale, 0–{vmax:.0f})", fontsize=9)
    fig.tight_layout()
    return save(fig, base)


def cv_strip(folds: pd.DataFrame, base: Path) -> list[Path]:
    """Per-fold CV AUC and accuracy of every configuration with CV folds (comparison models and
    Fus2Net's experiment variants): one row each, one point per (seed, fold) coloured by seed, the
    fold mean as a bar."""
    ok = folds[folds.status == "ok"] if "status" in folds else folds
    order = list(dict.fromkeys(ok.model)) if len(ok) else []
    seeds = sorted(ok.seed.unique()) if len(ok) else []
    palette = dict(zip(seeds, sns.color_palette("colorblind", max(1, len(seeds))), strict=False))
    if not order:  # no configuration was trained with CV folds: say so instead of empty axes
        fig, ax = plt.subplots(figsize=(7, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, "No configuration of these runs was trained with cross-validation "
                "folds\n(a final fit alone has none), so there is nothing to show here.",
                ha="center", va="center", fontsize=9, transform=ax.transAxes)
        return save(fig, base)
    height = max(3.0, 1.2 + 0.42 * len(order))
    fig, axes = plt.subplots(1, 2, figsize=(10, height), squeeze=False, sharey=True)
    for ax, metric in zip(axes.flat, ("auc", "accuracy"), strict=True):
        for y, model in enumerate(order):
            d = ok[ok.model == model]
            jitter = np.linspace(-0.18, 0.18, len(d)) if len(d) > 1 else np.zeros(len(d))
            ax.scatter(d[metric], y + jitter, s=28, c=[palette[s] for s in d.seed],
                       edgecolors="black", linewidths=0.4, zorder=3)
            ax.plot([d[metric].mean()] * 2, [y - 0.3, y + 0.3], color="black", lw=1.5, zorder=2)
        ax.set_yticks(range(len(order)), [f"{m} ({len(ok[ok.model == m])} folds)"
                                          for m in order], fontsize=8)
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_xlabel(f"validation {metric.upper() if metric == 'auc' else metric} per fold")
        ax.grid(axis="x", lw=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color=palette[s], markeredgecolor="black",
                          label=f"seed {s}") for s in seeds]
    handles.append(plt.Line2D([], [], color="black", lw=1.5, label="mean over folds"))
    axes[0, 1].legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0))
    fig.suptitle("Cross-validation folds (configurations trained with CV; a final fit alone has "
                 "no folds)", fontsize=9)
    fig.tight_layout()
    return save(fig, base)


def calibration_figure(bins: pd.DataFrame, base: Path) -> list[Path]:
    """Reliability diagram, one panel per model (Fus2Net first) for its lowest seed: equal-count
    bins (each holds enough images to estimate a rate), the observed malignant share with its
    Wilson 95% interval and the bin's image count; the diagonal is perfect calibration."""
    models = list(dict.fromkeys(bins.model)) if len(bins) else []
    models = sorted(models, key=lambda m: m != "fus2net")
    styles = model_styles(models)
    fig, axes = _model_panels(len(models), 3.2)
    for ax, model in zip(axes.flat, models, strict=False):
        ax.axis("on")
        d = bins[bins.model == model]
        seed = int(d.seed.min())
        d = d[d.seed == seed]
        color = styles[model][0]
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
        ax.errorbar(d.mean_pred, d.frac_pos, yerr=[d.frac_pos - d.frac_lo, d.frac_hi - d.frac_pos],
                    color=color, marker="o", ms=4, lw=1.2, capsize=2)
        counts = sorted(set(d["count"].astype(int)))
        if len(counts) == 1:
            what = f"{len(d)} bins of {counts[0]} images"
        else:
            what = f"{len(d)} bins of {counts[0]}–{counts[-1]} images"
            for r in d.itertuples():
                ax.annotate(f"n={int(r.count)}", (r.mean_pred, r.frac_hi), xytext=(0, 3),
                            textcoords="offset points", ha="center", fontsize=6)
        n_seeds = bins[bins.model == model].seed.nunique()
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.05),
               title=f"{model}\nseed {seed} of {n_seeds}; {what}")
        ax.tick_params(labelbottom=True)
        ax.title.set_fontsize(8)
    for ax in axes[-1]:
        ax.set_xlabel("mean predicted P(malignant) in bin")
    for ax in axes[:, 0]:
        ax.set_ylabel("observed share malignant")
    fig.suptitle("Reliability on the held-out test set: equal-count bins, observed share with "
                 "its Wilson 95% CI; dotted: perfect calibration", fontsize=9)
    fig.tight_layout()
    return save(fig, base)


def optimizer_bars(table: pd.DataFrame, base: Path) -> list[Path]:
    """Fig. 1 analogue: CV accuracy, sensitivity, specificity and AUC per optimizer, mean ± sd
    over every fold of every seed, each variant's folds and seeds in its legend entry."""
    done = table.dropna(subset=["accuracy"]) if "accuracy" in table else table.iloc[0:0]
    metrics = ["accuracy", "sensitivity", "specificity", "auc"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / max(1, len(done))
    colours = sns.color_palette("colorblind", max(1, len(done)))
    for k, r in enumerate(done.to_dict("records")):
        x = np.arange(len(metrics)) + (k - (len(done) - 1) / 2) * width
        means = [r[m] for m in metrics]
        sds = [r.get(f"{m}_sd", np.nan) for m in metrics]
        where = str(r.get("evaluated_on", "")).replace("CV: ", "").split(" (")[0]
        ax.bar(x, means, width, yerr=np.nan_to_num(sds), capsize=3, color=colours[k],
               label=f"{r['variant']} ({where})")
    ax.set_xticks(range(len(metrics)), ["accuracy", "sensitivity", "specificity", "AUC"])
    ax.set(ylim=(0, 1), ylabel="CV score (mean ± sd over folds)")
    if len(done):
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Fus2Net by optimizer, cross-validation folds (the test set chose nothing)",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, base)


def external_roc(points: pd.DataFrame, base: Path) -> list[Path]:
    """One panel per model: ROC on the internal test set (solid) and on each external set
    (dashed), seed-averaged probabilities; Fus2Net's panel first."""
    models = list(dict.fromkeys(points.model))
    cols = min(4, max(1, len(models)))
    rows = int(np.ceil(len(models) / cols)) if models else 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    sets = list(dict.fromkeys(points.set))
    palette = dict(zip(sets, sns.color_palette("tab10", max(1, len(sets))), strict=False))
    for ax, model in zip(axes.flat, models, strict=False):
        ax.axis("on")
        for name, pts in points[points.model == model].groupby("set", sort=False):
            ax.step(pts.fpr, pts.tpr, where="post", color=palette[name], lw=1.6,
                    ls="-" if name == "internal test" else "--", label=name)
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
        ax.set(title=model, xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 − specificity",
               ylabel="sensitivity")
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle("Internal test (solid) vs external sets (dashed)", fontsize=10)
    fig.tight_layout()
    return save(fig, base)


def external_calibration(bins: pd.DataFrame, base: Path) -> list[Path]:
    """Reliability diagram per external set: observed malignant rate (Wilson 95% CI) against the
    mean predicted probability in equal-count bins, one line per model."""
    sets = list(dict.fromkeys(bins.set)) or ["(none)"]
    fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 4.5), squeeze=False)
    for ax, name in zip(axes.flat, sets, strict=True):
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        for model, d in bins[bins.set == name].groupby("model", sort=False):
            if {"frac_lo", "frac_hi"} <= set(d):
                ax.errorbar(d.mean_pred, d.frac_pos, yerr=[d.frac_pos - d.frac_lo,
                                                           d.frac_hi - d.frac_pos],
                            marker="o", lw=1.2, capsize=2, label=model)
            else:
                ax.plot(d.mean_pred, d.frac_pos, marker="o", lw=1.2, label=model)
        ax.set(xlabel="mean predicted P(malignant)", ylabel="observed fraction malignant",
               xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"Calibration on {name}\nequal-count bins of ≥ 20 images, Wilson 95% CI",
                     fontsize=9)
        if len(bins):
            ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return save(fig, base)


def explanation_grid(examples: dict[str, np.ndarray], base: Path) -> list[Path]:
    """Rows: models; columns: a true positive, a false negative and a false positive test image
    with its Grad-CAM map overlaid (one colour scale, with its bar), the lesion mask outlined, the
    seed, map size and layer said, and an empty map marked as such."""
    kinds = ["true positive", "false negative", "false positive"]
    keys = sorted({k.rsplit("|", 1)[0] for k in examples})
    models = sorted(dict.fromkeys(k.split("|")[0] for k in keys), key=lambda m: m != "fus2net")
    rows = max(1, len(models))
    fig, axes = plt.subplots(rows, 3, figsize=(8.4, 2.9 * rows + 0.4), squeeze=False,
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
            ax.set_title(f"{model}, seed {seed}: {kind}\n{image_id}, P(malignant) {prob}\n"
                         f"map {where}", fontsize=6.5)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), fraction=0.03, shrink=0.6)
        bar.set_label("Grad-CAM (share of the map's peak)", fontsize=7)
    fig.suptitle("Grad-CAM for malignancy on held-out test images (white: lesion mask)",
                 fontsize=9)
    return save(fig, base)


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
            ax.text(0.5, 0.5, "(no thumbnail:\nrun bench.evaluation.explain)", ha="center", va="center",
                    fontsize=6, transform=ax.transAxes)
        ax.set_title(f"{r['id']}\ntrue {names[int(r['label'])]}, P(mal) {r['prob_malignant']:.2f}\n"
                     f"wrong in {int(r['seeds_wrong'])}/{int(r['n_seeds'])} seeds", fontsize=6)
    more = f" (first {limit} of {len(table)})" if len(table) > limit else ""
    fig.suptitle(f"Fus2Net's misclassified held-out images{more}: seed-averaged probability at "
                 "threshold 0.5, most confidently wrong first", fontsize=9)
    fig.tight_layout()
    return save(fig, base)


def augmentation_figure(arrays: dict[str, np.ndarray], params: pd.DataFrame,
                        base: Path) -> list[Path]:
    """Fig. 5 analogue: one benign and one malignant training image and the training augmentation
    applied to each (parameters under each view, ranges in the title)."""
    import json
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
    return save(fig, base)


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
    return save(fig, base)
