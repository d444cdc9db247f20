"""Figures drawn from the saved report tables only (so ``bench.report`` can redraw without runs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.atomic import write_atomic  # noqa: E402

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


def roc_figure(points: pd.DataFrame, table: pd.DataFrame, base: Path) -> list[Path]:
    """Fig. 2 analogue: each seed's ROC curve (faint) and the mean over seeds per model; the
    legend gives the mean test AUC ± sd over seeds; Fus2Net first and thickest."""
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    models = list(dict.fromkeys(points.model))
    palette = sns.color_palette("tab20", max(1, len(models)))
    styles = ["-", "--", "-.", ":"]
    for k, model in enumerate(models):
        pts = points[points.model == model]
        row = table[table.model == model].iloc[0]
        color, lw = palette[k], (2.4 if model == "fus2net" else 1.3)
        for _, seed in pts[pts.seed >= 0].groupby("seed"):
            ax.step(seed.fpr, seed.tpr, where="post", color=color, lw=0.6, alpha=0.25)
        mean = pts[pts.seed == -1]
        sd = row.get("auc_sd")
        spread = f" ± {sd:.3f}" if sd == sd and sd is not None else ""
        ax.plot(mean.fpr, mean.tpr, color=color, lw=lw, ls=styles[k % len(styles)],
                label=f"{_label(row)}: AUC {row['auc']:.3f}{spread} ({int(row['n_seeds'])} seeds)",
                zorder=3 if model == "fus2net" else 2)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    ax.set(xlabel="1 − specificity (false-positive rate)", ylabel="sensitivity (true-positive rate)",
           xlim=(-0.01, 1.01), ylim=(-0.01, 1.01),
           title="ROC on the held-out test set (faint: each seed; bold: mean over seeds)")
    ax.legend(loc="lower right", fontsize=6.5)
    return save(fig, base)


def confusion_grid(table: pd.DataFrame, base: Path) -> list[Path]:
    """One 2×2 confusion matrix per model of its seed-averaged probabilities (threshold 0.5)."""
    rows = table.dropna(subset=["mean_prob_tp"])
    n = max(1, len(rows))
    cols = min(4, n)
    fig, axes = plt.subplots(int(np.ceil(n / cols)), cols, figsize=(3 * cols, 2.8 * np.ceil(n / cols)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, rows.iterrows(), strict=False):
        ax.axis("on")
        m = np.array([[row.mean_prob_tn, row.mean_prob_fp], [row.mean_prob_fn, row.mean_prob_tp]],
                     dtype=int)
        sns.heatmap(m, annot=True, fmt="d", cbar=False, cmap="Blues", ax=ax,
                    xticklabels=["benign", "malignant"], yticklabels=["benign", "malignant"])
        ax.set(title=_label(row), xlabel="predicted", ylabel="true")
    fig.suptitle("Seed-averaged P(malignant) ≥ 0.5 on the held-out test set", fontsize=9)
    fig.tight_layout()
    return save(fig, base)


def cv_strip(folds: pd.DataFrame, base: Path) -> list[Path]:
    """Per-fold CV AUC and accuracy of each model (strip plot over a box plot)."""
    ok = folds[folds.status == "ok"] if "status" in folds else folds
    long = ok.melt(id_vars=["model", "fold"], value_vars=["accuracy", "auc"], var_name="metric")
    # every (seed, fold) is one point
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 + 0.45 * max(1, long.model.nunique())),
                             squeeze=False)
    for ax, metric in zip(axes.flat, ("accuracy", "auc"), strict=True):
        d = long[long.metric == metric]
        if len(d):
            sns.boxplot(data=d, y="model", x="value", ax=ax, color="0.9", fliersize=0)
            state = np.random.get_state()  # seaborn's jitter draws from the global generator
            np.random.seed(0)
            sns.stripplot(data=d, y="model", x="value", ax=ax, size=4, color="C0")
            np.random.set_state(state)
        ax.set(title=f"CV {metric} per fold", xlabel=metric, ylabel="")
    fig.tight_layout()
    return save(fig, base)


def calibration_figure(bins: pd.DataFrame, base: Path) -> list[Path]:
    """Reliability diagram: observed malignant rate against mean predicted probability per bin."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    for model, d in bins.groupby("model", sort=False):
        ax.plot(d.mean_pred, d.frac_pos, marker="o", lw=1.2, label=model)
    ax.set(xlabel="mean predicted P(malignant)", ylabel="observed fraction malignant",
           xlim=(0, 1), ylim=(0, 1), title="Calibration on the held-out test set")
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, base)


def optimizer_bars(table: pd.DataFrame, base: Path) -> list[Path]:
    """Fig. 1 analogue: accuracy, sensitivity, specificity and AUC per optimizer."""
    done = table.dropna(subset=["accuracy"]) if "accuracy" in table else table.iloc[0:0]
    long = done.melt(id_vars=["variant"], value_vars=["accuracy", "sensitivity", "specificity", "auc"],
                     var_name="metric") if len(done) else pd.DataFrame(columns=["variant", "metric", "value"])
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(long):
        sns.barplot(data=long, x="metric", y="value", hue="variant", ax=ax)
    where = done.evaluated_on.iloc[0] if len(done) else "not run"
    ax.set(ylim=(0, 1), ylabel="", xlabel="", title=f"Fus2Net by optimizer ({where})")
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
    """Reliability diagram per external set: observed malignant rate against the mean predicted
    probability, one line per model."""
    sets = list(dict.fromkeys(bins.set)) or ["(none)"]
    fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 4.5), squeeze=False)
    for ax, name in zip(axes.flat, sets, strict=True):
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        for model, d in bins[bins.set == name].groupby("model", sort=False):
            ax.plot(d.mean_pred, d.frac_pos, marker="o", lw=1.2, label=model)
        ax.set(xlabel="mean predicted P(malignant)", ylabel="observed fraction malignant",
               xlim=(0, 1), ylim=(0, 1), title=f"Calibration on {name}")
        if len(bins):
            ax.legend(fontsize=6, loc="upper left")
    return save(fig, base)


def explanation_grid(examples: dict[str, np.ndarray], base: Path) -> list[Path]:
    """Rows: models; columns: a true positive, a false negative and a false positive test image
    with its Grad-CAM map overlaid and the lesion mask outlined (from the saved examples)."""
    kinds = ["true positive", "false negative", "false positive"]
    keys = sorted({k.rsplit("|", 1)[0] for k in examples})
    models = list(dict.fromkeys(k.split("|")[0] for k in keys))
    fig, axes = plt.subplots(max(1, len(models)), 3, figsize=(7.5, 2.6 * max(1, len(models))),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, model in enumerate(models):
        for c, kind in enumerate(kinds):
            key = next((k for k in keys if k.startswith(f"{model}|{kind}|")), None)
            ax = axes[r, c]
            if key is None:
                ax.set_title(f"{model}: no {kind}", fontsize=7)
                continue
            _, _, image_id, prob = key.split("|")
            ax.imshow(examples[f"{key}|image"], cmap="gray", vmin=0, vmax=255)
            ax.imshow(examples[f"{key}|map"], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            if examples[f"{key}|mask"].any():
                ax.contour(examples[f"{key}|mask"].astype(float), levels=[0.5], colors="white",
                           linewidths=0.8)
            ax.set_title(f"{model}: {kind}\n{image_id}, P(malignant) {prob}", fontsize=7)
    fig.suptitle("Grad-CAM on held-out test images (white: lesion mask)", fontsize=9)
    fig.tight_layout()
    return save(fig, base)
