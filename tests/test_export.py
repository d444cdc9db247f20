"""python -m bench.export mlflow: runs written to a real MLflow store and read back with MLflow's own
client; idempotent; one-line errors. Stores live in tmp; the committed set is only read."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import api
from bench.cli.export import main
from bench.reporting import tracking
from bench.reporting.runs import load_runs
from tests.helpers import call_main, write_fixture_run

PROJECT = Path(__file__).resolve().parents[1]
SET = PROJECT / "results" / "busi-cpu"
# Fus2Net (its plain configuration), seed 0, of the committed set
_PER_SEED = pd.read_csv(SET / "tables" / "table3_per_seed.csv")
RUN = _PER_SEED[(_PER_SEED.model == "fus2net") & (_PER_SEED.seed == 0)].run.iloc[0]


def client(uri: str):
    mlflow = pytest.importorskip("mlflow")
    return mlflow.MlflowClient(tracking_uri=uri)


def active_runs(uri: str, experiment: str) -> dict[str, object]:
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    return {r.data.tags[tracking.RUN_TAG]: r for r in c.search_runs([exp.experiment_id])}


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """A migrated, empty SQLite store (creating its tables takes seconds), copied per test."""
    mlflow = pytest.importorskip("mlflow")
    db = tmp_path_factory.mktemp("store") / "template.db"
    with tracking._quiet():
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(empty_store, tmp_path) -> str:
    db = tmp_path / "mlflow" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(empty_store, db)
    return f"sqlite:///{db}"


@pytest.fixture
def fixture_set(tmp_path) -> Path:
    runs = tmp_path / "set" / "runs"
    write_fixture_run(runs, "fus2net", 0.6, 1, seed=0)
    write_fixture_run(runs, "fus2net", 0.6, 2, seed=1)
    write_fixture_run(runs, "resnet50", 0.4, 3, seed=0)
    return runs


@pytest.mark.slow
def test_each_run_is_an_mlflow_run_with_params_metrics_tags_and_artefacts(fixture_set, store,
                                                                          capsys):
    code, out, err = call_main(capsys, main, "mlflow", "--runs", str(fixture_set),
                               "--tracking-uri", store)
    assert code == 0, err
    assert "exported 3 runs" in out and "3 new, 0 updated, 0 unchanged" in out
    runs = active_runs(store, "fus2bench/set")
    assert len(runs) == 3
    folder = sorted(fixture_set.iterdir())[0]
    r = runs[folder.name]
    config = json.loads((folder / "config.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert r.data.tags["model"] == "fus2net" and r.data.tags["seed"] == "0"
    assert r.data.tags["configuration"] == "fus2net"
    assert r.data.params["img_size"] == "96" and r.data.params["model_kwargs.in_chans"] == "3"
    assert r.data.metrics["test_auc"] == metrics["test"]["auc"]
    assert r.data.metrics["cv_auc"] == metrics["cv"]["mean"]["auc"]
    assert r.info.status == "FINISHED" and config["status"] == "complete"
    c = client(store)
    assert len(c.get_metric_history(r.info.run_id, "cv_fold_auc")) == 3
    names = {a.path for a in c.list_artifacts(r.info.run_id)}
    assert {"config.json", "metrics.json", "predictions.csv", "cv_metrics.csv"} <= names
    got = Path(c.download_artifacts(r.info.run_id, "predictions.csv", str(fixture_set.parent)))
    assert got.read_bytes() == (folder / "predictions.csv").read_bytes()


@pytest.mark.slow
def test_exporting_twice_adds_nothing_and_a_changed_run_is_replaced(fixture_set, store):
    first = tracking.export_runs(fixture_set, store)
    again = tracking.export_runs(fixture_set, store)
    assert len(first.created) == 3 and len(again.skipped) == 3 and not again.created
    assert len(active_runs(store, "fus2bench/set")) == 3
    folder = sorted(fixture_set.iterdir())[0]
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["test"]["auc"] = 0.5
    (folder / "metrics.json").write_text(json.dumps(metrics))
    third = tracking.export_runs(fixture_set, store)
    assert third.updated == [folder.name] and len(third.skipped) == 2
    runs = active_runs(store, "fus2bench/set")
    assert len(runs) == 3 and runs[folder.name].data.metrics["test_auc"] == 0.5


@pytest.mark.slow
def test_the_default_store_is_sqlite_beside_the_runs_and_kept_out_of_git(fixture_set,
                                                                         monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = api.export_mlflow(fixture_set, experiment="mine")  # as from a notebook
    folder = fixture_set.parent / "mlflow"
    assert result.tracking_uri == f"sqlite:///{(folder / 'mlflow.db').as_posix()}"
    assert (folder / "mlflow.db").is_file() and (folder / ".gitignore").read_text().endswith("*\n")
    assert len(active_runs(result.tracking_uri, "mine")) == 3
    assert not list((fixture_set.parent / "runs").glob("*/mlflow*"))  # run folders only read


def test_a_bad_runs_folder_is_one_line_with_exit_2(tmp_path, capsys):
    code, out, err = call_main(capsys, main, "mlflow", "--runs", str(tmp_path / "none"),
                               "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}")
    assert code == 2 and out == ""
    assert err.strip() == f"error: --runs {tmp_path / 'none'}: not a folder of run results"
    assert not (tmp_path / "m.db").exists()


@pytest.mark.parametrize(("uri", "says"), [
    ("sqlite://relative.db", "a SQLite store is sqlite:///relative/file.db"),
    ("nonsense://store", "not a tracking store MLflow writes to"),
    ("./mlruns", "MLflow 3 no longer writes folder (file:) stores"),
    ("http://127.0.0.1:9/", "no server answers at 127.0.0.1:9"),
    ("", "--tracking-uri is empty"),
])
def test_a_bad_tracking_uri_is_one_line_with_exit_2(uri, says, fixture_set, capsys, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    code, out, err = call_main(capsys, main, "mlflow", "--runs", str(fixture_set),
                               "--tracking-uri", uri)
    assert code == 2 and out == "" and says in err
    assert len(err.strip().splitlines()) == 1


def test_without_mlflow_the_error_says_how_to_install_it(fixture_set, monkeypatch, capsys):
    for name in ("mlflow", "mlflow.entities", "mlflow.exceptions", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, name, None)
    code, out, err = call_main(capsys, main, "mlflow", "--runs", str(fixture_set))
    assert code == 2 and out == ""
    assert err.strip().endswith('install the extra with pip install -e ".[mlflow]"')
    assert len(err.strip().splitlines()) == 1
    assert not (fixture_set.parent / "mlflow").exists()  # nothing written


@pytest.mark.slow
def test_the_committed_set_exports_read_only_with_the_reports_numbers(store, tmp_path):
    before = sorted((p.relative_to(SET), p.stat().st_mtime_ns) for p in SET.rglob("*"))
    held_out = load_runs(SET / "runs")  # what the report reads: every held-out run
    result = tracking.export_runs(SET / "runs", store)
    assert len(result.created) == len(held_out) >= 30
    runs = active_runs(store, "fus2bench/busi-cpu")
    assert len(runs) == len(held_out)
    r = runs[RUN]
    t3 = pd.read_csv(SET / "tables" / "table3_per_seed.csv").set_index("run").loc[RUN]
    assert r.data.metrics["report_auc_cl_lo"] == t3.auc_cl_lo
    assert r.data.metrics["test_auc"] == t3.auc
    committed = json.loads((SET / "runs" / RUN / "config.json").read_text())
    assert r.data.tags["code_version"] == committed["settings"]["code_version"]
    assert "Fus2Net: RMSprop" in {x.data.tags["configuration"] for x in runs.values()}
    c = client(store)
    assert {a.path for a in c.list_artifacts(r.info.run_id, "report")} == {
        "report/table3_per_seed.csv", "report/roc_points.csv"}
    assert len(tracking.export_runs(SET / "runs", store).skipped) == len(held_out)
    assert sorted((p.relative_to(SET), p.stat().st_mtime_ns) for p in SET.rglob("*")) == before
