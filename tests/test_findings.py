"""The sentences under the report's tables are counted from the tables' numbers: external
validation at a glance (docs/protocol.md "External validation") and the reliance on annotations
(docs/protocol.md "Burnt-in annotations")."""

import math

import pandas as pd

from bench.reporting.externalsummary import external_findings, external_summary


def row(model: str, name: str, delta: float, lo: float, hi: float, sens: float = 0.5,
        spec: float = 0.5, flag: str | float = math.nan) -> dict:
    return {"model": model, "weights": "random init", "external_set": name, "n_external": 40,
            "flag": flag, "internal_auc": 0.8, "internal_auc_lo": 0.7, "internal_auc_hi": 0.9,
            "external_auc": 0.8 + delta, "external_auc_lo": 0.7 + delta,
            "external_auc_hi": 0.9 + delta, "training_copies": 0, "delta_auc": delta, "delta_auc_lo": lo,
            "delta_auc_hi": hi, "external_sensitivity": sens, "external_specificity": spec}


TABLE = pd.DataFrame([
    row("fus2net", "siteX", -0.20, -0.30, -0.10, sens=0.231, spec=0.90),
    row("a", "siteX", -0.05, -0.15, 0.05, sens=0.764, spec=0.47),
    row("b", "siteX", 0.02, -0.08, 0.12, sens=0.756, spec=0.60),
    row("c", "siteX", 0.0, 0.0, 0.0, sens=0.0, spec=1.0, flag="predicts benign for 100% of images"),
    row("fus2net", "siteY", -0.10, -0.12, -0.08),
    row("a", "siteY", math.nan, math.nan, math.nan),
])


def test_the_external_findings_count_every_auc_and_leave_degenerate_rows_out_of_the_rates():
    x, y = external_findings(TABLE)
    # AUC ranks the scores: a degenerate row (c) counts in ΔAUC, not in sensitivity/specificity
    assert x.startswith("* **siteX** (40 images, 0 of them copies of a training image's picture):"
                        " 2 of 4 configurations have a lower AUC point estimate")
    assert "median ΔAUC -0.025, from -0.200 to +0.020" in x
    assert "excludes 0 in 1 of 4 (1 lower, 0 higher)" in x
    # every configuration that ties at an end, at the two digits shown, is named
    assert "sensitivity runs from 0.23 (`fus2net`) to 0.76 (`a`, `b`)" in x
    assert "`c`" not in x and "(1 configuration with degenerate predictions (⚠) left out" in x
    assert "1 configuration with an undefined ΔAUC (one class only) left out" in y
    assert "1 of 1 configurations" in y
    assert external_findings(TABLE.drop(columns="flag"))  # a table without flags


def test_the_summary_has_a_row_per_configuration_and_the_sets_side_by_side():
    shown = external_summary(TABLE)
    assert shown.Model.tolist() == ["fus2net", "a", "b", "c"]
    assert shown.columns[:3].tolist() == ["Model", "Weights", "Held-out test AUC"]
    assert shown.columns[3] == "siteX (n = 40): AUC" and shown.columns[6] == "siteY (n = 40): AUC"
    assert shown.loc[3, "siteX (n = 40): AUC"].endswith("⚠")
    assert shown.loc[2, "siteY (n = 40): AUC"] == "—"  # not scored there
    assert shown.loc[0, "siteX: sensitivity / specificity"] == "0.23 / 0.90"


def reliance_row(model: str, name: str, marked: tuple[str, str], delta: tuple, benign: tuple,
                 malignant: tuple) -> dict:
    return {"model": model, "set": name, "images": 20, "marked_benign": marked[0],
            "marked_malignant": marked[1], "delta_auc": delta[0], "delta_lo": delta[1],
            "delta_hi": delta[2], "shift_benign_targets": benign[0], "shift_benign_lo": benign[1],
            "shift_benign_hi": benign[2], "shift_malignant_targets": malignant[0],
            "shift_malignant_lo": malignant[1], "shift_malignant_hi": malignant[2]}


