"""``bench.engine.stages``: a stage's files on disk, the check that lets a rerun reuse them, and the
check of a finished run's files (docs/protocol.md, "Runs and profiles": stages and resume)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from bench.core.provenance import file_sha256
from bench.engine.stages import (
    PRED_COLUMNS,
    fold_number,
    reuse_stage,
    run_problem,
    stage_valid,
    write_done,
    write_failed,
)

HASH = "0123456789"
ROWS = pd.DataFrame({"id": ["a", "b", "c", "d"], "path": [f"x/{i}.png" for i in "abcd"],
                     "label": [0, 1, 0, 1], "split": "train", "fold": [0, 1, 2, 3]})
PROBS = np.array([0.1, 0.8, 0.4, 0.6])


def done_stage(folder: Path, name: str = "fold_1", model: torch.nn.Module | None = None):
    return write_done(name, folder, HASH, ROWS, PROBS, model, {"train_images": 12}, 1.234)


def test_stage_names_map_to_the_fold_column():
    assert [fold_number(s) for s in ("fold_0", "fold_7", "fold_12", "final")] == [0, 7, 12, -1]


def test_a_finished_fold_writes_its_predictions_metrics_and_a_done_record_last(tmp_path):
    result = done_stage(tmp_path)
    assert result.status == "done" and result.name == "fold_1" and result.seconds == 1.234
    preds = pd.read_csv(tmp_path / "predictions.csv", dtype={"id": str})
    assert list(preds.columns) == PRED_COLUMNS
    assert set(preds.split) == {"val"} and set(preds.fold) == {1}
    assert preds.prob_malignant.tolist() == PROBS.tolist()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == pytest.approx(result.metrics) and metrics["n"] == 4 and metrics["auc"] == 1
    done = json.loads((tmp_path / "done.json").read_text())
    assert (done["config_hash"], done["stage"], done["train_images"]) == (HASH, "fold_1", 12)
    assert done["files"] == {n: file_sha256(tmp_path / n) for n in ("predictions.csv",
                                                                     "metrics.json")}
    assert not (tmp_path / "model.safetensors").exists()  # fold weights only when asked for


def test_the_final_stage_is_the_test_set_and_keeps_its_weights(tmp_path):
    model = torch.nn.Linear(3, 2)
    done_stage(tmp_path, "final", model)
    preds = pd.read_csv(tmp_path / "predictions.csv")
    assert set(preds.split) == {"test"} and set(preds.fold) == {-1}
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert torch.equal(saved["weight"], model.weight.detach())
    assert "model.safetensors" in json.loads((tmp_path / "done.json").read_text())["files"]


def test_a_stage_is_reused_only_with_its_run_s_hash_and_intact_files(tmp_path):
    assert not stage_valid(tmp_path, HASH)  # nothing there yet
    done_stage(tmp_path)
    assert stage_valid(tmp_path, HASH)
    assert not stage_valid(tmp_path, "9876543210")  # another configuration's stage
    path = tmp_path / "predictions.csv"
    good = path.read_bytes()
    path.write_bytes(good[:-3])  # truncated
    assert not stage_valid(tmp_path, HASH)
    path.write_bytes(good)
    (tmp_path / "metrics.json").unlink()
    assert not stage_valid(tmp_path, HASH)
    done_stage(tmp_path)
    (tmp_path / "done.json").write_text("{not json")
    assert not stage_valid(tmp_path, HASH)


def test_a_reused_stage_gives_back_what_was_written(tmp_path):
    written = done_stage(tmp_path)
    again = reuse_stage("fold_1", tmp_path)
    assert again.status == "reused" and again.seconds == 0
    pd.testing.assert_frame_equal(again.predictions, written.predictions, check_dtype=False)
    assert again.metrics == pytest.approx(written.metrics)


def test_a_failed_stage_records_why_and_a_later_success_replaces_the_record(tmp_path):
    result = write_failed("fold_0", tmp_path, HASH, "fold_0: training stopped, loss nan", 2, 7,
                          t0=0.0)
    assert result.status == "failed" and result.predictions is None and "loss nan" in result.message
    failed = json.loads((tmp_path / "failed.json").read_text())
    assert failed == {"config_hash": HASH, "stage": "fold_0", "epoch": 2, "step": 7,
                      "message": "fold_0: training stopped, loss nan"}
    assert not stage_valid(tmp_path, HASH)  # a failed stage is trained again on a rerun
    done_stage(tmp_path, "fold_0")
    assert not (tmp_path / "failed.json").exists() and stage_valid(tmp_path, HASH)


def test_a_finished_run_s_problem_is_named_file_by_file(tmp_path):
    run = tmp_path / "run"
    done_stage(run / "stages" / "fold_0", "fold_0")
    (run / "metrics.json").write_text("{}")
    cfg = {"outputs": {"metrics.json": file_sha256(run / "metrics.json")},
           "timings": {"stages": {"fold_0": {"status": "done"}}}}
    assert run_problem(run, cfg, HASH) is None
    assert run_problem(run, cfg, "9876543210") == \
        "stage fold_0's files are missing or do not match their checksums"
    (run / "metrics.json").write_text('{"changed": 1}')
    assert run_problem(run, cfg, HASH) == "metrics.json does not match its recorded checksum"
    (run / "metrics.json").unlink()
    assert run_problem(run, cfg, HASH) == "metrics.json is missing"
