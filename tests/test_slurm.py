"""The suite's grid on a real SLURM cluster: the single-node one of ``tools/slurm_local.sh``
(``.ci/run`` starts it). Skipped, with the reason, where that cluster cannot start."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("submitit")

from bench.cluster import ClusterConfig, run_grid, slurm_states  # noqa: E402
from bench.suite import main as suite_main  # noqa: E402
from tests.cluster_jobs import PausedRunJob, wait_for  # noqa: E402
from tests.helpers import SMOKE  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SUITE = ["--profile", "smoke", "--models", "fus2net,zeimarani_cnn", "--no-experiments",
         "--no-progress", "--test-per-class", "20"]


@pytest.fixture(scope="session")
def slurm_cluster():
    """``SLURM_CONF`` of the local cluster: started here when SLURM is installed and it is not
    running (and stopped again at the end), else skipped with the reason. ``.ci/run`` installs
    and starts it; ``FUS2BENCH_SLURM=off: <reason>`` (set there when that failed) skips at once."""
    said = os.environ.get("FUS2BENCH_SLURM", "")
    if said.startswith("off"):
        pytest.skip(f"the local SLURM cluster is not available ({said})")
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        pytest.skip("SLURM is not installed here: tools/slurm_local.sh start installs and starts "
                    "a local cluster")
    script = str(ROOT / "tools" / "slurm_local.sh")
    was_up = subprocess.run([script, "status"], capture_output=True, timeout=60).returncode == 0
    try:
        proc = subprocess.run([script, "start"], capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"the local SLURM cluster could not start: {exc}")
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        pytest.skip("the local SLURM cluster could not start (tools/slurm_local.sh start): "
                    + (why[-1] if why else f"exit {proc.returncode}"))
    conf = next(line.split("=", 1)[1] for line in proc.stdout.splitlines()
                if line.startswith("export SLURM_CONF="))
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    yield conf
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
    if not was_up:
        subprocess.run([script, "stop"], capture_output=True, timeout=120)


def _queue() -> list[str]:
    """Jobs queued or running on the cluster."""
    return subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True,
                          timeout=30, check=True).stdout.split("\n")[:-1]


class ReleaseRequeued(threading.Thread):
    """SLURM holds a requeued job until two minutes later (its begin time); an administrator's
    ``scontrol update StartTime=now`` releases it at once, which keeps these tests short."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.released: list[str] = []

    def run(self):
        while not self.stop.is_set():
            out = subprocess.run(["squeue", "-h", "-o", "%i %T %r"], capture_output=True,
                                 text=True, timeout=30).stdout
            for job_id, state, reason in (line.split()[:3] for line in out.splitlines()
                                          if len(line.split()) >= 3):
                if state == "PENDING" and reason == "BeginTime":
                    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"],
                                   capture_output=True, timeout=30)
                    self.released.append(job_id)
            self.stop.wait(0.5)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(timeout=10)


def _idle(timeout_s: float = 30.0) -> bool:
    """The queue empties (a finished job may linger a moment after its result is written)."""
    end = time.time() + timeout_s
    while _queue():
        if time.time() > end:
            return False
        time.sleep(0.5)
    return True


def _grid(data, out, models=("fus2net",), extra=()):
    return [(m, ["--model", m, "--data", str(data), "--out", str(out), *SMOKE, *extra])
            for m in models]


def test_a_two_model_grid_on_slurm_gives_the_inline_suites_tables(slurm_cluster,
                                                                  small_synthetic, tmp_path,
                                                                  capsys):
    args = ["--data", str(small_synthetic), *SUITE]
    # one CPU and one thread per job: both jobs run at once on the node, and the inline suite
    # uses the same thread count (the last bits of CPU results depend on it)
    assert suite_main([*args, "--out", str(tmp_path / "inline"), "--threads", "1"]) == 0
    assert suite_main([*args, "--out", str(tmp_path / "slurm"), "--executor", "slurm",
                       "--cpus-per-job", "1"]) == 0
    for name in ("table3_comparison.csv", "table3_per_seed.csv", "roc_points.csv"):
        assert (tmp_path / "inline" / "tables" / name).read_bytes() == \
            (tmp_path / "slurm" / "tables" / name).read_bytes(), name
    out = capsys.readouterr().out
    logs = [line for line in out.splitlines() if line.startswith("job ")]
    assert len(logs) == 2 and all("_" in line.split()[1] for line in logs)  # one job array
    for line in logs:
        stdout = Path(line.split("stdout ")[1].split(",")[0])
        assert "fus2net" in stdout.read_text() or "zeimarani_cnn" in stdout.read_text()
    for cfg_path in (tmp_path / "slurm" / "runs").glob("*/config.json"):
        device = json.loads(cfg_path.read_text())["device"]
        assert (device["threads"], device["threads_from"]) == (1, "--cpus-per-job")


