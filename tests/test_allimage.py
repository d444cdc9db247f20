"""The all-image evaluation (docs/statistics.md, "Every image scored once"): grouped K-fold over
every usable image, each image scored by a model that never saw its lesion group; its run kind,
suite plan, command-line checks and report section."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli.report import main as report_main
from bench.cli.suite import main as suite_main
from bench.core.errors import BenchError, SettingError
from bench.engine.allimage import allcv_folds, allcv_plan, evaluation_key, is_allcv, parse_key
from bench.engine.spec import RunOptions
from bench.jobs.plan import check_evaluations, suite_jobs
from bench.reporting.runs import load_runs
from tests.helpers import SMOKE, call_main, run_main
from tests.test_spec import SPEC


def manifest(n_groups: int = 40, seed: int = 0) -> pd.DataFrame:
    """Manifest rows of ``n_groups`` lesion groups of 1-4 images each, one label per group, some
    held out as test, one group excluded (label conflict)."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        label = int(g % 3 == 0)
        for k in range(int(rng.integers(1, 5))):
            rows.append({"id": f"img{g:03d}_{k}", "path": f"x/{g}_{k}.png", "label": label,
                         "group": f"g{g:04d}", "split": "test" if g % 5 == 0 else "train",
                         "fold": -1 if g % 5 == 0 else g % 10})
    return pd.DataFrame(rows)


def test_every_image_is_scored_once_by_a_model_that_never_trained_on_its_group():
    rows = manifest()
    plan = allcv_plan(rows, 5)
    assert [name for name, _, _ in plan] == [f"fold_{k}" for k in range(5)]
    scored = np.concatenate([ev for _, _, ev in plan])
    assert sorted(scored.tolist()) == list(range(len(rows)))  # every image exactly once
    assert set(rows.split.iloc[scored]) == {"train", "test"}  # held-out test images included
    groups = rows.group.to_numpy()
    for _, train, ev in plan:
        assert not set(groups[train]) & set(groups[ev])  # never trained on the scored group
        assert len(train) + len(ev) == len(rows)
        assert set(rows.label.iloc[ev]) == {0, 1}  # stratified: both classes in every fold
    fold = allcv_folds(rows, 5)
    for _, members in rows.groupby("group").groups.items():
        assert len(set(fold[rows.index.get_indexer(members)])) == 1  # no group split


def test_the_folds_are_fixed_by_their_seed_and_recorded_in_the_evaluation_key():
    rows = manifest()
    assert (allcv_folds(rows, 5) == allcv_folds(rows, 5)).all()
    assert (allcv_folds(rows, 5, seed=1) != allcv_folds(rows, 5)).any()
    key = evaluation_key(5)
    assert is_allcv(key) and parse_key(key) == (5, 2021)
    assert not is_allcv("heldout") and not is_allcv(None)


def test_images_without_a_group_are_each_their_own_group():
    rows = manifest().assign(group="")
    fold = allcv_folds(rows, 3)
    assert (fold >= 0).all() and set(fold) == {0, 1, 2}


def test_more_folds_than_groups_of_a_class_is_one_line_naming_the_setting():
    with pytest.raises(BenchError, match=r"`allcv_folds`=30: the data set has \d+ benign and "
                                         r"\d+ malignant groups"):
        allcv_folds(manifest(), 30)
    with pytest.raises(BenchError, match="at least 2 folds"):
        allcv_folds(manifest(), 1)


def test_the_evaluation_enters_the_hash_only_when_it_is_the_all_image_one():
    assert "evaluation" not in SPEC.to_dict()  # held-out runs keep their hashes and folders
    every = dataclasses.replace(SPEC, evaluation=evaluation_key(5))
    assert every.to_dict()["evaluation"] == "allcv:5:2021:1" and every.hash() != SPEC.hash()
    assert dataclasses.replace(SPEC, evaluation=evaluation_key(3)).hash() != every.hash()


def test_the_suite_plans_the_all_image_runs_after_the_held_out_ones(tmp_path):
    base = RunOptions(out=tmp_path, profile="smoke")
    jobs = suite_jobs(base, ["fus2net", "zeimarani_cnn"], [0, 1], external=["synthetic:B"],
                      evaluations=("heldout", "allcv"))
    labels = [j.label for j in jobs]
    assert labels == ["fus2net seed 0", "zeimarani_cnn seed 0", "fus2net seed 1",
                      "zeimarani_cnn seed 1", "fus2net seed 0 (every image)",
                      "zeimarani_cnn seed 0 (every image)", "fus2net seed 1 (every image)",
                      "zeimarani_cnn seed 1 (every image)"]
    every = [j for j in jobs if j.options.evaluation == "allcv"]
    assert all(not j.compared and not j.options.external for j in every)  # no final model
    assert len(suite_jobs(base, ["fus2net"], [0])) == 1  # default: held-out only, unchanged
    with pytest.raises(SettingError, match="give heldout,allcv"):
        check_evaluations(["allcv"])
    with pytest.raises(SettingError, match="'heldout,nonsense'"):
        check_evaluations(["heldout", "nonsense"])


