"""The suite's grid on submitit executors (bench.cluster): concurrency, retries, bad input, SLURM."""

import threading
import time

import pandas as pd
import pytest

pytest.importorskip("submitit")

from bench.cluster import ClusterConfig, run_grid, slurm_script  # noqa: E402
from bench.suite import main as suite_main  # noqa: E402
from tests.helpers import SMOKE  # noqa: E402

pytestmark = pytest.mark.slow  # starts worker processes that train


def _grid(data, out, models=("fus2net", "zeimarani_cnn"), extra=()):
    return [(m, ["--model", m, "--data", str(data), "--out", str(out), *SMOKE, *extra])
            for m in models]


def test_two_jobs_run_at_once_and_the_report_equals_the_inline_suites(small_synthetic, tmp_path):
    args = ["--data", str(small_synthetic), "--profile", "smoke", "--models",
            "fus2net,zeimarani_cnn", "--no-experiments", "--no-progress", "--test-per-class", "20"]
    assert suite_main([*args, "--out", str(tmp_path / "inline")]) == 0
    assert suite_main([*args, "--out", str(tmp_path / "local"), "--executor", "local",
                       "--jobs", "2"]) == 0
    for name in ("table3_comparison.csv", "table3_per_seed.csv", "roc_points.csv"):
        assert (tmp_path / "inline" / "tables" / name).read_bytes() == \
            (tmp_path / "local" / "tables" / name).read_bytes(), name
    outcomes = run_grid(_grid(small_synthetic, tmp_path / "again"), ClusterConfig(
        executor="local", jobs=2), tmp_path / "logs", progress=False)
    (a, b) = outcomes
    assert a.status == b.status == "ok"
    assert a.started < b.ended and b.started < a.ended  # the two ran at the same time


@pytest.mark.xfail(strict=False, reason="in the full suite the cancel never reached the job "
                   "(2026-11-28, three runs; passes alone): under investigation, see the README")
def test_a_job_killed_mid_run_is_resubmitted_and_resumes(small_synthetic, tmp_path):
    out = tmp_path / "runs"
    # enough epochs that the rest of the run outlasts the kill (3 and 10 lost the race in the
    # full suite: a smoke stage of 10 epochs takes 0.7 s)
    jobs = _grid(small_synthetic, out, models=("fus2net",), extra=("--epochs", "60"))
    submitted = []

    def kill_after_first_stage():
        while not submitted or not list(out.glob("*/stages/fold_0/done.json")):
            time.sleep(0.05)
        submitted[0].cancel(check=False)  # as a pre-emption would

    killer = threading.Thread(target=kill_after_first_stage, daemon=True)
    killer.start()
    (outcome,) = run_grid(jobs, ClusterConfig(executor="local", retries=2), tmp_path / "logs",
                          progress=False, observe=submitted.append)
    assert outcome.status == "ok" and outcome.attempts == 2
    (run_dir,) = out.iterdir()
    cfg = pd.read_json(run_dir / "config.json", typ="series")
    assert cfg["timings"]["stages"]["fold_0"]["status"] == "reused"


def test_a_bad_input_job_fails_once_with_its_message(small_synthetic, tmp_path):
    jobs = _grid(small_synthetic, tmp_path / "runs", models=("fus2nett",))
    (outcome,) = run_grid(jobs, ClusterConfig(executor="local", retries=2), tmp_path / "logs",
                          progress=False)
    assert outcome.status == "FAILED" and outcome.attempts == 1
    assert "did you mean fus2net" in outcome.message and outcome.log


def test_debug_executor_runs_in_process(small_synthetic, tmp_path):
    (outcome,) = run_grid(_grid(small_synthetic, tmp_path / "runs", models=("zeimarani_cnn",)),
                          ClusterConfig(executor="debug"), tmp_path / "logs", progress=False)
    assert outcome.status == "ok" and outcome.run_dir.is_dir()


def test_the_slurm_script_carries_partition_gpus_time_and_extra_parameters(tmp_path):
    text = slurm_script(ClusterConfig(executor="slurm", partition="gpu", gpus_per_job=1,
                                      cpus_per_job=8, mem_gb=64, timeout_min=120,
                                      slurm_extra=(("qos", "high"), ("account", "lab"))),
                        tmp_path / "logs")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=120",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --qos=high",
                 "#SBATCH --account=lab"):
        assert line in text, line


def test_a_toml_config_sets_the_suite_and_flags_override_it(small_synthetic, tmp_path, capsys):
    config = tmp_path / "suite.toml"
    config.write_text('executor = "debug"\nmodels = "zeimarani_cnn"\nexperiments = "off"\n'
                      f'data = "{small_synthetic}"\nprofile = "smoke"\n')
    assert suite_main(["--config", str(config), "--out", str(tmp_path / "res"), "--no-progress",
                       "--test-per-class", "20", "--executor", "inline"]) == 0
    assert "jobs on the" not in capsys.readouterr().out  # the flag won over the file
    (tmp_path / "bad.toml").write_text("executor = \n")
    with pytest.raises(SystemExit) as exc:
        suite_main(["--config", str(tmp_path / "bad.toml")])
    assert exc.value.code == 2
