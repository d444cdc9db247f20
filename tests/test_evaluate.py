"""Outside predictions scored on a results set (bench.reporting.evaluate, bench/reporting/outside.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli.evaluate import main
from bench.reporting.outside import OUTSIDE
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
            (["--predictions", str(good), "--name", "fus2net"], "--name fus2net: the set already"),
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
