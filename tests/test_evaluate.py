"""Outside predictions scored on a results set (bench.reporting.evaluate, bench/reporting/outside.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bench.cli.evaluate as evaluate_cli
import bench.reporting.evaluate as evaluate_lib
from bench.cli.evaluate import main
from bench.core.errors import BenchError
from bench.reporting.evaluate import EVALUATION_FILES, check_name, evaluate
from bench.reporting.outside import OUTSIDE, results_set
from bench.reporting.runs import load_runs
from bench.reporting.sections.heldout import comparison_table
from tests.helpers import SMOKE, call_main, run_main, write_fixture_run

PROJECT = Path(__file__).resolve().parents[1]
# the columns of a Table 3 row that describe the model rather than its predictions
DESCRIBES_MODEL = ("model", "weights", "params_m", "gflops", "img_size")


def write_manifest(path: Path) -> str:
    """The manifest behind write_fixture_run's ids: img000-img099 held out (50 benign first, pairs
    of one label share a group), val000-val059 training images in 3 folds; returns its SHA-256."""
    test = pd.DataFrame({"id": [f"img{i:03d}" for i in range(100)],
                         "label": [0] * 50 + [1] * 50, "group": [f"t{i // 2}" for i in range(100)],
                         "split": "test", "fold": -1})
    train = pd.DataFrame({"id": [f"val{i:03d}" for i in range(60)], "label": np.arange(60) % 2,
                          "group": [f"v{i}" for i in range(60)], "split": "train",
                          "fold": np.arange(60) % 3})
    m = pd.concat([test, train], ignore_index=True)
    m.insert(1, "path", m.id + ".png")
    text = m.to_csv(index=False, lineterminator="\n")
    path.write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def fixture_set(root: Path, models: dict[str, float], seeds=(0, 1)) -> Path:
    """Finished fixture runs (bench.engine.runner's layout) of ``models`` (name → quality) on one manifest."""
    root.mkdir(parents=True)
    manifest = root.parent / f"{root.name}-split.csv"
    sha = write_manifest(manifest)
    for k, (model, quality) in enumerate(models.items()):
        for s in seeds:
            run = write_fixture_run(root, model, quality, 10 * k + s + 1, seed=s,
                                    manifest_sha256=sha)
            shutil.copyfile(manifest, run / "split.csv")
    return root


def test_predictions(run: Path, seed: int | None = None) -> pd.DataFrame:
    p = pd.read_csv(run / "predictions.csv", dtype={"id": str})
    p = p[p.split == "test"][["id", "prob_malignant"]]
    return p if seed is None else p.assign(seed=seed)


test_predictions.__test__ = False  # a helper, not a test


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def two_sets(tmp_path) -> tuple[Path, Path]:
    """Set A: Fus2Net and resnet50 over seeds 0 and 1; set B: the same Fus2Net runs alone."""
    a = fixture_set(tmp_path / "a", {"fus2net": 0.6, "resnet50": 0.4})
    b = tmp_path / "b"
    b.mkdir()
    for run in a.glob("fus2net-*"):
        shutil.copytree(run, b / run.name)
    return a, b


def row_of(table: pd.DataFrame, model: str) -> dict:
    return table[table.model == model].iloc[0].drop(list(DESCRIBES_MODEL)).to_dict()


def assert_same_row(out: Path, expected: dict) -> dict:
    """The row ``bench.reporting.evaluate`` recorded in ``out`` equals ``expected`` bit for bit (JSON
    numbers round-trip exactly; undefined values are null there, NaN here)."""
    got = json.loads((out / "evaluation.json").read_text())["row"]
    got = {k: v for k, v in got.items() if k not in DESCRIBES_MODEL}
    assert set(got) == set(expected)
    for k, v in expected.items():
        undefined = v is None or (isinstance(v, float) and np.isnan(v))
        assert (got[k] is None) if undefined else got[k] == v, (k, got[k], v)
    return got


def test_outside_predictions_of_a_model_reproduce_its_row_exactly(two_sets, tmp_path, capsys):
    a, b = two_sets
    expected = row_of(comparison_table(load_runs(a), n_boot=50), "resnet50")
    preds = pd.concat([test_predictions(r, int(json.loads((r / "config.json").read_text())
                                                           ["settings"]["seed"]))
                       for r in sorted(a.glob("resnet50-*"))])
    preds.to_csv(tmp_path / "mine.csv", index=False)
    before = snapshot(b)
    code, out, err = call_main(capsys, main, "--predictions", str(tmp_path / "mine.csv"), "--name",
                               "resnet-outside", "--runs", str(b), "--out", str(tmp_path / "ev"),
                               "--n-boot", "50")
    assert code == 0, err
    got = assert_same_row(tmp_path / "ev", expected)
    assert got["n_seeds"] == 2 and got["seeds_significant"] == expected["seeds_significant"]
    assert "resnet-outside" in out and "ΔAUC vs Fus2Net" in out
    assert snapshot(b) == before  # the results set is never modified
    board = pd.read_csv(tmp_path / "ev" / "leaderboard.csv")
    assert board.set_index("model").source["resnet-outside"] == OUTSIDE
    assert board.set_index("model").source["fus2net"] == "trained by this suite"
    assert f"| {OUTSIDE} |" in (tmp_path / "ev" / "leaderboard.md").read_text()
    intervals = pd.read_csv(tmp_path / "ev" / "intervals.csv")
    assert list(intervals.seed) == ["0", "1", "ensemble of the seeds"]
    assert (intervals.n_clusters == 50).all()  # the manifest's groups, not images
    for method in ("delong", "boot", "obuchowski", "cluster_boot"):
        assert (intervals[f"auc_{method}_lo"] < intervals.auc).all()
        assert (intervals.auc < intervals[f"auc_{method}_hi"]).all()
    assert intervals.delta_obuchowski_p.notna().all()
    record = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert record["results_set"]["manifest_sha256"] == \
        hashlib.sha256((a.parent / "a-split.csv").read_bytes()).hexdigest()
    assert record["predictions"]["seeds"] == [0, 1]
    for name in ("roc.png", "calibration.png", "README.md", "calibration.csv"):
        assert (tmp_path / "ev" / name).is_file()


def test_template_lists_the_ids_to_predict_and_writes_nowhere_else(two_sets, tmp_path, capsys):
    _, b = two_sets
    before = snapshot(b)
    code, out, err = call_main(capsys, main, "--template", "--runs", str(b), "--out",
                               str(tmp_path / "t"))
    assert code == 0, err
    t = pd.read_csv(tmp_path / "t" / "predictions_template.csv", dtype={"id": str})
    assert list(t.columns) == ["id", "path", "prob_malignant"]
    assert list(t.id) == [f"img{i:03d}" for i in range(100)] and t.prob_malignant.isna().all()
    assert "100 held-out test ids" in out
    assert snapshot(b) == before


def test_the_template_says_which_ids_to_train_and_tune_on_and_which_are_held_out(
        two_sets, tmp_path, capsys):
    _, b = two_sets
    code, out, err = call_main(capsys, main, "--template", "--runs", str(b), "--out",
                               str(tmp_path / "t"))
    assert code == 0, err
    ids = pd.read_csv(tmp_path / "t" / "training_ids.csv", dtype={"id": str, "group": str})
    assert f"{tmp_path / 't' / 'training_ids.csv'} marks train" in out
    assert list(ids.columns) == ["id", "path", "label", "fold", "group", "use"]
    manifest = pd.read_csv(next(b.iterdir()) / "split.csv", dtype={"id": str, "group": str})
    train = manifest[manifest.split == "train"].sort_values("id")
    mine = ids[ids.use == "train"]
    assert f"the {len(train)} ids" in out and len(train) > 0
    assert list(mine.id) == list(train.id)  # every training id, with its label, fold and group
    assert list(mine.label.astype(int)) == list(train.label)
    assert list(mine.fold.astype(int)) == list(train.fold) and list(mine.group) == list(train.group)
    held = ids[ids.use == "held out: never train or tune on it"]
    template = pd.read_csv(tmp_path / "t" / "predictions_template.csv", dtype={"id": str})
    assert sorted(held.id) == sorted(template.id)  # the ids to predict are the held-out ones
    assert held.label.isna().all() and held.fold.isna().all()  # no label to tune on
    assert not set(mine.id) & set(held.id) and len(ids) == len(manifest)


def test_the_committed_busi_set_has_a_template_of_its_100_test_ids(tmp_path, capsys):
    runs = PROJECT / "results" / "busi-cpu" / "runs"
    code, _, err = call_main(capsys, main, "--template", "--runs", str(runs), "--out", str(tmp_path))
    assert code == 0, err
    t = pd.read_csv(tmp_path / "predictions_template.csv", dtype={"id": str})
    manifest = pd.read_csv(next(runs.glob("fus2net-*")) / "split.csv", dtype={"id": str})
    assert sorted(t.id) == sorted(manifest.id[manifest.split == "test"])


def _base() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"img{i:03d}" for i in range(100)],
                         "prob_malignant": np.linspace(0.01, 0.99, 100)})


