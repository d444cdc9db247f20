"""``bench.engine.runfolder``: one rule set for recorded checksums, for reuse and for reading."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.engine.runfolder import InvalidRun, RunFolder, RunStatus
from bench.engine.stages import StageStatus
from tests.helpers import write_fixture_run


def recorded(tmp_path, with_weights: bool = True) -> RunFolder:
    """A fixture run whose outputs (and one stage) are recorded as a finished run records them."""
    folder = RunFolder(write_fixture_run(tmp_path / "runs", "fus2net", 0.6, 1))
    if with_weights:
        (folder / "model.safetensors").write_bytes(b"weights")
    stage = folder.stage("final")
    preds = pd.read_csv(folder / "predictions.csv")
    stage.write_done("h1", preds, {"auc": 0.5}, None, {"seconds": 1.0})
    cfg = folder.read_config()
    cfg.update(config_hash="h1", outputs=folder.record_outputs(),
               timings={"stages": {"final": {"status": StageStatus.DONE, "seconds": 1.0}}})
    folder.write_config(cfg)
    return folder


def test_a_recorded_run_is_reusable_and_loads(tmp_path):
    folder = recorded(tmp_path)
    assert folder.reusable("h1") == (True, None)
    assert folder.reusable("other hash") == (False, None)  # another configuration: not a problem
    run = folder.load()
    assert run is not None and run.model == "fus2net" and run.folder.path == folder.path
    assert json.loads((folder / "config.json").read_text())["timings"]["stages"]["final"][
        "status"] == "done"  # the enums are written as their plain strings


def test_missing_weights_stop_reuse_but_not_reading(tmp_path):
    folder = recorded(tmp_path)
    (folder / "model.safetensors").unlink()  # results sets commit no weights
    assert folder.reusable("h1") == (False, "model.safetensors is missing")
    assert folder.load() is not None


def test_a_changed_output_stops_both(tmp_path):
    folder = recorded(tmp_path)
    (folder / "metrics.json").write_text("{}")
    ok, problem = folder.reusable("h1")
    assert not ok and problem == "metrics.json does not match its recorded checksum"
    with pytest.raises(InvalidRun, match="metrics.json does not match its checksum in config.json"):
        folder.load()


def test_a_broken_stage_stops_reuse_only(tmp_path):
    folder = recorded(tmp_path)
    (folder.stage("final").path / "metrics.json").write_text("{}")
    ok, problem = folder.reusable("h1")
    assert not ok and problem.startswith("stage final's files are missing or do not match")
    assert folder.load() is not None  # readers never need the stage files


def test_an_unfinished_run_is_not_loaded_and_says_why(tmp_path):
    folder = recorded(tmp_path)
    cfg = folder.read_config()
    folder.write_config({**cfg, "status": RunStatus.RUNNING})
    assert folder.load() is None and "status 'running'" in folder.unloaded_reason()


def test_timed_records_each_add_on_step_and_a_failed_step_not_at_all(tmp_path):
    folder = RunFolder(write_fixture_run(tmp_path, "fus2net", 0.5, 1))
    with folder.timed("explain/gradcam"):
        pass
    with pytest.raises(RuntimeError), folder.timed("reliance"):
        raise RuntimeError("stopped")
    record = folder.compute_record()
    assert list(record) == ["explain/gradcam"]
    assert record["explain/gradcam"]["seconds"] >= 0 and record["explain/gradcam"]["threads"] >= 1
    first = record["explain/gradcam"]["finished"]
    with folder.timed("explain/gradcam"):  # done again: replaces its entry
        pass
    assert list(folder.compute_record()) == ["explain/gradcam"]
    assert folder.compute_record()["explain/gradcam"]["finished"] >= first
