"""Helpers shared by the tests (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bench.cli.run import main
from bench.stats.metrics import binary_metrics

BUSI = Path(__file__).resolve().parents[2] / "shared" / "data" / "BUSI"
# the smallest run that still goes through every stage: 64 px, 1 epoch, 2 folds of 16 images
SMOKE = ["--profile", "smoke", "--no-progress", "--test-per-class", "20"]
# with the tiny phantom (tests/conftest.py tiny_synthetic): options checked before any training
TINY = ["--profile", "smoke", "--no-progress", "--test-per-class", "4"]
# the 2-model smoke suite the executor tests run (tests/test_cluster.py, tests/test_slurm.py)
EXECUTOR_SUITE = ["--profile", "smoke", "--models", "fus2net,zeimarani_cnn", "--no-experiments",
                  "--no-progress", "--test-per-class", "20"]


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (80, 64), mode: str = "L") -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def call_main(capsys, entry, *args: str) -> tuple[int, str, str]:
    """A command's ``main`` as the command line sees it: exit code, stdout and stderr."""
    capsys.readouterr()
    try:
        code = entry(list(args))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """``bench.cli.run.main`` as the command line sees it."""
    return call_main(capsys, main, *args)


def run_cli(*args: str, module: str = "bench.run") -> subprocess.CompletedProcess:
    """A ``python -m`` command in a fresh process (for exit codes and tracebacks as a shell sees)."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=300)


def write_fixture_run(root: Path, model: str, quality: float, rng_seed: int,
                      constant: bool = False, **settings) -> Path:
    """A finished run folder as bench.engine.runner writes it, with predictions of a given quality."""
    rng = np.random.default_rng(rng_seed)
    seed = rng_seed
    folder = root / f"{model}-fixture-{rng_seed}-{settings.get('seed', 0)}"
    folder.mkdir(parents=True)
    y = np.array([0] * 50 + [1] * 50)
    p = np.clip(0.5 + quality * (y - 0.5) + rng.normal(0, 0.25, 100), 0.001, 0.999)
    if constant:
        p = np.full(100, 0.62)
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
              "model_config": {"pretrained": "none" if model.startswith(("fus2net", "zeim"))
                               else "imagenet"}, "command": "python -m bench.run",
              "profile": {"name": "cpu", "description": "fixture"}, "finished": f"2026-11-26T0{seed}",
              "model_stats": {"params": 1_000_000 + seed, "gflops": 1.5}, "git_revision": "abc",
              "device": {"device": "cpu", "cpu": "x86_64"}, "versions": {"torch": "2.x"},
              "data": {"name": "phantom", "split_source": "generated"}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder
