"""The metric and data-set registries: one registration reaches every table, command and rule
that lists metrics or data sets (bench/stats/registry.py, bench/data/datasets.py)."""

import json
from dataclasses import replace

import pandas as pd
import pytest

from bench.cli.run import print_summary
from bench.data import datasets
from bench.data.datasets import INFO, DatasetInfo, default_split, detect_kind
from bench.data.index import read_class_folders
from bench.engine import sites, splits
from bench.reporting import table3
from bench.reporting.runs import load_runs
from bench.reporting.sections import experiments, external
from bench.reporting.sections.cvfolds import cv_folds
from bench.reporting.sections.heldout import comparison_table, per_seed_table
from bench.stats import registry
from bench.stats.metrics import METRIC_NAMES, binary_metrics
from bench.stats.registry import Interval, Metric, View, evaluate
from tests.helpers import write_fixture_run


def _youden(y_true, y_score) -> float:
    m = binary_metrics(y_true, y_score)
    return m["sensitivity"] + m["specificity"] - 1


YOUDEN = Metric("youden", _youden, Interval.BOOTSTRAP, "Youden's J",
                views=frozenset({View.SUMMARY, View.TABLE3, View.FOLDS, View.EXTERNAL}))


@pytest.fixture()
def youden(monkeypatch):
    monkeypatch.setitem(registry.METRICS, "youden", YOUDEN)
    return YOUDEN


def test_the_registry_lists_every_metric_a_run_records_in_its_order():
    assert registry.names() == METRIC_NAMES
    assert registry.names(View.FOLDS) == ("accuracy", "sensitivity", "specificity", "auc")
    assert registry.proportions()["sensitivity"] == ("tp", "tp+fn")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_metric(registry.METRICS["auc"])


def test_a_registered_metric_appears_in_every_table_that_lists_metrics(youden, tmp_path, capsys):
    root = tmp_path / "runs"
    ref = write_fixture_run(root, "fus2net", 0.6, 1)
    write_fixture_run(root, "resnet50", 0.4, 2)
    runs = load_runs(root)
    fus2net = next(r for r in runs if r.model == "fus2net")
    y, s = fus2net.test.label.to_numpy(), fus2net.test.prob_malignant.to_numpy()

    per_seed = per_seed_table(runs, n_boot=20)  # held-out, per seed, with its interval
    row = per_seed[per_seed.model == "fus2net"].iloc[0]
    assert row.youden == pytest.approx(_youden(y, s))
    assert row.youden_lo <= row.youden <= row.youden_hi
    assert list(per_seed.columns).index("youden") > list(per_seed.columns).index("auc_boot_hi")

    t3 = comparison_table(runs, n_boot=20, per_seed=per_seed)  # over seeds, Table 3
    assert t3.set_index("model").loc["fus2net", "youden"] == pytest.approx(row.youden)
    assert f"{row.youden:.3f}" in table3.full_display(t3)["Youden's J"].tolist()

    folds = cv_folds(runs)  # per CV fold: computed from the out-of-fold predictions
    val = fus2net.predictions[fus2net.predictions.split == "val"]
    first = val[val.fold == 0]
    got = folds[(folds.model == "fus2net") & (folds.fold == 0)].youden.iloc[0]
    assert got == pytest.approx(_youden(first.label, first.prob_malignant))

    table = experiments.experiment_table(runs, "fig1_optimizers")  # the experiments
    assert "youden" in table and "Youden's J" in experiments.experiment_display(table)

    columns = external._threshold_columns(evaluate(y, s), evaluate(y[::-1], s), y[::-1], s, 20, 0)
    assert {"internal_youden", "external_youden", "external_youden_lo"} <= set(columns)

    print_summary("fus2net", json.loads((ref / "metrics.json").read_text()), ref, 1.0)
    header, values = capsys.readouterr().out.splitlines()[2:4]
    assert header.split()[-1] == "youden" and values.split()[-1] == f"{_youden(y, s):.3f}"


def test_the_tables_without_a_registered_metric_are_as_before(tmp_path):
    root = tmp_path / "runs"
    write_fixture_run(root, "fus2net", 0.6, 1)
    per_seed = per_seed_table(load_runs(root), n_boot=20)
    assert list(per_seed.columns[:22]) == [
        "model", "seed", "weights", "status", "run", "n", "tp", "fn", "tn", "fp", "f1", "brier",
        "accuracy", "accuracy_lo", "accuracy_hi", "sensitivity", "sensitivity_lo",
        "sensitivity_hi", "specificity", "specificity_lo", "specificity_hi", "ppv"]
    assert list(cv_folds(load_runs(root)).columns) == [
        "model", "kind", "seed", "fold", "status", "accuracy", "sensitivity", "specificity", "auc"]


def _looks_like_scans(path) -> bool:
    return (path / "scans.json").is_file()


def test_a_layout_registered_in_one_row_is_detected_split_and_named_a_site(monkeypatch, tmp_path):
    row = DatasetInfo("scans", "a new layout", "scans.json and class folders",
                      lambda p: read_class_folders(p, kind="scans"), _looks_like_scans,
                      "pixels", default_split="scans.csv", site="Scans")
    monkeypatch.setitem(INFO, "scans", row)
    data = tmp_path / "Scans"
    (data / "benign").mkdir(parents=True)  # no malignant/: no other layout claims it
    (data / "scans.json").write_text("{}")
    assert detect_kind(data) == "scans"
    assert default_split("scans") == datasets.SPLITS_DIR / "scans.csv"
    assert default_split("synthetic") is None and default_split("busi").name == "busi.csv"
    assert "Scans" in sites.real_sites() and sites.real_sites()[:2] == ("BUSI", "BrEaST")
    assert sites.present_sites(tmp_path) == [data]
    assert splits.default_split is default_split  # the run's default split is the row's
    monkeypatch.setitem(INFO, "scans", replace(row, default_split="busi.csv"))
    assert default_split("scans") == default_split("busi")


def test_rows_are_tried_in_the_tables_order_most_specific_first(tmp_path):
    assert list(INFO)[:5] == ["busbra", "breast", "synthetic", "busi", "folder"]
    both = tmp_path / "both"
    for folder in ("benign", "malignant"):
        (both / folder).mkdir(parents=True)
    assert detect_kind(both) == "folder"
    (both / "bus_data.csv").write_text("ID\n")
    assert detect_kind(both) == "busbra"
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": ["a.png"], "label": [0]}).to_csv(manifest, index=False)
    assert detect_kind(manifest) == "csv"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(Exception, match="a file must be a CSV manifest"):
        detect_kind(tmp_path / "notes.txt")