def test_a_bad_evaluation_is_one_line_and_exit_code_2(capsys, tmp_path):
    code, _, err = run_main(capsys, "--evaluation", "nonsense", "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --evaluation nonsense: give heldout")
    code, _, err = call_main(capsys, suite_main, "--evaluation", "nonsense", "--models",
                             "fus2net", "--external", "none", "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --evaluation: 'nonsense': give heldout")
    code, _, err = call_main(capsys, suite_main, "--evaluation", "allcv", "--models", "fus2net",
                             "--external", "none", "--out", str(tmp_path))
    assert code == 2 and "give heldout,allcv" in err and err.count("\n") == 1


def test_an_all_image_run_refuses_external_sets_before_anything_is_read(capsys, tmp_path):
    code, _, err = run_main(capsys, "--evaluation", "allcv", "--external", "synthetic:B",
                            "--out", str(tmp_path), "--data", str(tmp_path / "nowhere"))
    assert code == 2 and err.count("\n") == 1 and "keeps no final model" in err


@pytest.mark.slow
def test_all_image_runs_resume_per_fold_make_their_own_table_and_count_in_the_header(
        small_synthetic, tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["--data", str(small_synthetic), *SMOKE, "--out", str(runs), "--allcv-folds", "3"]
    for model in ("fus2net", "zeimarani_cnn"):
        assert run_main(capsys, "--model", model, *common)[0] == 0  # held-out (Table 3)
    report = tmp_path / "report"
    assert report_main(["--runs", str(runs), "--out", str(report), "--n-boot", "50"]) == 0
    assert not list((report / "tables").glob("allimage*"))  # silent without all-image runs
    assert "Every image scored once" not in (report / "README.md").read_text()

    code, out, _ = run_main(capsys, "--model", "fus2net", "--evaluation", "allcv", *common)
    assert code == 0 and "every usable image scored once" in out
    folder = next(p for p in runs.iterdir() if is_allcv(
        json.loads((p / "config.json").read_text())["settings"].get("evaluation")))
    preds = pd.read_csv(folder / "allcv_predictions.csv", dtype={"id": str})
    split = pd.read_csv(folder / "split.csv", dtype={"id": str, "group": str})
    usable = split[split.split != "excluded"]
    assert sorted(preds.id) == sorted(usable.id)  # every usable image once, test included
    assert set(preds.fold) == {0, 1, 2} and set(preds.split) == {"allcv"}
    fold_of = dict(zip(preds.id, preds.fold, strict=True))
    assert usable.groupby("group").id.apply(lambda ids: len({fold_of[i] for i in ids})).max() == 1
    assert not (folder / "predictions.csv").exists() and not (folder / "model.safetensors").exists()

    # an interrupted run: fold 2 lost, the record still running; the rerun trains fold 2 only
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "status": "running"}))
    shutil.rmtree(folder / "stages" / "fold_2")
    code, out, _ = run_main(capsys, "--model", "fus2net", "--evaluation", "allcv", *common)
    assert code == 0
    assert "resumed: reused fold_0, fold_1 (checksums verified); trained fold_2" in out
    again = pd.read_csv(folder / "allcv_predictions.csv", dtype={"id": str})
    kept = again.fold < 2
    assert np.array_equal(again.prob_malignant[kept], preds.prob_malignant[kept])

    assert run_main(capsys, "--model", "zeimarani_cnn", "--evaluation", "allcv", *common)[0] == 0
    assert len(load_runs(runs)) == 2  # every other reader sees the held-out runs only
    assert len(load_runs(runs, evaluations=("allcv",))) == 2
    assert report_main(["--runs", str(runs), "--out", str(report), "--n-boot", "50"]) == 0
    t = pd.read_csv(report / "tables" / "allimage_comparison.csv").set_index("model")
    assert list(t.index) == ["fus2net", "zeimarani_cnn"]
    assert int(t.loc["fus2net"].n_mean) == len(usable)
    row = t.loc["zeimarani_cnn"]
    assert row.matched_seeds == 0 or str(row.matched_seeds) == "0"
    assert np.isfinite([row.delta_auc, row.delta_auc_vc_lo, row.delta_auc_vc_hi,
                        row.delta_auc_p_holm, row.delta_auc_mdd]).all()
    assert isinstance(row.verdict, str) and row.verdict
    readme = (report / "README.md").read_text()
    assert "## Every image scored once (all-image evaluation)" in readme
    # the header counts the all-image runs and their training time beside the held-out ones
    assert "* **Runs**: 2, and 2 all-image runs (every image scored once);" in readme
    assert " (4 runs: 2 held-out, 2 all-image)" in readme
    assert f"({len(usable)} images in" in readme
    findings = (report / "tables" / "allimage_findings.md").read_text()
    assert "* **Against Fus2Net** (1 contrast, ΔAUC over matched seeds" in findings
    assert "**Every image against the held-out test** (1 contrast in both tables)" in findings
    assert findings in readme  # the README quotes the file whole
    for name in ("allimage_roc.png", "allimage_delta_auc.png"):
        assert (report / "figures" / name).is_file()
    t3 = pd.read_csv(report / "tables" / "table3_comparison.csv")
    assert int(t3.n_mean.dropna().iloc[0]) < len(usable)  # Table 3 stays the held-out test's
    assert Path(report / "tables" / "allimage_comparison.md").read_text().count("|") > 10
