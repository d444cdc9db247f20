"""The held-out comparison's intervals over seeds × lesions, its minimum detectable ΔAUC, its
verdict sentences, its ROC band and its counts (``bench.reporting.sections.heldout``,
``bench.reporting.table3``, ``bench.reporting.sections.provenance``)."""

import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_curve

from bench.cli.report import main
from bench.reporting import table3
from bench.reporting.heldoutfindings import heldout_findings
from bench.reporting.runs import load_runs
from bench.reporting.sections import heldout
from bench.reporting.sections.heldout import comparison_table, roc_band, weighted_tpr_at
from bench.reporting.sections.provenance import split_line
from bench.reporting.tables import comparison_sets
from bench.stats.contrasts import matched_delta, verdict
from bench.stats.power import min_detectable_delta
from bench.stats.proportions import classification_intervals
from bench.stats.stats import holm
from bench.stats.twolevel import auc_variance_components, delta_variance_components
from tests.helpers import write_fixture_run

PROJECT = Path(__file__).resolve().parents[1]
VERDICT_WORDS = re.compile(r"differs|no difference|better than|do not differ|not differ",
                           re.IGNORECASE)


def _clustered_runs(runs: Path, models: dict[str, float], seeds=(0, 1, 2)) -> Path:
    """Fixture runs of ``models`` (name → quality) over ``seeds``, each test image twice in one
    same-lesion group (so clusters matter), with the split manifest the report reads."""
    for k, (model, q) in enumerate(models.items()):
        for seed in seeds:
            folder = write_fixture_run(runs, model, q, 40 + 10 * k + seed, seed=seed)
            preds = pd.read_csv(folder / "predictions.csv", dtype={"id": str})
            test = preds.split == "test"
            for col in ("prob_malignant", "label"):
                preds.loc[test, col] = preds[col][test].to_numpy()[::2].repeat(2)
            preds.to_csv(folder / "predictions.csv", index=False)
            preds[["id", "path", "label", "split", "fold"]].assign(
                group=[f"g{i // 2}" for i in range(len(preds))]).to_csv(folder / "split.csv",
                                                                        index=False)
    return runs


def test_every_auc_and_delta_interval_counts_seeds_and_lesions_and_keeps_the_clustered_one(
        tmp_path):
    runs = load_runs(_clustered_runs(tmp_path / "runs", {"fus2net": 0.6, "resnet50": 0.45}))
    t = comparison_table(runs, n_boot=200).set_index("model")
    sets = dict(comparison_sets(runs))
    y, ref, g, seeds = table3.test_matrix(sets["fus2net"])
    _, s, _, _ = table3.test_matrix(sets["resnet50"])
    row = t.loc["resnet50"]
    # the AUC's primary interval: variance components over seeds × lesion groups
    vc = auc_variance_components(y, s, g)
    assert (row.auc_vc_lo, row.auc_vc_hi) == pytest.approx((vc.lo, vc.hi))
    assert row.auc_2l_lo < row.auc < row.auc_2l_hi  # the two-level bootstrap, secondary
    # ΔAUC: the same, its t test, and the minimum detectable ΔAUC from the same SE and df
    d = delta_variance_components(y, s, ref, g)
    assert (row.delta_auc_vc_lo, row.delta_auc_vc_hi, row.delta_auc_p) == pytest.approx(
        (d.lo, d.hi, d.p))
    assert row.delta_auc_mdd == pytest.approx(min_detectable_delta(d.se, df=d.df))
    assert t.delta_auc_p_holm.to_numpy() == pytest.approx(holm(t.delta_auc_p.to_numpy()),
                                                           nan_ok=True)
    # the former primary interval, clustered only (models fixed), is kept under its own name
    cl = matched_delta(y, s, ref, g, n_boot=0)
    assert (row.delta_auc_cl_lo, row.delta_auc_cl_hi, row.delta_auc_cl_p) == pytest.approx(
        (cl.lo, cl.hi, cl.p))
    assert row.delta_auc_vc_hi - row.delta_auc_vc_lo > row.delta_auc_cl_hi - row.delta_auc_cl_lo
    # sensitivity and specificity: clustered intervals over seeds × lesions
    props = classification_intervals(y, s, g)
    for name in ("sensitivity", "specificity"):
        assert (row[name], row[f"{name}_lo"], row[f"{name}_hi"]) == pytest.approx(
            (props[name].estimate, props[name].lo, props[name].hi))