def _replace(df: pd.DataFrame, row: int, col: str, value) -> pd.DataFrame:
    df = df.astype({col: object}) if col in df else df.assign(**{col: ""})
    df.loc[row, col] = value
    return df


BAD_FILES = {
    "missing": (lambda d: d.drop(index=[3, 4]), "2 missing held-out test id(s) ('img003', 'img004')"),
    "extra": (lambda d: pd.concat([d, pd.DataFrame({"id": ["val001"], "prob_malignant": [.5]})]),
              "1 extra id(s) that are not held-out test images of this set ('val001')"),
    "duplicate": (lambda d: pd.concat([d, d.iloc[[7, 8, 9, 10]]]),
                  "4 duplicate id(s) ('img007', 'img008', 'img009' and 1 more)"),
    "unknown": (lambda d: _replace(d, 0, "id", "nobody"), "1 unknown id(s), in no split of the "
                "manifest ('nobody')"),
    "above one": (lambda d: _replace(d, 5, "prob_malignant", 1.5), "line 7: prob_malignant is "
                  "'1.5', not a probability in [0, 1]"),
    "nan": (lambda d: _replace(d, 2, "prob_malignant", "nan"), "line 4: prob_malignant is 'nan'"),
    "empty cell": (lambda d: _replace(d, 0, "prob_malignant", ""), "line 2: prob_malignant is empty"),
    "text": (lambda d: _replace(d, 1, "prob_malignant", "high"), "line 3: prob_malignant is 'high'"),
    "negative": (lambda d: _replace(d, 9, "prob_malignant", -0.1), "line 11: prob_malignant is '-0.1'"),
    "label disagrees": (lambda d: d.assign(label=[1] * 50 + [0] * 50), "the label column "
                        "disagrees with the manifest for 100 id(s), e.g. 'img000'"),
    "label not 0/1": (lambda d: d.assign(label=[0] * 50 + [1] * 50).pipe(_replace, 0, "label", 2),
                      "line 2: label '2' is not 0 (benign) or 1 (malignant)"),
    "unknown column": (lambda d: d.assign(prob=0.5), "unknown column(s) 'prob' (did you mean "
                       "prob_malignant?)"),
    "no probabilities": (lambda d: d[["id"]], "no column prob_malignant"),
    "bad seed": (lambda d: d.assign(seed=0).pipe(_replace, 4, "seed", -1), "line 6: seed '-1' is "
                 "not a seed"),
    "bad split": (lambda d: _replace(d.assign(split="test"), 0, "split", "train"),
                  "line 2: split 'train' is not test or val"),
    "test fold": (lambda d: d.assign(fold=-1).pipe(_replace, 3, "fold", 2),
                  "a held-out test row has fold 2 (id 'img003')"),
    "val of a test image": (lambda d: pd.concat([d.assign(split="test"), pd.DataFrame(
        {"id": ["img001"], "prob_malignant": [.5], "split": ["val"], "fold": [0]})]),
        "1 val row(s) of images that are not training images of the manifest ('img001')"),
    "val in another fold": (lambda d: pd.concat([d.assign(split="test", fold=-1), pd.DataFrame(
        {"id": ["val000", "val001", "val002"], "prob_malignant": [.5] * 3, "split": ["val"] * 3,
         "fold": [0, 2, 1]})]), "2 val row(s) in another CV fold than the manifest's, e.g. "
        "'val001' in fold 2 (manifest: fold 1 of 3)"),
    "one seed incomplete": (lambda d: pd.concat([d.assign(seed=0), d.assign(seed=1).iloc[:-1]]),
                            "(seed 1): 1 missing held-out test id(s) ('img099')"),
    "a seed with val rows only": (lambda d: pd.concat([d.assign(seed=0, split="test", fold=-1),
                                                       pd.DataFrame({"id": ["val000", "val001"],
                                                                     "prob_malignant": [.5, .5],
                                                                     "seed": [1, 1],
                                                                     "split": ["val", "val"],
                                                                     "fold": [0, 1]})]),
                                  "seed 1 has val rows but no held-out test rows (2 row(s))"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_predictions_file_is_one_line_with_exit_2(case, two_sets, tmp_path, capsys):
    _, b = two_sets
    make, message = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    make(_base()).to_csv(path, index=False)
    code, _, err = call_main(capsys, main, "--predictions", str(path), "--name", "x", "--runs",
                             str(b), "--out", str(tmp_path / "ev"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: --predictions {path}")
    assert message in err, err
    assert not (tmp_path / "ev").exists()  # nothing is written from a refused file


def test_files_that_are_no_csv_and_names_that_clash_are_one_line(two_sets, tmp_path, capsys):
    _, b = two_sets
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    good = tmp_path / "good.csv"
    _base().to_csv(good, index=False)
    for args, message in (
            (["--predictions", str(empty), "--name", "x"], "the file is empty"),
            (["--predictions", str(tmp_path / "none.csv"), "--name", "x"], "file does not exist"),
            (["--predictions", str(good), "--name", "fus2net"], "--name 'fus2net': the set already"),
            (["--predictions", str(good)], "--name is required"),
            (["--predictions", str(good), "--name", "x", "--out", str(b / "ev")], "inside --runs")):
        code, _, err = call_main(capsys, main, *args, "--runs", str(b), "--out", str(tmp_path / "o"),
                                 *(["--out", args[-1]] if "--out" in args else []))
        assert code == 2 and err.count("\n") == 1 and message in err, (message, err)


def test_an_evaluation_of_other_predictions_is_never_overwritten(two_sets, tmp_path, capsys):
    _, b = two_sets
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    _base().to_csv(first, index=False)
    _base().assign(prob_malignant=np.linspace(0.99, 0.01, 100)).to_csv(second, index=False)
    args = ["--runs", str(b), "--out", str(tmp_path / "ev"), "--n-boot", "50"]
    assert call_main(capsys, main, "--predictions", str(first), "--name", "m", *args)[0] == 0
    code, _, err = call_main(capsys, main, "--predictions", str(second), "--name", "m", *args)
    assert code == 2 and "holds the evaluation of other predictions (m)" in err


def test_degenerate_outside_predictions_are_flagged_and_their_tests_left_blank(two_sets, tmp_path,
                                                                                capsys):
    _, b = two_sets
    path = tmp_path / "constant.csv"
    _base().assign(prob_malignant=0.8).to_csv(path, index=False)
    code, out, err = call_main(capsys, main, "--predictions", str(path), "--name", "always",
                               "--runs", str(b), "--out", str(tmp_path / "ev"), "--n-boot", "50")
    assert code == 0, err
    row = pd.read_csv(tmp_path / "ev" / "row.csv").iloc[0]
    assert row.flag.startswith("seed 0: constant output")
    assert pd.isna(row.delta_auc) and pd.isna(row.delta_auc_p)
    intervals = pd.read_csv(tmp_path / "ev" / "intervals.csv")
    assert intervals.delong_p.isna().all() and intervals.delta_obuchowski_p.isna().all()
    board = pd.read_csv(tmp_path / "ev" / "leaderboard.csv", dtype={"rank": str})
    assert board.set_index("model")["rank"]["always"] == "—"
    assert "degenerate" in out


@pytest.mark.slow
def test_a_finished_smoke_runs_predictions_reproduce_its_row(small_synthetic, tmp_path, capsys):
    """End to end: a real smoke run's predictions.csv, as it is (val rows, paths and all), scored
    as outside predictions against a set holding only Fus2Net, give that run's report row."""
    a = tmp_path / "a"
    code, _, err = run_main(capsys, "--model", "zeimarani_cnn", "--data", str(small_synthetic),
                            "--out", str(a), *SMOKE)
    assert code == 0, err
    real = next(a.glob("zeimarani_cnn-*"))
    ref = a / "fus2net-fixture"  # Fus2Net's run: the same record with other predictions
    shutil.copytree(real, ref)
    config = json.loads((ref / "config.json").read_text())
    config["settings"]["model"] = "fus2net"
    preds = pd.read_csv(ref / "predictions.csv", dtype={"id": str})
    rng = np.random.default_rng(3)
    preds["prob_malignant"] = np.clip(0.5 * preds.prob_malignant + rng.uniform(0, 0.5, len(preds)),
                                      0, 1)
    preds.to_csv(ref / "predictions.csv", index=False)
    config["outputs"]["predictions.csv"] = hashlib.sha256(
        (ref / "predictions.csv").read_bytes()).hexdigest()
    (ref / "config.json").write_text(json.dumps(config))
    expected = row_of(comparison_table(load_runs(a), n_boot=100), "zeimarani_cnn")
    b = tmp_path / "b"
    b.mkdir()
    shutil.copytree(ref, b / ref.name)
    code, _, err = call_main(capsys, main, "--predictions", str(real / "predictions.csv"),
                             "--name", "zcnn-outside", "--runs", str(b), "--out",
                             str(tmp_path / "ev"), "--n-boot", "100")
    assert code == 0, err
    assert_same_row(tmp_path / "ev", expected)
    record = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert record["predictions"]["val_rows"] > 0 and record["cv"]["folds"] == 2
    assert record["results_set"]["manifest_sha256"] == config["settings"]["manifest_sha256"]


# --- names, output folders, concurrent writers (docs/protocol.md, "Outside predictions") ----------

def _with_second_configuration(a: Path) -> Path:
    """Set A plus resnet50 on cleaned images (seed 0): a row of its own, labelled
    ``resnet50 (trained on cleaned images)``."""
    sha = hashlib.sha256((a.parent / "a-split.csv").read_bytes()).hexdigest()
    run = write_fixture_run(a, "resnet50", 0.5, 77, seed=0, manifest_sha256=sha,
                            annotations="clean:ns:abc", data_sha256="cd" * 32)
    shutil.copyfile(a.parent / "a-split.csv", run / "split.csv")
    return a


@pytest.mark.parametrize("name", [
    "resnet50 (trained on cleaned images)",  # a row label, not a model name: its seeds would merge
    "ResNet50  (Trained on cleaned images)",  # the same after case and spacing
    "FUS2NET", "Fus2Net — paper (Ma et al. 2021; own private test set, not comparable)",
    "resnet50", "ｒｅｓｎｅｔ５０"])  # full-width: the same after Unicode normalisation
def test_an_outside_name_that_is_a_row_of_the_set_is_refused(name, two_sets, tmp_path, capsys):
    a = _with_second_configuration(two_sets[0])
    good = tmp_path / "good.csv"
    _base().to_csv(good, index=False)
    code, _, err = call_main(capsys, main, "--predictions", str(good), "--name", name, "--runs",
                             str(a), "--out", str(tmp_path / "ev"))
    assert code == 2 and err.count("\n") == 1, err
    assert "the set already has a model or row of that name" in err
    assert not (tmp_path / "ev").exists()


def test_every_row_label_of_a_set_is_a_taken_name(two_sets):
    """The class: whatever label the comparison table gives a row, an outside model cannot take it."""
    a = _with_second_configuration(two_sets[0])
    rs = results_set(load_runs(a), a)
    labels = list(comparison_table(load_runs(a), n_boot=20).model)
    assert "resnet50 (trained on cleaned images)" in labels
    for label in labels:
        with pytest.raises(BenchError, match="already has a model or row"):
            check_name(label, rs)
    assert check_name("resnet50-outside", rs) == "resnet50-outside"


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", "a\\b", ".hidden", "x|y", "a\nb",
                                  "tab\there", "x" * 101, "  "])
def test_a_name_that_is_not_one_plain_folder_name_is_refused_before_anything_is_written(
        name, two_sets, tmp_path, capsys, monkeypatch):
    _, b = two_sets
    results = tmp_path / "results"
    monkeypatch.setattr(evaluate_cli, "OUTSIDE_DIR", results / "outside")
    good = tmp_path / "good.csv"
    _base().to_csv(good, index=False)
    code, _, err = call_main(capsys, main, "--predictions", str(good), "--name", name, "--runs",
                             str(b))
    assert code == 2 and err.count("\n") == 1 and "--name" in err, err
    assert not results.exists()


def test_without_out_an_evaluation_gets_a_folder_of_its_own(two_sets, tmp_path, capsys,
                                                            monkeypatch):
    _, b = two_sets
    monkeypatch.setattr(evaluate_cli, "OUTSIDE_DIR", tmp_path / "results" / "outside")
    good = tmp_path / "good.csv"
    _base().to_csv(good, index=False)
    code, _, err = call_main(capsys, main, "--predictions", str(good), "--name", " my model ",
                             "--runs", str(b), "--n-boot", "20")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["outside"]
    assert sorted(p.name for p in (tmp_path / "results" / "outside").iterdir()) == ["my model"]
    assert sorted(p.name for p in (tmp_path / "results" / "outside" / "my model").iterdir()) == \
        sorted(EVALUATION_FILES)  # exactly the files the evaluation owns (and replaces)


def _report_folder(root: Path) -> Path:
    """A results set's folder: its runs, tables and a README written by bench.report."""
    (root / "tables").mkdir(parents=True)
    (root / "tables" / "table3_comparison.csv").write_text("model\n")
    (root / "README.md").write_text("# fus2bench results\n\nGenerated by `python -m bench.report`\n")
    return root


@pytest.mark.parametrize("case", ["report", "readme", "partial", "runs"])
def test_out_holding_another_command_s_output_is_refused_and_left_as_it_was(
        case, two_sets, tmp_path, capsys):
    _, b = two_sets
    out = tmp_path / "out"
    if case == "report":
        _report_folder(out)
    elif case == "readme":
        out.mkdir()
        (out / "README.md").write_text("# Results\n\nAn index written by hand.\n")
    elif case == "partial":  # an evaluation that stopped before its record
        out.mkdir()
        for name in ("README.md", "roc.png", "row.csv"):
            (out / name).write_text("half")
    else:
        shutil.copytree(b, out / "runs")
    before = snapshot(out)
    good = tmp_path / "good.csv"
    _base().to_csv(good, index=False)
    code, _, err = call_main(capsys, main, "--predictions", str(good), "--name", "m", "--runs",
                             str(b), "--out", str(out), "--n-boot", "20")
    assert code == 2 and err.count("\n") == 1 and f"--out {out}" in err, err
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_the_user_s_own_files_in_out_are_kept_and_a_rerun_replaces_only_the_evaluation(
        two_sets, tmp_path, capsys):
    _, b = two_sets
    out = tmp_path / "my-eval"
    assert call_main(capsys, main, "--template", "--runs", str(b), "--out", str(out))[0] == 0
    mine = out / "mine.csv"
    _base().to_csv(mine, index=False)
    args = ["--predictions", str(mine), "--name", "m", "--runs", str(b), "--out", str(out),
            "--n-boot", "20"]
    assert call_main(capsys, main, *args)[0] == 0
    (out / "roc.pdf").unlink()  # a file of the evaluation that a rerun writes again
    assert call_main(capsys, main, *args)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*EVALUATION_FILES, "mine.csv", "predictions_template.csv", "training_ids.csv"])