def test_the_reliance_findings_count_each_interval_and_say_when_a_set_has_no_marks():
    from bench.reporting.reliancefindings import reliance_findings

    nan3 = (math.nan,) * 3
    table = pd.DataFrame([
        reliance_row("fus2net", "test", ("6/10", "4/10"), (0.02, -0.01, 0.05),
                     (0.01, 0.002, 0.02), (-0.08, -0.12, -0.03)),
        reliance_row("a", "test", ("6/10", "4/10"), (0.05, 0.01, 0.09),
                     (-0.03, -0.07, 0.01), (-0.01, -0.02, 0.004)),
        reliance_row("fus2net", "siteB", ("0/10", "0/10"), (0.0, 0.0, 0.0), nan3, nan3),
    ])
    test, site_b, chance = reliance_findings(table)
    assert chance.startswith("* Each interval is a 95 % interval on its own, not corrected for "
                             "the 6 intervals above")
    assert test.startswith("* **test** (20 images; the detector finds marks on 6 of 10 benign "
                           "and 4 of 10 malignant; 2 configurations): ")
    assert "changes AUC (as is − cleaned) by +0.020 to +0.050, the interval excluding 0 in 1 of 2 " \
           "(1 higher as is, 0 lower as is)" in test
    assert "benign images move P(malignant) by -0.030 to +0.010, the interval excluding 0 in 1 " \
           "of 2 (1 up, 0 down)" in test
    assert "malignant images move P(malignant) by -0.080 to -0.010, the interval excluding 0 in " \
           "1 of 2 (0 up, 1 down)" in test
    assert site_b.endswith("no marks to paint out or paste, so nothing is measured here.")
    assert "1 run)" in reliance_findings(table.iloc[:1], "run")[0]
    assert "marks on 0 of 0 benign" in reliance_findings(table.assign(marked_benign="—",
                                                                      marked_malignant="—"))[0]


def test_the_site_gap_findings_count_each_lever_and_name_the_cells_that_exclude_0():
    from bench.reporting.sitegapfindings import sitegap_findings

    def lever(model, target, name, delta, lo, hi, slope=0.3, auc=0.7):
        return {"model": model, "target": target, "lever": name, "delta_auc": delta,
                "delta_lo": lo, "delta_hi": hi, "slope": slope, "auc": auc}

    nan = math.nan
    table = pd.DataFrame([
        lever("a", "busi", "baseline", nan, nan, nan, slope=0.2, auc=0.61),
        lever("b", "busi", "baseline", nan, nan, nan, slope=0.9, auc=0.70),
        lever("a", "busi", "BN adapted", 0.10, 0.05, 0.15, slope=0.5),
        lever("b", "busi", "BN adapted", -0.02, -0.05, 0.01, slope=0.7),
        lever("a", "busi", "chosen: BN adapted", 0.10, 0.05, 0.15, slope=0.5),
    ])
    base, adapted, chance, chosen, slopes = sitegap_findings(table)
    assert chance.startswith("* Each interval is a 95 % interval on its own, not corrected for "
                             "the 2 cells above")
    assert base == ("* **without a lever** (2 cells): AUC on the site never trained on 0.610 to "
                    "0.700; calibration slope 0.20 to 0.90 (1 = calibrated).")
    assert adapted == ("* **BN adapted** (2 cells: 2 models × 1 scored site): ΔAUC -0.020 to "
                       "+0.100; the interval excludes 0 in 1 of 2; higher: `a` on busi +0.100 "
                       "[+0.050, +0.150].")
    assert chosen.endswith("`a` on busi: BN adapted.")
    assert "below 0.6 in 2 of 4 rows" in slopes  # the chosen row is not counted twice
    # a cell from one training seed says so: its interval resamples patients only
    seeds = table.assign(n_seeds=[3, 3, 1, 3, 1])
    adapted = sitegap_findings(seeds)[1]
    assert adapted.endswith("; 1 of the 2 cells from one training seed (ΔAUC against the same "
                            "seed without a lever), whose interval leaves out how much another "
                            "seed would move it.")
    assert "one training seed" not in sitegap_findings(seeds.assign(n_seeds=3))[1]


