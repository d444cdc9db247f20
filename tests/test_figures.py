"""Each report figure as a reader sees it: drawn from small saved-table fixtures, its size, panels,
labels and marks checked (each section's figure, bench.reporting.sections)."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.reporting import figures
from bench.reporting.sections import (
    calibration,
    cvfolds,
    errors,
    experiments,
    explanations,
    external,
    heldout,
    illustrations,
)

MODELS = ["fus2net", "resnet50", "zeimarani_cnn"]


@pytest.fixture()
def drawn(monkeypatch):
    """The figure each call drew (captured before it is saved and closed)."""
    seen = []

    def capture(fig, base):  # the PNG as bench.reporting.figures.save writes it (the PDF is tested elsewhere)
        seen.append(fig)
        fig.savefig(base.with_suffix(".png"), dpi=150, bbox_inches="tight")
        return [base.with_suffix(".png")]

    monkeypatch.setattr(figures, "save", capture)
    return seen


def _texts(fig) -> str:
    parts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        parts += [t.get_text() for t in ax.texts]
        parts += [t.get_text() for t in ax.get_yticklabels() + ax.get_xticklabels()]
        if ax.get_legend():
            parts += [t.get_text() for t in ax.get_legend().get_texts()]
    return "\n".join(parts)


def _panels(fig) -> list:
    return [ax for ax in fig.axes if ax.axison and ax.get_label() != "<colorbar>"]


def _png(path, min_height=300):
    img = Image.open(path.with_suffix(".png"))
    assert img.height >= min_height, img.size
    assert np.asarray(img.convert("L")).std() > 10  # not blank
    return img


def _t3():
    return pd.DataFrame({"model": MODELS, "auc": [0.84, 0.88, 0.90], "auc_sd": [0.03, np.nan, 0.02],
                         "n_seeds": [3, 1, 3], "flag": ["", "", ""],
                         "tp_mean": [32, 38, 35.7], "fn_mean": [18, 12, 14.3],
                         "tn_mean": [42, 45, 43.0], "fp_mean": [8, 5, 7.0]})


def test_roc_figure_has_a_panel_per_model_and_the_table_auc_in_its_legend(drawn, tmp_path):
    rows = []
    for m in MODELS:
        for seed in (-1, 0):
            rows += [{"model": m, "seed": seed, "fpr": f, "tpr": min(1, 2 * f)}
                     for f in np.linspace(0, 1, 11)]
    heldout.roc_figure(pd.DataFrame(rows), _t3(), tmp_path / "roc")
    fig = drawn[0]
    assert len(_panels(fig)) == 3 and "AUC 0.880 (1 seed)" in _texts(fig)
    assert "sensitivity" in _texts(fig) and "1 − specificity" in _texts(fig)
    _png(tmp_path / "roc")


def test_confusion_matrices_share_one_colour_scale_and_agree_with_the_table(drawn, tmp_path):
    heldout.confusion_grid(_t3(), tmp_path / "cm")
    fig = drawn[0]
    panels = _panels(fig)
    assert len(panels) == 3
    limits = {tuple(ax.collections[0].get_clim()) for ax in panels}
    assert limits == {(0.0, 50.0)}  # one scale for all panels: 0 to the class size
    text = _texts(fig)
    assert "14.3" in text and "mean of 3 seeds" in text and "1 seed" in text
    _png(tmp_path / "cm")


def test_cv_folds_show_every_configuration_with_visible_points(drawn, tmp_path):
    folds = pd.DataFrame([{"model": m, "seed": s, "fold": f, "status": "ok", "auc": 0.8 + 0.01 * f,
                           "accuracy": 0.75} for m in ("fus2net", "fus2net: SGD")
                          for s in (0, 1) for f in (0, 1)])
    cvfolds.cv_strip(folds, tmp_path / "cv")
    fig = drawn[0]
    text = _texts(fig)
    assert "fus2net: SGD (4 folds)" in text and "seed 1" in text
    assert all(ax.collections[0].get_sizes()[0] >= 20 for ax in _panels(fig))
    _png(tmp_path / "cv", min_height=400)


def test_reliability_diagram_has_bins_with_counts_and_intervals_per_model(drawn, tmp_path):
    bins = pd.DataFrame([{"model": m, "seed": s, "bin": k, "p_min": k / 5, "p_max": (k + 1) / 5,
                          "mean_pred": (k + 0.5) / 5, "frac_pos": (k + 0.5) / 5, "frac_lo": k / 5,
                          "frac_hi": (k + 1) / 5, "count": 20}
                         for m in MODELS for s in (0, 1) for k in range(5)])
    calibration.calibration_figure(bins, tmp_path / "cal")
    fig = drawn[0]
    assert len(_panels(fig)) == 3
    assert "5 bins of 20 images" in _texts(fig) and "all 2 seeds" in _texts(fig)
    assert "observed share malignant" in _texts(fig)
    _png(tmp_path / "cal")


def test_reliability_diagram_draws_every_seed_the_table_averages(drawn, tmp_path):
    bins = pd.DataFrame([{"model": "fus2net", "seed": s, "bin": k, "mean_pred": (k + 0.5) / 4,
                          "frac_pos": (k + 0.5) / 4 + 0.05 * s, "frac_lo": k / 4,
                          "frac_hi": (k + 1) / 4, "count": 25}
                         for s in (0, 1, 2) for k in range(4)])
    calibration.calibration_figure(bins, tmp_path / "cal")
    ax = _panels(drawn[0])[0]
    curves = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(curves) == 3  # one curve per seed, not seed 0 alone
    plotted = sorted(np.round(c.lines[0].get_ydata()[0], 3) for c in curves)
    assert plotted == [0.125, 0.175, 0.225]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["seed 0", "seed 1", "seed 2"]


def test_optimizer_bars_have_error_bars_a_y_label_and_each_variant_in_the_legend(drawn, tmp_path):
    t = pd.DataFrame([{"variant": v, "evaluated_on": f"CV: {n} folds over {n // 2} seed(s) (2 "
                       "per seed)", **{k: 0.8 for k in ("accuracy", "sensitivity", "specificity",
                                                         "auc")},
                       **{f"{k}_sd": 0.05 for k in ("accuracy", "sensitivity", "specificity",
                                                    "auc")}}
                      for v, n in (("Adam", 6), ("RMSprop", 4), ("SGD", 4))])
    experiments.optimizer_bars(t, tmp_path / "opt")
    fig = drawn[0]
    ax = _panels(fig)[0]
    assert "mean ± sd" in ax.get_ylabel()
    legend = [x.get_text() for x in ax.get_legend().get_texts()]
    assert legend == ["Adam (6 folds over 3 seed(s))", "RMSprop (4 folds over 2 seed(s))",
                      "SGD (4 folds over 2 seed(s))"]
    assert len(ax.containers) >= 3 and any(c.__class__.__name__ == "ErrorbarContainer"
                                           for c in ax.containers)
    _png(tmp_path / "opt")


def test_explanation_grid_states_seed_and_map_and_marks_empty_maps(drawn, tmp_path):
    img, m = np.full((64, 64), 100, np.uint8), np.zeros((64, 64), np.float32)
    m[20:40, 20:40] = 1
    mask = np.zeros((64, 64), bool)
    mask[25:35, 25:35] = True
    ex = {}
    models = ["byra_vgg19_ml", "fus2net (trained on cleaned images)", "fus2net"]
    for model in models:
        for kind, status in (("true positive", "measured"), ("false negative", "empty map")):
            key = f"{model}|{kind}|img1|0.90|0|{status}|12x12 block1.1"
            ex.update({f"{key}|image": img, f"{key}|map": m, f"{key}|mask": mask})
    paths = explanations.explanation_grid(ex, tmp_path / "ex")
    fig = drawn[0]
    text = _texts(fig)
    assert "fus2net\nseed 0: true positive, img1" in text and "map 12x12 block1.1" in text
    # rows as in the tables: Fus2Net, its variant, then the other models
    rows = [ax.get_title().split("\nseed")[0].replace("\n", " ") for ax in fig.axes[0:9:3]]
    assert rows == ["fus2net", "fus2net (trained on cleaned images)", "byra_vgg19_ml"]
    assert "empty map" in text and "no false positive" in text
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    assert [p.name for p in paths] == ["ex_1.png"]
    _png(tmp_path / "ex_1")


def test_explanation_grid_is_paginated_to_fit_a_screen(drawn, tmp_path):
    img, m = np.full((64, 64), 100, np.uint8), np.ones((64, 64), np.float32)
    mask = np.zeros((64, 64), bool)
    ex = {}
    models = [f"model{k:02d}" for k in range(8)] + ["fus2net"]
    for model in models:
        key = f"{model}|true positive|img1|0.90|0|measured|8x8 l"
        ex.update({f"{key}|image": img, f"{key}|map": m, f"{key}|mask": mask})
    paths = explanations.explanation_grid(ex, tmp_path / "explanations")
    assert [p.name for p in paths] == ["explanations_1.png", "explanations_2.png"]
    assert explanations.page_names(9) == ["explanations_1", "explanations_2"]
    first, second = drawn
    rows = [ax.get_title().split("\n")[0] for ax in first.axes[0:18:3]]
    assert rows[0] == "fus2net" and len(rows) == explanations.PER_PAGE == 6
    assert "(page 1 of 2)" in first._suptitle.get_text()
    assert "model07" in _texts(second) and "model00" not in _texts(second)
    assert first.get_size_inches()[1] <= 15  # at most six rows: fits a screen
    for p in paths:
        _png(p.with_suffix(""))


def test_a_redrawn_report_leaves_no_stale_explanation_page(tmp_path):
    fdir = tmp_path / "figures"
    fdir.mkdir()
    for name in ("explanations.png", "explanations_3.png", "explanations_2.pdf", "other.png",
                 "explanations_all.png"):
        (fdir / name).write_text("x")
    explanations._stale(fdir)
    assert sorted(p.name for p in fdir.iterdir()) == ["explanations_all.png", "other.png"]


def test_a_report_without_the_git_ignored_arrays_keeps_the_figures_drawn_from_them(tmp_path):
    # a clone of a results set has the tables but not the maps and thumbnails (.npz are ignored)
    tdir, fdir = tmp_path / "tables", tmp_path / "figures"
    tdir.mkdir()
    fdir.mkdir()
    committed = {name: f"drawn from the arrays: {name}" for name in (
        "explanations_1.png", "explanations_2.png", "fig3_misclassified.png")}
    for name, text in committed.items():
        (fdir / name).write_text(text)
    np.savez(tdir / explanations.EXAMPLES, **{})
    pd.DataFrame({"id": ["a"], "label": [0], "prob_malignant": [0.9], "seeds_wrong": [3],
                  "n_seeds": [3]}).to_csv(tdir / "fig3_misclassified.csv", index=False)
    np.savez(tdir / "fig3_misclassified.npz", **{})
    assert explanations.draw_figures(tdir, fdir) == [] and errors.draw_figures(tdir, fdir) == []
    assert {p.name: p.read_text() for p in fdir.iterdir()} == committed
    (fdir / "fig3_misclassified.png").unlink()  # nothing to keep: drawn, with empty frames
    assert any(p.suffix == ".png" for p in errors.draw_figures(tdir, fdir))


def test_misclassified_grid_labels_every_image(drawn, tmp_path):
    t = pd.DataFrame({"id": ["a", "b"], "label": [0, 1], "prob_malignant": [0.9, 0.1],
                      "seeds_wrong": [3, 2], "n_seeds": [3, 3]})
    errors.misclassified_grid(t, {"a": np.full((64, 64), 90, np.uint8)}, tmp_path / "mis")
    text = _texts(drawn[0])
    assert "true benign, P(mal) 0.90" in text and "wrong in 2/3 seeds" in text
    assert "no thumbnail" in text
    _png(tmp_path / "mis", min_height=150)


def _pipeline(side=64):
    rng = np.random.default_rng(0)
    arrays = {"ids": np.array(["b1", "m1"]), "ranges": np.array(json.dumps(
        {"rotation_deg": 20, "shift": 0.1, "shear_deg": 10, "brightness": [0.8, 1.2]}))}
    for cls in ("benign", "malignant"):
        arrays.update({f"{cls}/display": rng.integers(0, 255, (side, side), dtype=np.uint8),
                       f"{cls}/augmented": rng.integers(0, 255, (3, side, side), dtype=np.uint8),
                       f"{cls}/original": rng.integers(0, 255, (100, 120), dtype=np.uint8),
                       f"{cls}/resized": rng.integers(0, 255, (side, side), dtype=np.uint8),
                       f"{cls}/normalized": rng.normal(size=(side, side)).astype(np.float16)})
    params = pd.DataFrame([{"image": c, "view": v, "rotation_deg": 1.0, "shear_deg": 2.0,
                            "shift_x": 0.01, "shift_y": -0.02, "hflip": v == 1, "brightness": 1.1}
                           for c in ("benign", "malignant") for v in (1, 2, 3)])
    return arrays, params


def test_augmentation_figure_is_drawn_at_the_training_size(drawn, tmp_path):
    arrays, params = _pipeline(64)
    illustrations.augmentation_figure(arrays, params, tmp_path / "aug")
    fig = drawn[0]
    assert "at the training size, 64 px" in _texts(fig)
    assert len(fig.axes) == 8 and "h-flip" in _texts(fig)
    _png(tmp_path / "aug")


def test_preprocessing_figure_has_three_steps_per_class(drawn, tmp_path):
    arrays, _ = _pipeline(64)
    illustrations.preprocessing_figure(arrays, tmp_path / "pre")
    text = _texts(drawn[0])
    assert "resized to the model input (64×64)" in text and "normalised (mean" in text
    _png(tmp_path / "pre")


def test_external_figures_have_a_panel_per_model_and_per_set(drawn, tmp_path):
    roc = pd.DataFrame([{"model": m, "set": s, "fpr": f, "tpr": f} for m in MODELS[:2]
                        for s in ("internal test", "siteB") for f in (0.0, 0.5, 1.0)])
    external.external_roc(roc, tmp_path / "eroc")
    assert len(_panels(drawn[0])) == 2 and "siteB" in _texts(drawn[0])
    cal = pd.DataFrame([{"model": m, "set": "siteB", "bin": 0, "mean_pred": 0.3, "frac_pos": 0.4,
                         "count": 30} for m in MODELS[:2]])
    external.external_calibration(cal, tmp_path / "ecal")
    assert len(_panels(drawn[1])) == 2 and "siteB" in _texts(drawn[1])
    _png(tmp_path / "eroc")
    plt.close("all")


def test_external_calibration_marks_a_degenerate_row_dashed_in_its_legend(drawn, tmp_path):
    cal = pd.DataFrame([{"model": m, "set": s, "bin": k, "mean_pred": 0.2 + 0.3 * k,
                         "frac_pos": 0.3 + 0.3 * k, "frac_lo": 0.1, "frac_hi": 0.9, "count": 30}
                        for m in MODELS[:2] for s in ("breast", "siteB") for k in range(2)])
    table = pd.DataFrame({"model": ["fus2net", "fus2net", "resnet50"],
                          "external_set": ["breast", "siteB", "siteB"],
                          "flag": [np.nan, "predicts benign for 100% of images", ""]})
    external.external_calibration(cal, tmp_path / "ecal", external.degenerate_pairs(table))
    first, second = _panels(drawn[0])[:2]
    legend = [t.get_text() for t in first.get_legend().get_texts()]
    assert legend == ["breast", "siteB (degenerate)"]
    styles = {c.get_label(): c.lines[0].get_linestyle() for c in first.containers}
    assert styles["siteB (degenerate)"] == "--" and styles["breast"] == "-"
    assert "(degenerate)" not in "".join(t.get_text() for t in second.get_legend().get_texts())
    assert "dashed" in drawn[0]._suptitle.get_text()


def test_reliance_figure_drops_rows_of_a_set_without_marks(drawn, tmp_path):
    from bench.reporting.sections import reliance

    rows = [{"model": m, "set": s, "delta_auc": 0.01 if s == "test" else 0.0,
             "delta_lo": -0.01 if s == "test" else 0.0, "delta_hi": 0.03 if s == "test" else 0.0,
             "marked_benign": "32/50" if s == "test" else "0/200",
             "marked_malignant": "24/50" if s == "test" else "0/200",
             **{f"shift_{c}_{k}": (0.01 if s == "test" else np.nan)
                for c in ("benign", "malignant") for k in ("targets", "lo", "hi")}}
            for m in MODELS[:2] for s in ("test", "synthetic-siteB")]
    reliance.reliance_figure(pd.DataFrame(rows), tmp_path / "rel")
    fig = drawn[0]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["fus2net · test", "resnet50 · test"][::-1] or \
        sorted(labels) == ["fus2net · test", "resnet50 · test"]
    assert not any("synthetic-siteB" in x for x in labels)
    assert "Not shown (no marked image: nothing to remove or paste): synthetic-siteB" in _texts(fig)
    _png(tmp_path / "rel", min_height=200)
