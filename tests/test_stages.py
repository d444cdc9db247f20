"""``bench.engine.stages`` and ``bench.engine.runfolder``: a stage's files on disk, the check that
lets a rerun reuse them, and the check of a finished run's files (docs/protocol.md, "Runs": stages
and resume)."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from bench.core.provenance import file_sha256
from bench.engine.runfolder import RunFolder
from bench.engine.spec import Execution, RunSpec
from bench.engine.stages import (
    PRED_COLUMNS,
    StageContext,
    fold_number,
    reuse_stage,
    write_done,
    write_failed,
)

SPEC = RunSpec(model="fus2net", model_kwargs={}, weights="random", img_size=64, batch_size=16,
               epochs=1, folds=2, train_limit=None, val_limit=None, optimizer="adam", lr=None,
               augment=False, channels=3, seed=0, data_kind="synthetic", manifest_sha256="",
               skip_bad_images=False, code_version="", data_sha256="")
OTHER_HASH = dataclasses.replace(SPEC, seed=1).hash()  # another configuration's run
ROWS = pd.DataFrame({"id": ["a", "b", "c", "d"], "path": [f"x/{i}.png" for i in "abcd"],
                     "label": [0, 1, 0, 1], "split": "train", "fold": [0, 1, 2, 3]})
PROBS = np.array([0.1, 0.8, 0.4, 0.6])


class _Cache:
    """What the stage files read of an image cache: its manifest rows (no images)."""

    rows = ROWS


def context(tmp_path) -> StageContext:
    return StageContext(SPEC, Execution(device="cpu", progress=False), _Cache(),
                        RunFolder(tmp_path))


def done_stage(ctx: StageContext, name: str = "fold_1", model: torch.nn.Module | None = None):
    return write_done(name, ctx, ROWS, PROBS, model, {"train_images": 12}, 1.234)


def test_the_context_s_run_hash_is_the_spec_s_hash(tmp_path):
    ctx = context(tmp_path)
    assert ctx.run_hash == SPEC.hash() != OTHER_HASH
    assert ctx.stage("fold_1").path == tmp_path / "stages" / "fold_1"


def test_stage_names_map_to_the_fold_column():
    assert [fold_number(s) for s in ("fold_0", "fold_7", "fold_12", "final")] == [0, 7, 12, -1]


def test_a_finished_fold_writes_its_predictions_metrics_and_a_done_record_last(tmp_path):
    ctx = context(tmp_path)
    result = done_stage(ctx)
    where = ctx.stage("fold_1").path
    assert result.status == "done" and result.name == "fold_1" and result.seconds == 1.234
    preds = pd.read_csv(where / "predictions.csv", dtype={"id": str})
    assert list(preds.columns) == PRED_COLUMNS
    assert set(preds.split) == {"val"} and set(preds.fold) == {1}
    assert preds.prob_malignant.tolist() == PROBS.tolist()
    metrics = json.loads((where / "metrics.json").read_text())
    assert metrics == pytest.approx(result.metrics) and metrics["n"] == 4 and metrics["auc"] == 1
    done = json.loads((where / "done.json").read_text())
    assert (done["config_hash"], done["stage"], done["train_images"]) == \
        (ctx.run_hash, "fold_1", 12)
    assert done["files"] == {n: file_sha256(where / n) for n in ("predictions.csv",
                                                                 "metrics.json")}
    assert not (where / "model.safetensors").exists()  # fold weights only when asked for
    assert not (tmp_path / "predictions.csv").exists()  # the run's own files are the runner's


def test_the_final_stage_is_the_test_set_and_keeps_its_weights(tmp_path):
    ctx = context(tmp_path)
    model = torch.nn.Linear(3, 2)
    done_stage(ctx, "final", model)
    where = ctx.stage("final").path
    preds = pd.read_csv(where / "predictions.csv")
    assert set(preds.split) == {"test"} and set(preds.fold) == {-1}
    saved = load_file(str(where / "model.safetensors"))
    assert torch.equal(saved["weight"], model.weight.detach())
    assert "model.safetensors" in json.loads((where / "done.json").read_text())["files"]


def test_a_stage_is_reused_only_with_its_run_s_hash_and_intact_files(tmp_path):
    ctx = context(tmp_path)
    stage = ctx.stage("fold_1")
    assert not stage.valid(ctx.run_hash)  # nothing there yet
    done_stage(ctx)
    assert stage.valid(ctx.run_hash)
    assert not stage.valid(OTHER_HASH)  # another configuration's stage
    path = stage.path / "predictions.csv"
    good = path.read_bytes()
    path.write_bytes(good[:-3])  # truncated
    assert not stage.valid(ctx.run_hash)
    path.write_bytes(good)
    (stage.path / "metrics.json").unlink()
    assert not stage.valid(ctx.run_hash)
    done_stage(ctx)
    (stage.path / "done.json").write_text("{not json")
    assert not stage.valid(ctx.run_hash)


def test_a_reused_stage_gives_back_what_was_written(tmp_path):
    ctx = context(tmp_path)
    written = done_stage(ctx)
    again = reuse_stage("fold_1", ctx)
    assert again.status == "reused" and again.seconds == 0
    pd.testing.assert_frame_equal(again.predictions, written.predictions, check_dtype=False)
    assert again.metrics == pytest.approx(written.metrics)


def test_a_failed_stage_records_why_and_a_later_success_replaces_the_record(tmp_path):
    ctx = context(tmp_path)
    stage = ctx.stage("fold_0")
    result = write_failed("fold_0", ctx, "fold_0: training stopped, loss nan", 2, 7, t0=0.0)
    assert result.status == "failed" and result.predictions is None and "loss nan" in result.message
    failed = json.loads((stage.path / "failed.json").read_text())
    assert failed == {"config_hash": ctx.run_hash, "stage": "fold_0", "epoch": 2, "step": 7,
                      "message": "fold_0: training stopped, loss nan"}
    assert not stage.valid(ctx.run_hash)  # a failed stage is trained again on a rerun
    done_stage(ctx, "fold_0")
    assert not (stage.path / "failed.json").exists() and stage.valid(ctx.run_hash)


def test_a_finished_run_s_problem_is_named_file_by_file(tmp_path):
    ctx = context(tmp_path / "run")
    run = ctx.folder
    done_stage(ctx, "fold_0")
    (run.path / "metrics.json").write_text("{}")
    cfg = {"status": "complete", "config_hash": ctx.run_hash,
           "settings": {"model": "fus2net", "seed": 0},  # a run's record (runfolder.config_problem)
           "outputs": {"metrics.json": file_sha256(run.path / "metrics.json")},
           "timings": {"stages": {"fold_0": {"status": "done"}}}}
    run.write_config(cfg)
    assert run.problem(cfg, ctx.run_hash) is None and run.reusable(ctx.run_hash) == (True, None)
    assert run.problem(cfg, OTHER_HASH) == ("stages/fold_0", "does not match its checksums")
    run.write_config({**cfg, "config_hash": OTHER_HASH})
    assert run.reusable(OTHER_HASH) == \
        (False, "stage fold_0's files are missing or do not match their checksums")
    run.write_config(cfg)
    (run.path / "metrics.json").write_text('{"changed": 1}')
    assert run.problem(cfg, ctx.run_hash) == ("metrics.json", "does not match its checksum")
    assert run.reusable(ctx.run_hash) == \
        (False, "metrics.json does not match its recorded checksum")
    (run.path / "metrics.json").unlink()
    assert run.problem(cfg, ctx.run_hash) == ("metrics.json", "is missing")
    assert run.reusable(ctx.run_hash) == (False, "metrics.json is missing")