def test_the_heldout_findings_count_the_verdicts_and_give_the_detectable_differences():
    from bench.reporting.heldoutfindings import heldout_findings

    t3 = pd.DataFrame({
        "model": ["fus2net", "a", "b", "c", "d"],
        "auc": [0.80, 0.70, 0.90, 0.75, 0.5],
        "flag": [math.nan, math.nan, math.nan, math.nan, "predicts benign for 100% of images"],
        "verdict": [math.nan, "ΔAUC −0.100 [−0.180, −0.020]; Holm-adjusted p = 0.01: differs (lower)",
                    "ΔAUC +0.100 [−0.020, +0.220]; Holm-adjusted p = 0.30: no difference shown; "
                    "differences up to 0.220 cannot be excluded, and this test set detects only "
                    "|ΔAUC| ≥ 0.150 (80 % power)",
                    "ΔAUC −0.050 [−0.100, +0.000]; Holm-adjusted p = 0.40: no difference shown",
                    math.nan],
        "delta_auc_vc_lo": [math.nan, -0.18, -0.02, -0.10, math.nan],
        "delta_auc_vc_hi": [math.nan, -0.02, 0.22, 0.0, math.nan],
        "delta_auc_mdd": [math.nan, 0.09, 0.15, 0.12, math.nan],
        "not_comparable": [math.nan, math.nan, "≠ reference: folds 0 vs 2", math.nan, math.nan]})
    aucs, contrasts = heldout_findings(t3)
    assert aucs == ("* **AUC, seed mean** over 4 configurations: from 0.700 (`a`) to 0.900 (`b`); "
                    "Fus2Net 0.800; 1 with degenerate predictions left out.")
    assert contrasts.startswith("* **Against Fus2Net** (4 contrasts, ΔAUC over matched seeds, "
                                "Holm-adjusted; each worded under the table): \"differs\" 1 (0 "
                                "higher, 1 lower), \"no difference shown\" 2, not tested 1")
    # as the verdicts say it: the farther end of each interval, the MDD of those contrasts only
    assert "differences up to 0.100 to 0.220 (by model) cannot be excluded" in contrasts
    assert "detects only |ΔAUC| ≥ 0.120 to 0.150 (80 % power)" in contrasts
    assert "1 of the contrasts compares a configuration that differs from the reference (`b`" \
        in contrasts
    # without Fus2Net there is nothing to contrast, and no verdict column means not tested
    assert len(heldout_findings(t3[t3.model != "fus2net"])) == 1
    assert "not tested 4" in heldout_findings(t3.drop(columns="verdict"))[1]


def test_the_all_image_findings_set_every_image_beside_the_held_out_test():
    from bench.reporting.heldoutfindings import allimage_findings

    def table(lo: float, hi: float, mdd: float) -> pd.DataFrame:
        return pd.DataFrame({
            "model": ["fus2net", "a", "b"], "auc": [0.80, 0.75, 0.82],
            "verdict": [math.nan, f"ΔAUC −0.050 [{lo}, {hi}]; Holm-adjusted p = 0.3: no "
                        "difference shown", "ΔAUC +0.020; p = 0.5: no difference shown"],
            "delta_auc_vc_lo": [math.nan, lo, lo + 0.1], "delta_auc_vc_hi": [math.nan, hi, hi + 0.1],
            "delta_auc_mdd": [math.nan, mdd, mdd + 0.01]})

    every, held = table(-0.10, 0.00, 0.06), table(-0.20, 0.10, 0.15)
    aucs, contrasts, gain = allimage_findings(every, held)
    assert aucs.startswith("* **AUC, seed mean** over 3 configurations: from 0.750 (`a`)")
    assert "these images detect only |ΔAUC| ≥ 0.060 to 0.070 (80 % power)" in contrasts
    assert gain == ("* **Every image against the held-out test** (2 contrasts in both tables): "
                    "the ΔAUC interval is 0.100 wide on every image and 0.300 "
                    "on the held-out test (median ratio 0.33); the minimum detectable ΔAUC "
                    "(80 % power) is 0.060 to 0.070 on every image and 0.150 to 0.160 on the "
                    "held-out test.")
    # without a held-out table (or a model in it) the comparison bullet is left out
    assert len(allimage_findings(every, held.iloc[:0])) == 2
    assert len(allimage_findings(every, held[held.model == "fus2net"])) == 2


def test_a_range_whose_ends_show_alike_is_said_as_one_value():
    from bench.reporting.findings import span

    assert span([0.1, 0.22]) == "0.100 to 0.220"
    assert span([0.05]) == "0.050" and span([0.0501, 0.0499]) == "0.050"  # one row; ties as shown
    assert span([-0.02, math.nan, 0.03], "+.3f") == "-0.020 to +0.030"  # NaN left out
    assert span([math.nan]) == "nan"


def test_external_extremes_that_tie_are_said_once():
    from bench.reporting.externalsummary import _extremes

    part = pd.DataFrame({"model": ["a", "b"], "sensitivity": [0.761, 0.758]})
    assert _extremes(part, "sensitivity") == "0.76 (`a`, `b`)"
    part = pd.DataFrame({"model": ["a", "b"], "sensitivity": [0.5, 0.76]})
    assert _extremes(part, "sensitivity") == "0.50 (`a`) to 0.76 (`b`)"
