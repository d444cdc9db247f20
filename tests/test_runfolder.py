"""``bench.engine.runfolder``: one rule set for recorded checksums, for reuse and for reading."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.core.errors import BenchError
from bench.engine.runfolder import PRED_COLUMNS, InvalidRun, RunFolder, RunStatus
from bench.engine.spec import RunSpec
from bench.engine.stages import StageStatus
from tests.helpers import write_fixture_run


def recorded(tmp_path, with_weights: bool = True) -> RunFolder:
    """A fixture run whose outputs (and one stage) are recorded as a finished run records them."""
    folder = RunFolder(write_fixture_run(tmp_path / "runs", "fus2net", 0.6, 1))
    if with_weights:
        (folder.path / "model.safetensors").write_bytes(b"weights")
    stage = folder.stage("final")
    preds = pd.read_csv(folder.path / "predictions.csv")
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
    assert json.loads((folder.path / "config.json").read_text())["timings"]["stages"]["final"][
        "status"] == "done"  # the enums are written as their plain strings


def test_missing_weights_stop_reuse_but_not_reading(tmp_path):
    folder = recorded(tmp_path)
    (folder.path / "model.safetensors").unlink()  # results sets commit no weights
    assert folder.reusable("h1") == (False, "model.safetensors is missing")
    assert folder.load() is not None


def test_a_changed_output_stops_both(tmp_path):
    folder = recorded(tmp_path)
    (folder.path / "metrics.json").write_text("{}")
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


def test_a_loaded_run_offers_its_record_typed(tmp_path):
    folder = recorded(tmp_path)
    run = folder.load()
    assert run.record.status == "complete" and run.record.profile_name == "cpu"
    assert run.record.settings.model == "fus2net" and run.seed == 0
    assert run.record.settings.img_size == 96 and run.record.pretrained == "none"
    assert run.record.device["device"] == "cpu" and run.record.weights == "random"
    assert list(folder.read_predictions().columns) == PRED_COLUMNS
    assert run.weights == folder.path / "model.safetensors" and run.weights.is_file()
    with pytest.raises(BenchError, match="settings lack"):  # the fixture records no full spec
        _ = run.spec


def test_the_add_ons_are_read_through_the_folder_and_absent_ones_are_none(tmp_path):
    folder = recorded(tmp_path)
    run = folder.load()
    assert run.explanations() is None and run.explanation_arrays("test/ids") is None
    assert folder.illustration_params() is None and folder.illustration_arrays() == {}
    assert folder.read_split_report() is None and folder.stage("fold_0").record() is None
    explained = folder.explain("gradcam")
    explained.path.mkdir(parents=True)
    explained.write({"method": "gradcam"}, {
        "cam_metrics.csv": lambda p: pd.DataFrame({"id": ["007"], "set": ["test"]}).to_csv(
            p, index=False),
        "maps.npz": lambda p: np.savez(p, **{"test/ids": np.array(["007"])})},
        checksummed=("cam_metrics.csv",))
    assert run.explanations().id.tolist() == ["007"]  # ids stay text
    assert run.explanation_arrays("test/ids")["test/ids"].tolist() == ["007"]
    assert folder.stage("final").record()["config_hash"] == "h1"
    names = [n for n, _ in folder.record_files()]
    assert names[:3] == ["config.json", "metrics.json", "predictions.csv"]
    assert "explain/gradcam/cam_metrics.csv" in names and "explain/gradcam/maps.npz" not in names


def test_a_stacked_run_s_spec_reads_back_stacked_with_its_hash(tmp_path):
    # score, explain and reliance rebuild a run from Run.spec: the engine's key is kept
    spec = RunSpec(model="fus2net", model_kwargs={"in_chans": 3}, weights="random", img_size=96,
                   batch_size=16, epochs=8, folds=3, train_limit=None, val_limit=None,
                   optimizer="adam", lr=0.001, augment=True, channels=3, seed=0,
                   data_kind="synthetic", manifest_sha256="ab" * 32, skip_bad_images=False,
                   code_version="0123456789ab", data_sha256="cd" * 32, stacked=True)
    saved = {k: v for k, v in spec.to_dict().items() if k != "model"}
    run = RunFolder(write_fixture_run(tmp_path, "fus2net", 0.6, 1, **saved, device="cpu",
                                      concurrent=4)).load()
    assert run.spec == spec and run.spec.stacked and run.spec.hash() == spec.hash()
    assert run.record.settings.engine == "stacked" and run.record.settings.concurrent == 4


def test_the_illustrated_transforms_are_read_without_the_arrays_a_clean_clone_lacks(tmp_path):
    # results sets commit illustrations.csv and illustrations_ultrasound.csv, never the .npz
    folder = recorded(tmp_path)
    params = pd.DataFrame({"image": ["benign"], "id": ["007"], "view": [1]})
    names = ["gain +3 dB", "border 8%"]
    folder.write_illustrations({"ultrasound_names": np.array(names)}, params)
    assert folder.illustration_transforms() == names
    folder.illustrations.unlink()  # what a clone of the committed set has
    assert folder.illustration_arrays() == {} and folder.illustration_transforms() == names
    assert "illustrations_ultrasound.csv" in [n for n, _ in folder.record_files()]
    folder.write_illustrations({}, params)  # illustrated again without ultrasound views
    assert folder.illustration_transforms() == []
    assert not (folder.path / "illustrations_ultrasound.csv").exists()
