"""``bench.report``: tables from saved runs, deterministic rebuilds, every figure written."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.collect import load_runs
from bench.metrics import binary_metrics
from bench.report import main
from bench.tables import comparison_table


def write_fixture_run(root: Path, model: str, quality: float, seed: int, **settings) -> Path:
    """A finished run folder as bench.run writes it, with predictions of a given quality."""
    rng = np.random.default_rng(seed)
    folder = root / f"{model}-fixture-{seed}"
    folder.mkdir(parents=True)
    y = np.array([0] * 50 + [1] * 50)
    p = np.clip(0.5 + quality * (y - 0.5) + rng.normal(0, 0.25, 100), 0.001, 0.999)
    preds = pd.DataFrame({"id": [f"img{i:03d}" for i in range(100)], "path": "x.png", "label": y,
                          "prob_malignant": p, "split": "test", "fold": -1})
    val_y = rng.integers(0, 2, 60)
    val = pd.DataFrame({"id": [f"val{i:03d}" for i in range(60)], "path": "v.png", "label": val_y,
                        "prob_malignant": np.clip(0.5 + quality * (val_y - 0.5) + rng.normal(0, .3, 60), 0, 1),
                        "split": "val", "fold": np.arange(60) % 3})
    preds = pd.concat([val, preds], ignore_index=True)
    preds.to_csv(folder / "predictions.csv", index=False)
    cv = pd.DataFrame([{"fold": k, "status": "ok", **binary_metrics(
        val_y[val.fold == k], val.prob_malignant[val.fold == k])} for k in range(3)])
    cv.to_csv(folder / "cv_metrics.csv", index=False)
    means = cv.mean(numeric_only=True)
    sds = cv.std(numeric_only=True)
    keys = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "auc", "brier")
    metrics = {"test": binary_metrics(y, p), "test_status": "ok",
               "cv": {"folds": 3, "failed_folds": 0, "mean": {k: float(means[k]) for k in keys},
                      "sd": {k: float(sds[k]) for k in keys}}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    s = {"model": model, "data_kind": "synthetic", "manifest_sha256": "ab" * 32, "img_size": 96,
         "epochs": 8, "batch_size": 16, "folds": 3, "channels": 3, "augment": True,
         "optimizer": "adam", "model_kwargs": {"in_chans": 3}, "seed": 0, **settings}
    config = {"status": "complete", "settings": s, "weights": "random",
              "profile": {"name": "quick", "description": "fixture"}, "finished": f"2026-11-26T0{seed}",
              "model_stats": {"params": 1_000_000 + seed, "gflops": 1.5}, "git_revision": "abc",
              "device": {"device": "cpu", "cpu": "x86_64"}, "versions": {"torch": "2.x"},
              "data": {"root": "/data", "split_source": "generated"}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture()
def fixture_runs(tmp_path) -> Path:
    runs = tmp_path / "runs"
    write_fixture_run(runs, "fus2net", 0.6, 1)
    write_fixture_run(runs, "fus2net", 0.4, 2, optimizer="rmsprop")
    write_fixture_run(runs, "fus2net", 0.3, 3, channels=1)
    write_fixture_run(runs, "resnet50", 0.5, 4)
    write_fixture_run(runs, "zeimarani_cnn", 0.2, 5)
    return runs


def test_report_is_byte_identical_when_rebuilt(fixture_runs, tmp_path):
    out = tmp_path / "out"
    assert main(["--runs", str(fixture_runs), "--out", str(out), "--n-boot", "300"]) == 0
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(first) > 20
    assert main(["--runs", str(fixture_runs), "--out", str(out), "--n-boot", "300"]) == 0
    second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    for rel, content in first.items():
        assert second[rel] == content, rel


def test_every_figure_is_written_and_non_empty(fixture_runs, tmp_path):
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "200"]) == 0
    for name in ("fig2_roc", "confusion_matrices", "cv_folds", "calibration", "fig1_optimizers"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{name}.{ext}").stat().st_size > 1000
    readme = (tmp_path / "README.md").read_text()
    assert "figures/fig2_roc.png" in readme and "| fus2net |" in readme


def test_figures_redraw_from_saved_tables_alone(fixture_runs, tmp_path):
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "200"]) == 0
    roc = (tmp_path / "figures" / "fig2_roc.png").read_bytes()
    (tmp_path / "figures" / "fig2_roc.png").unlink()
    assert main(["--runs", str(tmp_path / "nowhere"), "--out", str(tmp_path), "--figures-only"]) == 0
    assert (tmp_path / "figures" / "fig2_roc.png").read_bytes() == roc


def test_comparison_table_rows_tests_and_paper_row(fixture_runs, tmp_path):
    t = comparison_table(load_runs(fixture_runs), n_boot=200)
    assert list(t.model) == ["fus2net", "resnet50", "zeimarani_cnn"]  # paper-recipe runs only
    assert np.isnan(t.delong_p[0]) and (t.delong_p_holm[1:] >= t.delong_p[1:]).all()
    assert (t.auc_lo <= t.auc).all() and (t.auc <= t.auc_hi).all()
    assert t.mcnemar_p[1:].between(0, 1).all()
    main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "200"])
    csv = pd.read_csv(tmp_path / "tables" / "table3_comparison.csv")
    assert csv.model.iloc[-1].startswith("Fus2Net — paper") and csv.ppv.iloc[-1] == pytest.approx(0.9565, abs=1e-4)
    fig1 = pd.read_csv(tmp_path / "tables" / "fig1_optimizers.csv")
    assert list(fig1.evaluated_on) == ["3-fold CV mean", "3-fold CV mean", "not run"]
    t1 = (tmp_path / "tables" / "table1_channels.md").read_text()
    assert "1-channel" in t1 and "±" in t1


def test_failed_run_shows_failure_not_a_number(fixture_runs, tmp_path):
    folder = next(fixture_runs.glob("resnet50-*"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["status"] = "failed"
    (folder / "config.json").write_text(json.dumps(cfg))
    preds = pd.read_csv(folder / "predictions.csv")
    preds[preds.split != "test"].to_csv(folder / "predictions.csv", index=False)
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "200"]) == 0
    md = (tmp_path / "tables" / "table3_comparison.md").read_text()
    assert "| resnet50 | random init |" in md and "failed" in md


def test_mixed_profiles_need_a_choice(fixture_runs, tmp_path):
    folder = next(fixture_runs.glob("resnet50-*"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["profile"]["name"] = "paper"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit) as exc:
        main(["--runs", str(fixture_runs), "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--profile", "quick",
                 "--n-boot", "200"]) == 0


COMMITTED = Path(__file__).resolve().parents[1] / "results" / "busi-quick"


@pytest.mark.skipif(not (COMMITTED / "runs").is_dir(), reason="no committed results set")
def test_committed_runs_regenerate_the_committed_tables_exactly(tmp_path):
    assert main(["--runs", str(COMMITTED / "runs"), "--out", str(tmp_path)]) == 0
    committed = sorted((COMMITTED / "tables").iterdir())
    assert committed
    for path in committed:
        assert (tmp_path / "tables" / path.name).read_bytes() == path.read_bytes(), path.name
