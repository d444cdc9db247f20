"""The report's words on statistics (bench.reporting.sections): lesion-level metrics beside the
image-level ones, experiment contrasts worded only by contrasts.verdict, the CV-vs-test gap computed,
and Grad-CAM measures counted per seed with the border flag calibrated on unmarked images."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from bench.reporting import camtable
from bench.reporting.sections import SECTIONS, cvfolds, experiments, heldout, lesion
from bench.stats.contrasts import verdict


def _run(scores, labels, groups):
    test = pd.DataFrame({"id": [f"i{k}" for k in range(len(labels))], "label": labels,
                         "prob_malignant": scores, "group": groups})
    return SimpleNamespace(test=test)


def test_lesion_section_follows_the_held_out_comparison():
    assert SECTIONS.index(lesion) == SECTIONS.index(heldout) + 1


def test_lesion_level_auc_counts_each_lesion_once_by_the_mean_of_its_images():
    rng = np.random.default_rng(0)
    n_les = 30
    y_les = np.r_[np.zeros(15, int), np.ones(15, int)]
    sizes = rng.integers(1, 4, n_les)
    groups = np.repeat([f"L{k}" for k in range(n_les)], sizes)
    labels = np.repeat(y_les, sizes)
    seeds = [rng.uniform(size=labels.size) * 0.6 + 0.4 * labels for _ in range(3)]
    row = lesion.lesion_row("m", [_run(s, labels, groups) for s in seeds], n_boot=200)
    per_seed = []
    for s in seeds:
        means = pd.Series(s).groupby(groups).mean()
        ys = pd.Series(labels).groupby(groups).first()
        per_seed.append(roc_auc_score(ys[means.index], means))
    assert row["auc"] == pytest.approx(np.mean(per_seed))
    assert (row["n_lesions"], row["n_malignant"], row["n_images"]) == (30, 15, labels.size)
    assert row["auc_lo"] < row["auc"] < row["auc_hi"] and row["grouped"]
    assert 0 <= row["sensitivity_lo"] <= row["sensitivity"] <= row["sensitivity_hi"] <= 1
    shown = lesion.display(pd.DataFrame([row]))
    assert shown["Lesions (malignant) / images"].iloc[0] == f"30 (15) / {labels.size}"
    assert "Note" not in shown  # no row has a note: no empty column


def test_a_group_with_both_labels_leaves_the_row_with_the_reason():
    row = lesion.lesion_row("m", [_run([0.2, 0.8, 0.3, 0.9], [0, 1, 0, 1],
                                       ["a", "a", "b", "c"])])
    assert math.isnan(row.get("auc", math.nan)) and "both labels" in row["note"]


def test_lesion_readme_numbers_come_from_the_table():
    t = pd.DataFrame({"model": ["a", "b"], "n_images": [100, 100], "n_lesions": [65, 65],
                      "n_malignant": [38, 38], "auc": [0.70, 0.80], "grouped": [True, True],
                      "note": ["", ""]})
    text = lesion.readme_summary(t)
    assert "100 test images show 65 lesions (38 malignant)" in text
    assert "from 0.700 (a) to 0.800 (b)" in text


def _experiment(deltas):
    return pd.DataFrame([{"variant": "base", "is_base": True, "evaluated_on": "CV"}] + [
        {"variant": f"v{k}", "is_base": False, "evaluated_on": "CV", "delta_auc_cv": d,
         "delta_auc_cv_lo": lo,
         "delta_auc_cv_hi": hi, "paired_folds": 6, "reading": "old hand-written words"}
        for k, (d, lo, hi) in enumerate(deltas)])


def test_experiment_contrasts_are_worded_by_verdict_with_holm_and_the_detectable_difference():
    t = experiments.with_verdicts(_experiment([(-0.063, -0.261, 0.135), (0.2, 0.15, 0.25)]))
    wide, clear = t.iloc[1], t.iloc[2]
    se, p, mdd = experiments.fold_test(-0.063, -0.261, 0.135, 6)
    assert se == pytest.approx(0.198 / 2.570582, rel=1e-4) and mdd > 0.25
    expected = verdict(-0.063, -0.261, 0.135, wide.delta_auc_cv_p_holm, mdd)
    assert wide.reading == expected.replace("this test set detects", "these folds detect")
    assert "no difference shown" in wide.reading and "|ΔAUC| ≥" in wide.reading
    assert clear.reading.endswith("differs (higher)")
    # Holm across the table's two variants: the larger p keeps its own (or the step before)
    assert clear.delta_auc_cv_p_holm == pytest.approx(2 * clear.delta_auc_cv_p)
    assert wide.delta_auc_cv_p_holm == pytest.approx(max(wide.delta_auc_cv_p,
                                                         clear.delta_auc_cv_p_holm))
    assert t.iloc[0].reading == "" or pd.isna(t.iloc[0].reading)
    shown = experiments.experiment_display(t)
    assert "do not differ" not in " ".join(shown["What the interval says"])
    assert not any("old hand-written" in x for x in shown["What the interval says"])


def test_cv_vs_test_gap_is_computed_per_model_with_both():
    folds = pd.DataFrame({"model": ["fus2net"] * 3 + ["resnet50"], "kind": "comparison",
                          "status": "ok", "auc": [0.85, 0.87, 0.875, 0.9], "seed": 0,
                          "fold": [0, 1, 2, 0]})
    t3 = pd.DataFrame({"model": ["fus2net", "resnet50", "zeimarani_cnn"],
                       "auc": [0.785, 0.80, 0.7], "auc_cl_lo": [0.690, 0.75, 0.6],
                       "auc_cl_hi": [0.881, 0.85, 0.8]})
    gap = cvfolds.cv_test_gap(folds, t3)
    assert list(gap.model) == ["fus2net", "resnet50"]
    fus = gap.iloc[0]
    assert fus.cv_auc == pytest.approx(0.865) and fus.gap == pytest.approx(0.08)
    assert fus.cv_in_test_ci and not gap.iloc[1].cv_in_test_ci
    text = "\n".join(cvfolds.gap_lines(gap))
    assert "validation folds of the training images" in text and "same-lesion" in text
    assert ("**fus2net**: CV AUC 0.865 (3 folds), test AUC 0.785 [0.690, 0.881], gap +0.080: "
            "the CV mean lies within the test AUC's interval.") in text
    assert "CV AUC 0.900 (1 folds), test AUC 0.800 [0.750, 0.850], gap +0.100: the CV mean " \
           "lies outside" in text
    assert "1 of 2 CV means lie outside the test AUC's interval." in text


def _cam(ids, status, frame, set_name="test"):
    n = len(ids)
    return pd.DataFrame({"id": ids, "label": [k % 2 for k in range(n)],
                         "prob_malignant": 0.5, "has_mask": True, "pointing_hit": 1.0,
                         "lesion_energy_ratio": 1.0, "frame_energy_ratio": frame,
                         "set": set_name, "status": status, "map_size": "8x8", "layer": "l"})


class _CamRun:
    def __init__(self, frame):
        self.frame = frame
        self.test = frame[frame.set == "test"][["id"]].assign(group=lambda d: d.id)
        self.external = {}


def test_measured_in_all_seeds_is_told_apart_from_some_and_only_all_are_averaged():
    ids = [f"i{k}" for k in range(6)]
    s0 = _cam(ids, ["measured"] * 6, [1.0, 1.0, 1.0, 1.0, 9.0, 9.0])
    s1 = _cam(ids, ["measured"] * 4 + ["empty map"] * 2, [1.2] * 6)
    t = camtable.explanation_rows([("m", [_CamRun(s0), _CamRun(s1)])], lambda r: r.frame)
    row = t[t.images == "all"].iloc[0]
    assert (row.n, row.n_measured, row.n_measured_some) == (6, 4, 2)
    assert row.frame_energy_ratio == pytest.approx(1.1)  # images 4, 5 (one seed only) left out
    cell = camtable.display(t[t.images == "all"]).iloc[0]
    assert cell["Measured (maps of every seed / of some seeds), of n"] == \
        "4 in all 2 seeds, 2 in some, of 6"


def test_the_border_flag_is_calibrated_on_the_same_models_unmarked_set():
    rng = np.random.default_rng(1)
    ids = [f"i{k}" for k in range(40)]
    marked = _cam(ids, ["measured"] * 40, 1.5 + 0.05 * rng.standard_normal(40))
    plain_high = _cam([f"p{k}" for k in range(40)], ["measured"] * 40,
                      1.5 + 0.05 * rng.standard_normal(40), "synthetic-siteB")
    t = camtable.explanation_rows([("m", [_CamRun(pd.concat([marked, plain_high]))])],
                                  lambda r: r.frame)
    test = t[(t.set == "test") & (t.images == "all")].iloc[0]
    ref = t[(t.set == "synthetic-siteB") & (t.images == "all")].iloc[0]
    # above 1, but no more than the model gives images without marks: not flagged
    assert test.frame_energy_ratio_lo > 1 and not test.border_flag
    assert test.flag_basis == "vs synthetic-siteB" and ref.flag_basis.startswith("reference")
    assert test.frame_excess_lo < 0 < test.frame_excess_hi and not ref.border_flag
    plain_low = plain_high.assign(frame_energy_ratio=0.9 + 0.05 * rng.standard_normal(40))
    t = camtable.explanation_rows([("m", [_CamRun(pd.concat([marked, plain_low]))])],
                                  lambda r: r.frame)
    test = t[(t.set == "test") & (t.images == "all")].iloc[0]
    assert test.border_flag and test.frame_excess_lo > 0
    note = "\n".join(camtable.notes(t))
    assert "than the same model gives images without marks" in note and "⚑" in note
    alone = camtable.explanation_rows([("m", [_CamRun(marked)])], lambda r: r.frame)
    assert alone.iloc[0].border_flag and alone.iloc[0].flag_basis.startswith("uncalibrated")
    assert "calibrated on a set without burnt-in marks" in camtable.caption(64)


def test_the_readme_links_every_page_of_the_explanation_figure(tmp_path):
    from bench.reporting.sections import explanations
    from bench.reporting.sections.context import ReportContext

    # 7 models with measured maps: two pages of at most 6, counted from the table alone (the
    # git-ignored example maps may be absent, and the README must read the same)
    ctx = ReportContext(runs=[], out=tmp_path)
    ctx.tdir.mkdir(parents=True)
    cams = pd.DataFrame([{"model": f"model{k}", "set": "test", "images": "all", "n": 4, "n_measured": 2,
                          "n_measured_some": 1, "n_empty": 1, "n_not_measurable": 0,
                          "unrecorded": False, "n_seeds": 2, "with_mask": 0, "map_size": "8x8",
                          "layer": "l", "frame_energy_ratio": 1.0, "frame_energy_ratio_lo": 0.9,
                          "frame_energy_ratio_hi": 1.1, "flag_basis": "uncalibrated (no "
                          "unmarked set)", "border_flag": False, "lesion_energy_ratio_hi": 2.0}
                         for k in range(7)])
    ctx.tables["explanations"] = cams
    (ctx.tdir / "explanations_all.md").write_text("table")
    text = "\n".join(explanations.readme(ctx))
    assert "(figures/explanations_1.png)" in text and "(figures/explanations_2.png)" in text
    assert "explanations.png" not in text and "page 2 of 2" in text