def test_a_requeued_job_resumes_from_its_finished_stages(slurm_cluster, small_synthetic,
                                                         tmp_path):
    gate = tmp_path / "paused"
    submitted = []

    def requeue_when_paused():  # a pre-emption: SLURM kills the job and queues it again
        wait_for(gate)
        subprocess.run(["scontrol", "requeue", str(submitted[0].job_id)], check=True,
                       timeout=30)

    thread = threading.Thread(target=requeue_when_paused, daemon=True)
    thread.start()
    with ReleaseRequeued() as release:
        (outcome,) = run_grid(_grid(small_synthetic, tmp_path / "runs"),
                              ClusterConfig(executor="slurm", cpus_per_job=1, retries=0),
                              tmp_path / "logs", progress=False, observe=submitted.append,
                              target=PausedRunJob(gate), poll_s=1)
    thread.join(timeout=10)
    assert outcome.status == "ok" and outcome.attempts == 1  # the same SLURM job, requeued
    assert release.released == [outcome.job_id]
    (run_dir,) = (tmp_path / "runs").iterdir()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["timings"]["stages"]["fold_0"]["status"] == "reused"
    assert "resumed: reused fold_0" in Path(outcome.stdout).read_text()


def test_a_job_past_its_time_limit_is_checkpointed_requeued_and_finishes(slurm_cluster,
                                                                         small_synthetic,
                                                                         tmp_path):
    """--timeout-min 2: SLURM signals the job (USR2) ``signal_delay_s`` (45 s) before its limit,
    or up to 60 s earlier (SLURM's event resolution), so 15 to 75 s after it starts, after its
    start-up; the job, paused after its first stage until then, is checkpointed and requeued by
    submitit."""
    gate = tmp_path / "paused"
    with ReleaseRequeued() as release:
        (outcome,) = run_grid(_grid(small_synthetic, tmp_path / "runs"),
                              ClusterConfig(executor="slurm", cpus_per_job=1, timeout_min=2,
                                            signal_delay_s=45, retries=0),
                              tmp_path / "logs", progress=False, target=PausedRunJob(gate),
                              poll_s=1)
    assert gate.exists() and outcome.status == "ok" and outcome.attempts == 1
    assert set(release.released) == {outcome.job_id}  # requeued by submitit, not resubmitted
    log = Path(outcome.stdout).read_text() + Path(outcome.log).read_text()
    assert "checkpoint: requeued" in log and "resumed: reused fold_0" in log
    (run_dir,) = (tmp_path / "runs").iterdir()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["timings"]["stages"]["fold_0"]["status"] == "reused"


def test_a_bad_input_job_fails_once_with_its_message_and_log(slurm_cluster, small_synthetic,
                                                             tmp_path):
    (outcome,) = run_grid(_grid(small_synthetic, tmp_path / "runs", models=("fus2nett",)),
                          ClusterConfig(executor="slurm", cpus_per_job=1, retries=2),
                          tmp_path / "logs", progress=False, poll_s=1)
    assert outcome.status == "FAILED" and outcome.attempts == 1
    assert "did you mean fus2net" in outcome.message and Path(outcome.log).is_file()


def test_ctrl_c_of_the_suite_cancels_its_queued_and_running_jobs(slurm_cluster, small_synthetic,
                                                                 tmp_path):
    assert _idle(), "the cluster must be idle for this test"
    # two CPUs per job on the 2-CPU node: one job runs, the other waits in the queue
    cmd = [sys.executable, "-m", "bench.suite", "--data", str(small_synthetic), *SUITE,
           "--epochs", "500", "--out", str(tmp_path / "res"), "--executor", "slurm",
           "--cpus-per-job", str(os.cpu_count()), "--mem-gb", "1"]
    suite = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        end = time.time() + 120
        while sorted(s.split()[1] for s in _queue()) != ["PENDING", "RUNNING"]:
            assert time.time() < end and suite.poll() is None, "the jobs did not start"
            time.sleep(0.5)
        suite.send_signal(signal.SIGINT)
        output, _ = suite.communicate(timeout=60)
    finally:
        if suite.poll() is None:
            suite.kill()
    assert suite.returncode == 130, output
    assert "cancelled 2 queued or running job(s)" in output
    assert _idle(), _queue()
    states = slurm_states() or {}
    assert sorted(set(states.values()) & {"CANCELLED", "RUNNING", "PENDING"}) == ["CANCELLED"]