def test_a_crash_while_writing_leaves_no_partial_output_and_the_guard_armed(
        two_sets, tmp_path, capsys, monkeypatch):
    _, b = two_sets
    out = tmp_path / "ev"
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    _base().to_csv(first, index=False)
    _base().assign(prob_malignant=np.linspace(0.99, 0.01, 100)).to_csv(second, index=False)

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluate_lib.calibration, "calibration_figure", crash)
    with pytest.raises(OSError):
        evaluate(first, "m", b, out, n_boot=20)
    assert not out.exists()  # nothing published
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    evaluate(first, "m", b, out, n_boot=20)
    before = snapshot(out)
    monkeypatch.setattr(evaluate_lib.calibration, "calibration_figure", crash)
    with pytest.raises(OSError):
        evaluate(first, "m", b, out, n_boot=20)  # a rerun that crashes
    assert snapshot(out) == before  # the earlier evaluation is whole
    monkeypatch.undo()
    with pytest.raises(BenchError, match="holds the evaluation of other predictions"):
        evaluate(second, "m", b, out, n_boot=20)


def test_two_evaluations_into_one_out_at_once_publish_one_and_refuse_the_other(
        two_sets, tmp_path, monkeypatch):
    _, b = two_sets
    out = tmp_path / "ev"
    files = [tmp_path / "first.csv", tmp_path / "second.csv"]
    _base().to_csv(files[0], index=False)
    _base().assign(prob_malignant=np.linspace(0.99, 0.01, 100)).to_csv(files[1], index=False)
    real = evaluate_lib.score
    started = threading.Barrier(2, timeout=30)

    def slow_score(*args, **kwargs):  # the first writer is still scoring when the second checks
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_lib, "score", slow_score)
    results: dict[int, object] = {}

    def writer(k: int) -> None:
        started.wait()
        try:
            results[k] = evaluate(files[k], f"m{k}", b, out, n_boot=20)["name"]
        except BenchError as exc:
            results[k] = exc

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done = [v for v in results.values() if isinstance(v, str)]
    refused = [v for v in results.values() if isinstance(v, BenchError)]
    assert len(done) == 1 and len(refused) == 1, results
    assert "holds the evaluation of other predictions" in str(refused[0])
    record = json.loads((out / "evaluation.json").read_text())
    assert record["name"] == done[0]
    assert record["predictions"]["sha256"] == hashlib.sha256(
        files[int(done[0][-1])].read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_the_readme_route_on_the_committed_set_scores_any_valid_file(tmp_path, capsys,
                                                                     monkeypatch):
    """README, "Score outside predictions": the template, then the evaluation exactly as printed,
    on the committed set, whose Fus2Net has other configurations (cleaned images, folds 0) as
    rows of their own; and a name that is one of those rows is refused."""
    monkeypatch.chdir(tmp_path)
    runs = str(PROJECT / "results" / "busi-cpu" / "runs")
    assert call_main(capsys, main, "--template", "--runs", runs, "--out", "my-eval")[0] == 0
    t = pd.read_csv("my-eval/predictions_template.csv", dtype={"id": str})
    t["prob_malignant"] = np.random.default_rng(0).uniform(0, 1, len(t))
    t.to_csv("mine.csv", index=False)
    code, _, err = call_main(capsys, main, "--predictions", "mine.csv", "--name",
                             "googlenet_fujioka (trained on cleaned images)", "--runs", runs,
                             "--out", "clash")
    assert code == 2 and "already has a model or row of that name" in err
    assert not Path("clash").exists()
    code, out, err = call_main(capsys, main, "--predictions", "mine.csv", "--name", "mymodel",
                               "--runs", runs, "--out", "my-eval")
    assert code == 0, err
    assert (Path("my-eval") / "evaluation.json").is_file() and Path("my-eval/roc.png").is_file()
    assert set(pd.read_csv("my-eval/row.csv").model) == {"mymodel"}
    from sklearn.metrics import roc_auc_score
    manifest = pd.read_csv(next(Path(runs).glob("fus2net-*")) / "split.csv", dtype={"id": str})
    y = manifest.set_index("id").label.reindex(t.id)
    record = json.loads(Path("my-eval/evaluation.json").read_text())
    assert record["row"]["auc"] == pytest.approx(roc_auc_score(y, t.prob_malignant))
    assert record["row"]["seeds"] == "0" and record["row"]["n_seeds"] == 1
