"""bench.api as a researcher calls it from a notebook: scoring predictions with the report's own
statistics against the committed results set (read only), reading runs, building models, and the
split manifests shipped in the wheel."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bench
from bench import api
from bench.core.errors import BenchError
from tests.helpers import write_fixture_run

PROJECT = Path(__file__).resolve().parents[1]
SET = PROJECT / "results" / "busi-cpu"
MANIFEST = PROJECT / "datasets" / "splits" / "busi.csv"


def committed_row_of_seed(seed: int) -> str:
    """The run of Fus2Net (its plain configuration) at ``seed`` in the committed set's table."""
    t = pd.read_csv(SET / "tables" / "table3_per_seed.csv")
    return t[(t.model == "fus2net") & (t.seed == seed)].run.iloc[0]


RUN = SET / "runs" / committed_row_of_seed(0)
# the manifest the committed set was made on (its runs keep a copy); the committed manifest may be
# newer until the set is regenerated
SET_MANIFEST = RUN / "split.csv"
# the committed tables hold 10 significant digits
DIGITS = 1e-9
# table3_per_seed.csv columns that describe the row rather than measure it
LABELS = ("model", "weights", "status", "run", "flag")


def committed_row(run: str) -> pd.Series:
    t = pd.read_csv(SET / "tables" / "table3_per_seed.csv")
    return t[t.run == run].iloc[0]


def own_test_predictions(run: Path = RUN) -> pd.DataFrame:
    p = pd.read_csv(run / "predictions.csv", dtype={"id": str})
    return p[p.split == "test"][["id", "prob_malignant"]].reset_index(drop=True)


def assert_same_numbers(mine: pd.Series, committed: pd.Series) -> None:
    for col in committed.index:
        if col in LABELS or pd.isna(committed[col]):
            continue
        assert mine[col] == pytest.approx(committed[col], abs=DIGITS, rel=0), col


def test_scoring_a_committed_runs_own_predictions_gives_the_committed_table_row():
    scores = api.score_predictions(RUN)
    row = committed_row(RUN.name)
    assert scores.manifest_file == RUN / "split.csv"
    assert scores.per_seed.model.tolist() == [RUN.name]
    assert scores.metrics["auc"] == pytest.approx(row.auc, abs=DIGITS, rel=0)
    assert_same_numbers(scores.per_seed.iloc[0], row)  # Wilson, DeLong, bootstrap, Obuchowski
    m = scores.metrics
    # the interval resamples the manifest's lesion groups: fewer clusters than test images
    assert m["n_clusters"] == row.n_clusters < 100 and m["auc_cl_lo"] < m["auc"] < m["auc_cl_hi"]
    assert m["sensitivity"] == pytest.approx(row.sensitivity, abs=DIGITS, rel=0)
    assert {"auc_cluster_boot_lo", "auc_obuchowski_hi"} <= set(scores.intervals.columns)


def test_a_dataframe_scored_on_the_set_s_manifest_gives_the_same_numbers():
    row = committed_row(RUN.name)
    frame = own_test_predictions()
    scores = bench.score_predictions(frame, SET_MANIFEST, name="mine")
    assert scores.manifest_file == SET_MANIFEST
    assert scores.per_seed.model.tolist() == ["mine"]
    assert_same_numbers(scores.per_seed.iloc[0], row)


def test_a_data_set_name_scores_on_its_committed_manifest():
    manifest = api.load_manifest("busi")
    test_ids = manifest.id[manifest.split == "test"].tolist()
    assert len(test_ids) == 100
    frame = pd.DataFrame({"id": test_ids,
                          "prob_malignant": np.random.default_rng(0).uniform(size=100)})
    scores = bench.score_predictions(frame, "busi", name="mine", n_boot=50)
    assert scores.manifest_file == MANIFEST
    assert api.score_predictions(frame, MANIFEST, n_boot=50).metrics == scores.metrics


def test_several_seeds_give_a_row_each_and_the_ensemble_of_the_seeds():
    p0 = own_test_predictions()
    p1 = own_test_predictions(SET / "runs" / committed_row_of_seed(1)).assign(seed=1)
    scores = api.score_predictions(pd.concat([p0.assign(seed=0), p1]), SET_MANIFEST, n_boot=50)
    assert scores.per_seed.seed.tolist() == [0, 1]
    assert scores.metrics["n_seeds"] == 2 and "ensemble_auc" in scores.metrics
    assert scores.intervals.seed.tolist() == ["0", "1", "ensemble of the seeds"]


@pytest.mark.parametrize(("change", "says"), [
    (lambda f: f.assign(prob_malignant=f.prob_malignant.where(f.index != 3, 1.5)),
     "`predictions` (DataFrame) row 3: prob_malignant is '1.5', not a probability"),
    (lambda f: f.iloc[1:], "1 missing held-out test id(s)"),
    (lambda f: f.rename(columns={"prob_malignant": "prob"}), "unknown column(s) 'prob'"),
])
def test_a_bad_dataframe_is_one_sentence_about_the_dataframe(change, says):
    with pytest.raises(BenchError) as exc:
        api.score_predictions(change(own_test_predictions()), SET_MANIFEST)
    assert says in str(exc.value) and "\n" not in str(exc.value)
    assert "fus2bench-" not in str(exc.value)  # never the temporary file


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"manifest": "busbra"}, "`manifest`=busbra: neither a manifest file nor a data set"),
    ({"n_boot": 0}, "`n_boot`=0: give a whole number >= 1"),
    ({"seed": -1}, "`seed`=-1: give a whole number >= 0"),
])
def test_bad_arguments_are_one_sentence_naming_them(kwargs, says):
    with pytest.raises(BenchError, match="^" + says.replace("(", r"\(").replace("[", r"\[")):
        api.score_predictions(own_test_predictions(), **kwargs)
    with pytest.raises(BenchError, match="^`predictions`=.*nowhere.csv: file does not exist"):
        api.score_predictions("nowhere.csv")


