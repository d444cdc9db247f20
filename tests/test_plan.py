"""The suite's typed plan (bench.jobs.plan, bench.engine.experiments): jobs are RunOptions built from
one base, variants are overrides, and the command line names the flag of a bad setting."""

import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from bench.engine.experiments import (
    BASE,
    EXPERIMENTS,
    Variant,
    experiment_variants,
    fus2net_variant_key,
)
from bench.engine.spec import RecordedSettings, RunOptions
from bench.jobs.plan import Job, JobStatus, suite_jobs
from tests.helpers import TINY, call_main


def test_the_comparison_runs_every_seed_before_the_experiments_and_only_it_scores_external_sets():
    base = RunOptions(profile="smoke", device="cpu", out=Path("runs"), epochs=1)
    jobs = suite_jobs(base, ["zeimarani_cnn", "fus2net"], seeds=[0, 1], experiment_seeds=[2],
                      variants=experiment_variants(), external=["synthetic:B"],
                      experiment_folds=4)
    assert [j.label for j in jobs[:4]] == ["fus2net seed 0", "zeimarani_cnn seed 0",
                                           "fus2net seed 1", "zeimarani_cnn seed 1"]
    assert all(j.compared and j.options.external == ("synthetic:B",) for j in jobs[:4])
    variants = jobs[4:]
    assert len(variants) == 7 and not any(j.compared or j.options.external for j in variants)
    assert {j.options.seed for j in variants} == {2}
    # Fus2Net runs use the experiments' CV folds; the other models keep the base's
    assert {j.options.folds for j in jobs if j.options.model == "fus2net"} == {4}
    assert jobs[1].options == replace(base, model="zeimarani_cnn", external=("synthetic:B",))
    sgd = next(j for j in variants if j.label == "fus2net [SGD] seed 2")
    assert sgd.options == replace(base, model="fus2net", folds=4, optimizer="sgd", seed=2)
    assert pickle.loads(pickle.dumps(sgd)) == sgd  # what an executor sends to its worker


def test_a_variant_key_is_the_key_its_runs_record():
    for exp in EXPERIMENTS.values():
        for v in exp["variants"]:
            o = v.apply(RunOptions())
            kwargs = {k: getattr(o, k) for k in ("l2", "dropout") if getattr(o, k) is not None}
            settings = RecordedSettings.from_dict({
                "model": "fus2net", "channels": o.channels, "optimizer": o.optimizer or "adam",
                "augment": o.augment, "model_kwargs": kwargs})
            assert fus2net_variant_key(settings) == v.key(), v.label
    assert len({v.key() for v in experiment_variants()}) == 8
    assert experiment_variants()[0] is BASE
    with pytest.raises(TypeError, match="not RunOptions fields"):
        Variant("typo", {"optimiser": "sgd"})


def test_job_status_is_written_as_its_word():
    assert str(JobStatus.OK) == "ok" and f"{JobStatus.FAILED}" == "FAILED"
    assert JobStatus("ok") is JobStatus.OK
    assert Job("a", RunOptions()).compared


def test_a_bad_executor_setting_is_said_with_its_flag(tiny_synthetic, tmp_path, capsys):
    import torch

    from bench.cli.suite import main

    if torch.cuda.is_available():
        pytest.skip("GPUs are visible here")
    code, _, err = call_main(capsys, main, "--data", str(tiny_synthetic), *TINY,
                             "--models", "zeimarani_cnn", "--out", str(tmp_path),
                             "--executor", "local", "--gpus-per-job", "1")
    assert code == 2 and "--gpus-per-job: 1 GPUs per job, but only 0 GPU(s)" in err
    assert not (tmp_path / "runs").exists()  # said before any run
