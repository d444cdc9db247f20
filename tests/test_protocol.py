"""``bench.engine.protocol``: the stage plan (K CV folds on the training set, then the final fit
scored once on the test set), the reduced profiles' caps, resume and the run's summary
(docs/protocol.md, "Held-out test and cross-validation")."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bench.engine import protocol
from bench.engine.protocol import limit_stratified, run_protocol, stage_plan, summarize
from bench.engine.runfolder import RunFolder
from bench.engine.spec import Execution, RunSpec
from bench.engine.stages import StageContext, StageResult, write_done, write_failed
from bench.stats.metrics import METRIC_NAMES

# 20 training rows in manifest folds 0..9 (a 10-fold manifest), 6 test rows, 2 excluded
ROWS = pd.DataFrame({
    "split": ["train"] * 20 + ["test"] * 6 + ["excluded"] * 2,
    "fold": [k % 10 for k in range(20)] + [-1] * 8,
    "label": [k % 2 for k in range(28)],
})
TRAIN, TEST = set(range(20)), set(range(20, 26))


def test_folds_partition_the_training_set_and_the_final_fit_is_scored_on_the_test_set():
    plan = stage_plan(ROWS, 5)
    assert [name for name, _, _ in plan] == ["fold_0", "fold_1", "fold_2", "fold_3", "fold_4",
                                             "final"]
    held_out = []
    for name, train, val in plan[:-1]:
        k = int(name.split("_")[1])
        assert set(train) | set(val) == TRAIN and not set(train) & set(val)
        assert set(ROWS.fold[val] % 5) == {k}  # manifest folds k and k + 5 of a 10-fold split
        held_out += list(val)
    assert sorted(held_out) == sorted(TRAIN)  # every training image validated exactly once
    _, train, test = plan[-1]
    assert set(train) == TRAIN and set(test) == TEST  # the test set only here, excluded never


def test_without_cross_validation_the_plan_is_the_final_fit_alone():
    ((name, train, test),) = stage_plan(ROWS, 0)
    assert name == "final" and set(train) == TRAIN and set(test) == TEST


def test_a_cap_keeps_the_class_ratio_and_depends_only_on_the_seed():
    labels = np.array([0] * 30 + [1] * 10)
    positions = np.arange(40)
    assert limit_stratified(positions, labels, None, np.random.default_rng(0)) is positions
    assert limit_stratified(positions, labels, 40, np.random.default_rng(0)) is positions
    kept = limit_stratified(positions, labels, 8, np.random.default_rng(3))
    assert len(kept) == 8 and list(kept) == sorted(kept) and set(kept) <= set(positions)
    assert (labels[kept] == 1).sum() == 2  # 25 % malignant, as before the cap
    again = limit_stratified(positions, labels, 8, np.random.default_rng(3))
    assert np.array_equal(kept, again)
    rare = np.array([0] * 39 + [1])
    assert rare[limit_stratified(positions, rare, 4, np.random.default_rng(0))].sum() == 1


def _result(name: str, status: str = "done", auc: float = 0.8) -> StageResult:
    if status == "failed":
        return StageResult(name, "failed", None, None, 1.0, f"{name}: training stopped")
    metrics = {k: auc for k in METRIC_NAMES}
    preds = pd.DataFrame({"id": [name], "path": ["p"], "label": [1], "prob_malignant": [0.7],
                          "split": ["test" if name == "final" else "val"],
                          "fold": [-1 if name == "final" else int(name[-1])]})
    return StageResult(name, status, preds, metrics, 1.0)


def test_the_summary_averages_the_folds_that_trained_and_counts_the_failed_ones():
    preds, cv, metrics = summarize([_result("fold_0", auc=0.7), _result("fold_1", "failed"),
                                    _result("fold_2", "reused", auc=0.9), _result("final")])
    assert list(cv.fold) == [0, 1, 2] and list(cv.status) == ["ok", "failed", "ok"]
    assert np.isnan(cv.auc[1]) and cv.message[1] == "fold_1: training stopped"
    assert metrics["cv"]["folds"] == 3 and metrics["cv"]["failed_folds"] == 1
    assert metrics["cv"]["mean"]["auc"] == pytest.approx(0.8)
    assert metrics["cv"]["sd"]["auc"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert metrics["test_status"] == "ok" and metrics["test"]["auc"] == 0.8
    assert list(preds.id) == ["fold_0", "fold_2", "final"]


def test_a_failed_final_fit_is_a_failed_test_not_a_number():
    _, cv, metrics = summarize([_result("final", "failed")])
    assert cv.empty and "cv" not in metrics
    assert metrics["test"] is None and metrics["test_status"] == "failed"
    assert metrics["test_message"] == "final: training stopped"


class _Cache:
    """What planning and resume read of an image cache: its manifest rows."""

    rows = ROWS


def test_a_rerun_reuses_finished_stages_and_trains_only_the_others(tmp_path, monkeypatch):
    """Resume from files on disk: intact stages of this run's hash are read back, never trained;
    a failed or foreign stage is trained again (here: a stand-in that records the call)."""
    spec = RunSpec(model="fus2net", model_kwargs={}, weights="random", img_size=64,
                   batch_size=16, epochs=1, folds=2, train_limit=None, val_limit=None,
                   optimizer="adam", lr=None, augment=False, channels=3, seed=0,
                   data_kind="synthetic", manifest_sha256="", skip_bad_images=False,
                   code_version="", data_sha256="")
    ex = Execution(device="cpu", progress=False)
    ctx = StageContext(spec, ex, _Cache(), RunFolder(tmp_path))
    plan = {name: (train, val) for name, train, val in stage_plan(ROWS, 2)}
    for name in ("fold_0", "final"):
        val = plan[name][1]
        write_done(name, ctx, ROWS.iloc[val].assign(id="i", path="p"), np.full(len(val), 0.5),
                   None, {}, 1.0)
    write_failed("fold_1", ctx, "fold_1: training stopped", 1, 1, 0.0)
    trained = []

    def prepare_stage(name, train_pos, eval_pos, *args, **kwargs):
        trained.append((name, set(train_pos), set(eval_pos)))
        return name

    def train_stage(job, *args, **kwargs):
        return StageResult(job, "done", None, None, 0.0)

    monkeypatch.setattr(protocol, "prepare_stage", prepare_stage)
    monkeypatch.setattr(protocol, "train_stage", train_stage)
    results = run_protocol(ctx)
    assert [(r.name, r.status) for r in results] == [("fold_0", "reused"), ("fold_1", "done"),
                                                     ("final", "reused")]
    assert trained == [("fold_1", set(plan["fold_1"][0]), set(plan["fold_1"][1]))]
    trained.clear()
    other = dataclasses.replace(spec, seed=1)  # other settings: another run hash, same folder
    results = run_protocol(StageContext(other, ex, _Cache(), RunFolder(tmp_path)))
    assert [name for name, _, _ in trained] == ["fold_0", "fold_1", "final"]