def test_the_headline_table_shows_intervals_p_holm_and_mdd_and_its_caption_says_what_they_are(
        tmp_path):
    runs = load_runs(_clustered_runs(tmp_path / "runs", {"fus2net": 0.6, "resnet50": 0.45},
                                     seeds=(0, 1)))
    t = comparison_table(runs, n_boot=100)
    shown = table3.headline_display(t).set_index("Model")
    r = t.set_index("model").loc["resnet50"]
    cell = shown.loc["resnet50", "Specificity [95% CI]"]
    assert cell == f"{r.specificity:.3f} [{r.specificity_lo:.2f}, {r.specificity_hi:.2f}]"
    assert shown.loc["resnet50", "MDD (80 %)"] == f"{r.delta_auc_mdd:.3f}"
    assert shown.loc["fus2net", "MDD (80 %)"] == "—"
    assert f"[{r.delta_auc_vc_lo:+.3f}, {r.delta_auc_vc_hi:+.3f}]" in \
        shown.loc["resnet50", "ΔAUC vs Fus2Net, matched seeds [95% CI, seeds × lesions]"]
    caption = table3.HEADLINE_CAPTION
    assert "training seeds" in caption and "Welch–Satterthwaite" in caption
    assert "80 % power" in caption and "design effect" in caption
    assert not VERDICT_WORDS.search(caption) and not VERDICT_WORDS.search(table3.FULL_CAPTION)


FROZEN = PROJECT / "tests" / "data" / "busi_2026-12-01_fus2net_googlenet_test_scores.csv"


def _frozen_runs(runs: Path) -> list:
    """The held-out scores of Fus2Net and GoogLeNet (seeds 0, 1, 2) of the BUSI set committed on
    2026-12-01, the runs the statistician checked by hand, as run folders with their lesion
    groups (the scores are frozen in tests/data, so the check outlives a regenerated set)."""
    frozen = pd.read_csv(FROZEN, dtype={"id": str, "group": str})
    for k, ((model, seed), rows) in enumerate(frozen.groupby(["model", "seed"])):
        folder = write_fixture_run(runs, model, 0.5, 90 + k, seed=int(seed))
        preds = pd.read_csv(folder / "predictions.csv", dtype={"id": str})
        test = rows.assign(path="x.png", split="test", fold=-1)
        preds = pd.concat([preds[preds.split != "test"], test[preds.columns]], ignore_index=True)
        preds.to_csv(folder / "predictions.csv", index=False)
        groups = pd.concat([preds[preds.split != "test"].assign(group=lambda d: d.id),
                            test.assign(split="test")], ignore_index=True)
        groups[["id", "path", "label", "group", "split", "fold"]].to_csv(folder / "split.csv",
                                                                       index=False)
    return load_runs(runs)


@pytest.mark.slow
def test_the_statistician_s_check_numbers_on_the_frozen_committed_scores(tmp_path):
    t = comparison_table(_frozen_runs(tmp_path / "runs"), n_boot=200).set_index("model")
    g = t.loc["googlenet_fujioka"]
    assert (g.delta_auc_cl_lo, g.delta_auc_cl_hi) == pytest.approx((-0.026, 0.125), abs=5e-4)
    assert (g.delta_auc_vc_lo, g.delta_auc_vc_hi) == pytest.approx((-0.049, 0.148), abs=5e-4)
    assert g.delta_auc_mdd == pytest.approx(0.139, abs=5e-4)
    f = t.loc["fus2net"]
    assert (round(f.specificity, 2), round(f.specificity_lo, 2), round(f.specificity_hi, 2)) == \
        (0.64, 0.45, 0.79)


# --- the report: verdicts, the ROC band ----------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report of fixture runs: resnet50 clearly worse than Fus2Net, zeimarani_cnn alike."""
    root = tmp_path_factory.mktemp("heldout")
    runs = root / "runs"
    for seed in (0, 1, 2):
        write_fixture_run(runs, "fus2net", 0.7, 60 + seed, seed=seed)
        write_fixture_run(runs, "resnet50", 0.05, 70 + seed, seed=seed)
        write_fixture_run(runs, "zeimarani_cnn", 0.7, 80 + seed, seed=seed)
    assert main(["--runs", str(runs), "--out", str(root / "out"), "--n-boot", "200"]) == 0
    return root / "out"


def _section(readme: str) -> list[str]:
    lines = readme.splitlines()
    start = lines.index("## Held-out comparison (Table 3 analogue)")
    end = next(k for k in range(start + 1, len(lines)) if lines[k].startswith("#"))
    return lines[start:end]


@pytest.mark.slow
def test_every_contrast_sentence_is_verdict_of_the_table_s_numbers(report):
    t = pd.read_csv(report / "tables" / "table3_comparison.csv").set_index("model")
    section = _section((report / "README.md").read_text())
    said = {}
    for line in section:
        m = re.match(r"\* \*\*(.+?)\*\*: (.+)$", line)
        if m:
            said[m.group(1)] = m.group(2)
    assert set(said) == {"resnet50", "zeimarani_cnn"}
    for model, sentence in said.items():
        r = t.loc[model]
        assert sentence == verdict(r.delta_auc, r.delta_auc_vc_lo, r.delta_auc_vc_hi,
                                   r.delta_auc_p_holm, r.delta_auc_mdd)
    assert said["resnet50"].endswith(": differs (lower)")
    assert ": no difference shown;" in said["zeimarani_cnn"] and "80 % power" in said["zeimarani_cnn"]