def test_load_runs_gives_one_row_per_run_with_its_settings_and_metrics(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_fixture_run(runs, "fus2net", 0.6, 10 + seed, seed=seed)
        write_fixture_run(runs, "resnet50", 0.4, 20 + seed, seed=seed)
    write_fixture_run(runs, "resnet50", 0.4, 30, seed=0, channels=1)
    df = api.load_runs(runs)
    assert len(df) == 5 and df.run.is_monotonic_increasing
    assert {"run", "model", "seed", "configuration", "table", "weights", "img_size", "test_auc",
            "cv_auc", "settings"} <= set(df.columns)
    res = df[df.model == "resnet50"].set_index("run")
    assert set(res.configuration) == {"resnet50", "resnet50 (in no table)"}
    one_channel = res[res.channels == 1].iloc[0]
    assert one_channel.table.startswith("not the paper recipe")
    metrics = json.loads((runs / df.run.iloc[0] / "metrics.json").read_text())
    assert df.test_auc.iloc[0] == metrics["test"]["auc"]
    assert df.cv_auc.iloc[0] == metrics["cv"]["mean"]["auc"]
    with pytest.raises(BenchError, match="`runs` .*: not a folder of run results"):
        api.load_runs(tmp_path / "nothing")


def test_load_runs_of_the_committed_set_labels_every_row_as_the_report_does():
    df = api.load_runs(SET / "runs")
    settings = [json.loads(c.read_text())["settings"] for c in (SET / "runs").glob("*/config.json")]
    assert len(df) == sum(not str(s.get("evaluation") or "").startswith("allcv") for s in settings)
    t3 = pd.read_csv(SET / "tables" / "table3_per_seed.csv")
    labelled = df.set_index("run").configuration
    assert (labelled.reindex(t3.run).to_numpy() == t3.model.to_numpy()).all()
    assert "Fus2Net: RMSprop" in set(df.configuration)
    assert np.allclose(df.set_index("run").test_auc.reindex(t3.run), t3.auc, rtol=0, atol=DIGITS)
    assert df.set_index("run").external_breast_auc.reindex(t3.run).notna().all()


def test_models_are_listed_and_built_through_the_api():
    assert "fus2net" in api.list_models()
    model = bench.create_model("fus2net", pretrained="none")
    assert model.model_name == "fus2net"
    with pytest.raises(BenchError, match="unknown model 'fus2nett'; did you mean fus2net"):
        api.create_model("fus2nett")


@pytest.mark.slow
def test_import_bench_and_its_api_loads_neither_torch_nor_pandas():
    code = ("import sys, bench; from bench import api; bench.api.manifest_path('busi'); "
            "print(sorted(m for m in ('torch', 'pandas', 'models') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_predictions_beside_a_results_set_are_compared_with_its_fus2net():
    scores = api.score_predictions(own_test_predictions(SET / "runs" / committed_row_of_seed(1)),
                                   SET / "runs", name="mine", n_boot=20)
    assert scores.manifest_file.name == "split.csv"
    # Fus2Net's seed-1 predictions against Fus2Net's seed-0 run: a paired ΔAUC exists
    assert "delta_auc" in scores.metrics and "mine" in set(scores.leaderboard.model)
    assert scores.intervals.fus2net_auc.notna().all()


@pytest.mark.slow
def test_the_wheel_ships_the_split_manifests_and_installed_code_finds_them(tmp_path):
    src = tmp_path / "src"  # a copy of what the wheel is built from: no build/ in the checkout
    for folder in ("bench", "models", "datasets/splits"):
        shutil.copytree(PROJECT / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.png", "cache"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(PROJECT / name, src / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), "."],
                         cwd=src, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = next((tmp_path / "dist").glob("fus2bench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = [n for n in names if "/share/fus2bench/splits/" in n]
    assert any(n.endswith("/splits/busi.csv") for n in shipped)
    assert any(n.endswith("/splits/same_lesion_rule.json") for n in shipped)
    assert not any(n.endswith(".png") for n in shipped)  # the review sheets stay in the checkout
    prefix = tmp_path / "prefix"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                          "--ignore-installed",  # else pip removes the checkout's own install
                          "--prefix", str(prefix), str(wheel)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    site = next(prefix.glob("lib*/python*/site-packages"))
    code = ("import bench, bench.core.paths as p; from bench import api; "
            "print(bench.__file__); print(api.manifest_path('busi'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env={"PYTHONPATH": str(site), "PATH": ""})
    assert out.returncode == 0, out.stderr
    package, manifest = out.stdout.split()
    assert Path(package).is_relative_to(site)
    assert Path(manifest) == prefix / "share" / "fus2bench" / "splits" / "busi.csv"
    assert Path(manifest).read_bytes() == MANIFEST.read_bytes()
