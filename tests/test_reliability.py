"""Issue 6: messy inputs, training faults, interrupted runs and leakage guards."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import bench.engine.protocol as protocol
from bench.cli.run import main
from bench.data.cache import build_cache
from bench.data.datasets import load_index
from bench.data.manifest import SplitConfig, make_split
from bench.engine.train import TrainingDiverged, TrainOutcome, TrainSettings, predict, train_model
from models import create_model, get_model_config
from tests.helpers import SMOKE, TINY, run_main, write_image


@pytest.mark.slow
def test_mask_without_image_and_non_images_are_ignored_and_reported(synthetic_copy, tmp_path):
    write_image(synthetic_copy / "benign" / "orphan_mask.png")
    (synthetic_copy / "malignant" / "Thumbs.db").write_bytes(b"\0\1")
    index = load_index(synthetic_copy)
    assert ("benign/orphan_mask.png", "mask without image") in index.ignored
    assert ("malignant/Thumbs.db", "not an image file") in index.ignored
    _, report = make_split(index, SplitConfig(test_per_class=20, folds=2))
    assert len(report["ignored_files"]) == 2


@pytest.mark.slow
def test_corrupt_image_stops_the_run_with_its_name(synthetic_copy, tmp_path, capsys):
    bad = synthetic_copy / "benign" / "syn_benign_0003.png"
    bad.write_bytes(bad.read_bytes()[:200])
    code, _, err = run_main(capsys, "--data", str(synthetic_copy), "--out", str(tmp_path), *SMOKE)
    assert code == 2
    assert "syn_benign_0003.png: cannot decode image" in err
    assert "--skip-bad-images" in err and "Traceback" not in err


@pytest.mark.slow
def test_skip_bad_images_excludes_and_lists_them(synthetic_copy, tmp_path):
    (synthetic_copy / "benign" / "syn_benign_0003.png").write_bytes(b"")
    write_image(synthetic_copy / "malignant" / "tiny.png", size=(16, 16))
    assert main(["--data", str(synthetic_copy), "--out", str(tmp_path / "out"), *SMOKE,
                 "--skip-bad-images"]) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    report = json.loads((run_dir / "split_report.json").read_text())
    skipped = {e["path"] for e in report["skipped_bad_images"]}
    assert skipped == {"benign/syn_benign_0003.png", "malignant/tiny.png"}
    assert not set(pd.read_csv(run_dir / "split.csv").path) & skipped


def test_unwritable_output_folder_is_a_clear_error(tiny_synthetic, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_main(capsys, "--data", str(tiny_synthetic), "--out", str(blocker / "runs"),
                            *TINY)
    assert code == 2 and "cannot write there" in err


@pytest.mark.slow
def test_leaky_manifest_given_with_split_is_refused(small_synthetic, tmp_path, capsys):
    manifest, _ = make_split(load_index(small_synthetic), SplitConfig(test_per_class=20, folds=2))
    test_group = manifest[manifest.split == "test"].group.iloc[0]
    manifest.loc[manifest.index[manifest.split == "train"][0], "group"] = test_group
    path = tmp_path / "leaky.csv"
    manifest.to_csv(path, index=False)
    code, _, err = run_main(capsys, "--data", str(small_synthetic), "--split", str(path),
                              "--out", str(tmp_path / "o"), *SMOKE)
    assert code == 2 and "leakage" in err


def test_nan_loss_stops_training_and_says_where(tiny_synthetic):
    index = load_index(tiny_synthetic)
    rows = pd.DataFrame({"path": [s.path for s in index.samples[:8]],
                         "label": [s.label for s in index.samples[:8]]})
    cache, _ = build_cache(index.root, rows, 48, 3)
    model = create_model("fus2net", l2=float("nan"))
    outcome = train_model(model, get_model_config("fus2net"), cache, np.arange(8),
                          np.zeros(8, int), TrainSettings(epochs=1, batch_size=4, device="cpu"), seed=0,
                          progress=False)
    assert isinstance(outcome.diverged, TrainingDiverged) and outcome.history == []
    assert (outcome.diverged.epoch, outcome.diverged.step) == (1, 1)


@pytest.mark.slow
def test_diverged_fold_is_marked_failed_and_other_stages_go_on(small_synthetic, tmp_path,
                                                              monkeypatch):
    real = protocol.train_model

    def flaky(model, cfg, cache, idx, flips, settings, seed, desc, progress):
        if desc.endswith("fold_1"):
            return TrainOutcome(diverged=TrainingDiverged(1, 3, float("nan")))
        return real(model, cfg, cache, idx, flips, settings, seed=seed, desc=desc, progress=progress)

    monkeypatch.setattr(protocol, "train_model", flaky)
    assert main(["--data", str(small_synthetic), "--out", str(tmp_path), *SMOKE]) == 0
    (run_dir,) = tmp_path.iterdir()
    cv = pd.read_csv(run_dir / "cv_metrics.csv")
    assert list(cv.status) == ["ok", "failed"]
    assert "epoch 1, step 3" in cv.message.iloc[1] and np.isnan(cv.auc.iloc[1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["cv"]["failed_folds"] == 1 and metrics["test_status"] == "ok"
    assert (run_dir / "stages" / "fold_1" / "failed.json").is_file()


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_run(small_synthetic, tmp_path):
    args = ["--data", str(small_synthetic), *SMOKE, "--folds", "3"]
    cmd = [sys.executable, "-m", "bench.run", *args, "--out", str(tmp_path / "a")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list((tmp_path / "a").glob("*/stages/fold_0/done.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (run_dir,) = (tmp_path / "a").iterdir()
    assert not (run_dir / "predictions.csv").exists(), "run finished before it could be killed"
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    stages = json.loads((run_dir / "config.json").read_text())["timings"]["stages"]
    assert stages["fold_0"]["status"] == "reused"
    assert stages["fold_2"]["status"] == "done" and stages["final"]["status"] == "done"
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    (ref,) = (tmp_path / "b").iterdir()
    assert (ref / "predictions.csv").read_bytes() == (run_dir / "predictions.csv").read_bytes()


@pytest.mark.slow
def test_tampered_stage_is_retrained_not_reused(small_synthetic, tmp_path):
    assert main(["--data", str(small_synthetic), "--out", str(tmp_path), *SMOKE]) == 0
    (run_dir,) = tmp_path.iterdir()
    preds = run_dir / "stages" / "fold_0" / "predictions.csv"
    preds.write_text(preds.read_text().replace("0.", "0.9", 1))
    (run_dir / "metrics.json").unlink()
    assert main(["--data", str(small_synthetic), "--out", str(tmp_path), *SMOKE]) == 0
    stages = json.loads((run_dir / "config.json").read_text())["timings"]["stages"]
    assert stages["fold_0"]["status"] == "done" and stages["fold_1"]["status"] == "reused"


@pytest.mark.slow
def test_checkpoints_are_safetensors_and_reload(small_synthetic, tmp_path):
    assert main(["--data", str(small_synthetic), "--out", str(tmp_path), *SMOKE, "--folds", "0"]) == 0
    (run_dir,) = tmp_path.iterdir()
    saved = load_file(str(run_dir / "model.safetensors"))
    model = protocol.load_weights(create_model("fus2net"), run_dir / "model.safetensors")
    state = model.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    # the reloaded model reproduces the run's own test predictions
    preds = pd.read_csv(run_dir / "predictions.csv")
    test = preds[preds.split == "test"].reset_index(drop=True)
    cfg = json.loads((run_dir / "config.json").read_text())
    index = load_index(small_synthetic)
    cache, _ = build_cache(index.root, test, cfg["settings"]["img_size"], 3)
    again = predict(model, get_model_config("fus2net"), cache, np.arange(len(test)), device="cpu")
    np.testing.assert_allclose(again, test.prob_malignant, rtol=1e-5, atol=1e-6)