@pytest.mark.slow
def test_the_held_out_section_says_differ_or_no_difference_only_in_verdict_sentences(report):
    t = pd.read_csv(report / "tables" / "table3_comparison.csv")
    verdicts = [v for v in t.verdict.dropna() if v]
    assert verdicts
    # the findings count those verdicts (bench.reporting.heldoutfindings), nothing else
    findings = (report / "tables" / "table3_findings.md").read_text()
    assert findings == "\n".join(heldout_findings(t[~t.model.str.startswith("Fus2Net —")])) + "\n"
    differ = sum(": differs (" in v for v in verdicts)
    assert f'"differs" {differ} (' in findings
    counted = set(findings.splitlines())
    for line in _section((report / "README.md").read_text()):
        for v in verdicts:
            line = line.replace(v, "")
        assert line in counted or not VERDICT_WORDS.search(line), line


def test_the_roc_band_contains_the_mean_curve_and_the_mean_is_the_plain_roc():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    groups = np.arange(80) // 2
    scores = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, (3, 80)), 0, 1).round(2)
    grid = np.linspace(0, 1, 51)
    mean, lo, hi = roc_band(y, scores, groups, grid, n_boot=300)
    assert (lo <= mean + 1e-12).all() and (mean <= hi + 1e-12).all()
    assert (hi - lo)[1:-1].max() > 0.1  # a band, not a line
    plain = []
    for s in scores:  # ties included: one vertex per tied score, as roc_points draws
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        plain.append(np.interp(grid, fpr, tpr))
    expected = np.mean(plain, axis=0)
    expected[0] = 0.0
    assert mean == pytest.approx(expected)
    one = weighted_tpr_at(y, scores[0], np.ones((1, 80)), grid)[0]
    assert one[1:] == pytest.approx(plain[0][1:])


@pytest.mark.slow
def test_the_roc_band_is_saved_and_redrawn_from_its_table(report, tmp_path):
    band = pd.read_csv(report / "tables" / "roc_band.csv")
    assert set(band.model) == {"fus2net", "resnet50", "zeimarani_cnn"}
    assert ((band.tpr_lo <= band.tpr + 1e-9) & (band.tpr <= band.tpr_hi + 1e-9)).all()
    copy = tmp_path / "copy"
    (copy / "tables").mkdir(parents=True)
    for p in (report / "tables").iterdir():
        (copy / "tables" / p.name).write_bytes(p.read_bytes())
    heldout.draw_figures(copy / "tables", copy / "figures")
    original = (copy / "figures" / "fig2_roc.png").read_bytes()
    assert original == (report / "figures" / "fig2_roc.png").read_bytes()
    band.assign(tpr_lo=0.0, tpr_hi=1.0).to_csv(copy / "tables" / "roc_band.csv", index=False)
    heldout.draw_figures(copy / "tables", copy / "figures")
    assert (copy / "figures" / "fig2_roc.png").read_bytes() != original  # drawn from the table


# --- counts come from the runs ---------------------------------------------------------------


def test_the_split_counts_in_the_header_come_from_the_manifest(tmp_path):
    runs = tmp_path / "runs"
    folder = write_fixture_run(runs, "fus2net", 0.6, 1, train_limit=30)
    split = pd.DataFrame({"id": [f"t{i}" for i in range(37)] + [f"img{i:03d}" for i in range(100)]
                          + ["x0", "x1"],
                          "label": [0] * 37 + [0] * 50 + [1] * 50 + [1, 1],
                          "group": [f"a{i // 3}" for i in range(37)] + [f"b{i // 2}" for i in
                                                                         range(100)] + ["c", "c"],
                          "split": ["train"] * 37 + ["test"] * 100 + ["excluded"] * 2})
    split.to_csv(folder / "split.csv", index=False)
    (folder / "stages" / "final").mkdir(parents=True)
    (folder / "stages" / "final" / "done.json").write_text(json.dumps(
        {"train_images": 44, "flipped_copies": 14}))
    line = split_line(load_runs(runs))
    assert line == ("* **Split** (the runs' manifest, `split.csv`): 37 training images in 13 "
                    "groups; 100 held-out test images (50 malignant) in 50 groups; 2 excluded "
                    "images in 1 group; each final fit trained on 30 distinct training images "
                    "(profile cap: 30 per fit)")


def test_no_count_of_images_groups_or_lesions_is_written_by_hand_in_the_section_code():
    counts = re.compile(r"\b\d+\s*(?:-\s*)?(?:images?|groups?|lesions?|patients?|malignant|"
                        r"benign|training|test images?)\b")
    for rel in ("bench/reporting/sections/heldout.py", "bench/reporting/sections/provenance.py",
                "bench/reporting/table3.py"):
        tree = ast.parse((PROJECT / rel).read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings:
                assert not counts.search(node.value), f"{rel}: {node.value!r}"
