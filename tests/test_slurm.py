"""The suite's grid on a real SLURM cluster: the single-node one of ``tools/slurm_local.sh``
(``.ci/run`` starts it). Skipped, with the reason, where that cluster cannot start.

Kept short: the job that waits for SLURM's time-limit signal (which comes on the controller's
30-second clock) runs in a process of its own from the first test on, beside the other tests'
jobs, and its test comes last; the requeued job and the bad-input job share one grid; the inline
suite the tables are compared with is shared with tests/test_cluster.py. Every test cancels, when it ends, whatever
jobs it left on the cluster (``_no_job_left``), pass or fail.
"""

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

from bench.cli.suite import main as suite_main  # noqa: E402
from bench.jobs.cluster import ClusterConfig, run_grid, slurm_states  # noqa: E402
from tests.cluster_jobs import PausedRunJob, smoke_jobs, wait_for  # noqa: E402
from tests.helpers import EXECUTOR_SUITE  # noqa: E402

# every test needs the local SLURM cluster; a SLURM time limit takes minutes to act
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]


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
    if not was_up:
        subprocess.run([script, "stop"], capture_output=True, timeout=120)
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


def _jobs_under(folder: Path) -> dict[str, str]:
    """The jobs SLURM has not finished with (queued, running, completing) whose stdout is under
    ``folder``: their states by id."""
    out = subprocess.run(["squeue", "-h", "-r", "-O", "JobArrayID:40,State:30,StdOut:4000"],
                         capture_output=True, text=True, timeout=30).stdout
    return {f[0]: f[1] for f in (line.split() for line in out.splitlines())
            if len(f) == 3 and f[2].startswith(str(folder))}


def _cancel_jobs_under(folder: Path, timeout_s: float = 30.0) -> dict[str, str]:
    """Cancel the jobs under ``folder`` (those not already ending) and wait until they have left
    the queue; what they were."""
    jobs = _jobs_under(folder)
    active = [i for i, state in jobs.items() if state != "COMPLETING"]
    if active:
        subprocess.run(["scancel", *active], capture_output=True, timeout=30)
    if jobs:
        end = time.time() + timeout_s
        while _jobs_under(folder) and time.time() < end:
            time.sleep(0.5)
    return jobs


@pytest.fixture(autouse=True)
def _no_job_left(slurm_cluster, tmp_path):
    """A test, passed or failed, leaves no job of its own queued or running (cancelled here)."""
    yield
    left = {i: s for i, s in _cancel_jobs_under(tmp_path).items() if s != "COMPLETING"}
    assert not left, f"the test left SLURM jobs queued or running (cancelled now): {left}"


class ReleaseRequeued(threading.Thread):
    """SLURM holds a requeued job until two minutes later (its begin time); an administrator's
    ``scontrol update StartTime=now`` releases it sooner, which keeps these tests short. Each hold
    is released after SETTLE_S: slurmd revokes the requeued run's credential with a time stamp in
    whole seconds, and a restart whose new credential falls in that same second is killed as
    "Job credential revoked" (the job then ends FAILED)."""

    SETTLE_S = 3.0

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.released: list[str] = []
        self.held_since: dict[str, float] = {}

    def run(self):
        while not self.stop.is_set():
            try:
                self.release_once()
            except (subprocess.SubprocessError, OSError):  # a slow squeue on a busy machine:
                pass  # asked again next round, never the end of the thread
            self.stop.wait(0.5)

    def release_once(self):
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T %r"], capture_output=True,
                             text=True, timeout=30).stdout
        held = {job_id for job_id, state, reason in (line.split()[:3] for line in out.splitlines()
                                                     if len(line.split()) >= 3)
                if state == "PENDING" and reason == "BeginTime"}
        now = time.monotonic()
        self.held_since = {j: self.held_since.get(j, now) for j in held}
        for job_id, since in list(self.held_since.items()):
            if now - since >= self.SETTLE_S:
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"],
                               capture_output=True, timeout=30)
                self.released.append(job_id)
                del self.held_since[job_id]


@pytest.fixture(scope="module")
def released(slurm_cluster):
    """The ids of the requeued jobs released while this module's tests run."""
    thread = ReleaseRequeued()
    thread.start()
    yield thread.released
    thread.stop.set()
    thread.join(timeout=40)


def _grid(data, out, models=("fus2net",)):
    """Smoke jobs as a background grid's spec describes them (tests/cluster_jobs.py)."""
    return {"data": str(data), "out": str(out), "models": list(models)}


class BackgroundGrid:
    """A grid of paused jobs run by ``python -m tests.cluster_jobs`` in a process of its own."""

    def __init__(self, folder: Path, grid: dict, cluster: dict, wait_s: float):
        self.folder, self.gate = folder, folder / "paused"
        spec = {**grid, "cluster": cluster, "log_dir": str(folder / "logs"),
                "gate": str(self.gate), "wait_s": wait_s, "result": str(folder / "result.json")}
        (folder / "spec.json").write_text(json.dumps(spec))
        self.log = open(folder / "grid.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.cluster_jobs",
                                      str(folder / "spec.json")], cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def result(self, timeout_s: float) -> list[dict]:
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the background grid did not end within {timeout_s:.0f} s "
                        f"(log {self.folder / 'grid.log'})")
        log = (self.folder / "grid.log").read_text()
        assert code == 0, log
        return json.loads((self.folder / "result.json").read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:  # SIGTERM: the grid cancels its jobs and exits
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()
        _cancel_jobs_under(self.folder)


@pytest.fixture(scope="module")
def time_limit_grid(slurm_cluster, released, small_synthetic, tmp_path_factory):
    """A job past its time limit: ``--timeout-min 1`` with ``--signal-delay-s 15``. SLURM checks
    time limits every 30 s, so it signals the job (USR2) at the first check at least 15 s after
    the job started, 15 to 45 s, after its start-up; the job, paused after its first stage until
    then, is checkpointed and requeued by submitit, and the time limit's own kill, one check
    later, never comes. Started by the first tests that use it, so the wait overlaps their jobs."""
    folder = tmp_path_factory.mktemp("time-limit")
    grid = BackgroundGrid(folder, _grid(small_synthetic, folder / "runs"),
                          {"executor": "slurm", "cpus_per_job": 1, "mem_gb": 1,
                           "timeout_min": 1, "signal_delay_s": 15, "retries": 0}, wait_s=75)
    yield grid
    grid.stop()


@pytest.mark.slow
@pytest.mark.usefixtures("time_limit_grid")
def test_a_two_model_grid_on_slurm_gives_the_inline_suites_tables(small_synthetic, tmp_path,
                                                                  inline_suite, capsys):
    # one CPU and one thread per job, and the inline suite at the same thread count (the last
    # bits of CPU results depend on it)
    inline = inline_suite(1)
    assert suite_main(["--data", str(small_synthetic), *EXECUTOR_SUITE, "--out",
                       str(tmp_path / "slurm"), "--executor", "slurm", "--cpus-per-job", "1"]) == 0
    for name in ("table3_comparison.csv", "table3_per_seed.csv", "roc_points.csv"):
        assert (inline / "tables" / name).read_bytes() == \
            (tmp_path / "slurm" / "tables" / name).read_bytes(), name
    out = capsys.readouterr().out
    logs = [line for line in out.splitlines() if line.startswith("job ")]
    assert len(logs) == 2 and all("_" in line.split()[1] for line in logs)  # one job array
    for line in logs:
        text = Path(line.split("stdout ")[1].split(",")[0]).read_text()
        assert line.split("(")[1].split()[0] in text  # the job's own run header
    for cfg_path in (tmp_path / "slurm" / "runs").glob("*/config.json"):
        device = json.loads(cfg_path.read_text())["device"]
        assert (device["threads"], device["threads_from"]) == (1, "--cpus-per-job")


@pytest.fixture(scope="module")
def requeue_grid(slurm_cluster, released, small_synthetic, tmp_path_factory):
    """One grid of two jobs, with retries: a job pre-empted mid-run (``scontrol requeue`` once it
    has paused after its first stage: SLURM kills it and queues it again) and a job whose input is
    bad (a misspelt model name)."""
    folder = tmp_path_factory.mktemp("requeue")
    gate, requeued, errors = folder / "paused", [], []
    grid_running = threading.Event()

    def requeue_when_paused():
        try:
            paused = wait_for(gate, timeout_s=120, alive=grid_running.is_set)
            subprocess.run(["scontrol", "requeue", paused["job_id"]], check=True, timeout=30)
            requeued.append(paused["job_id"])
        except Exception as exc:  # noqa: BLE001 - reported by the tests
            errors.append(exc)

    thread = threading.Thread(target=requeue_when_paused, daemon=True)
    grid_running.set()
    thread.start()
    try:
        outcomes = run_grid(smoke_jobs(small_synthetic, folder / "runs", ("fus2net", "fus2nett")),
                            ClusterConfig(executor="slurm", cpus_per_job=1, mem_gb=1, retries=2),
                            folder / "logs", progress=False,
                            target=PausedRunJob(gate, wait_s=60), poll_s=0.5)
    finally:
        grid_running.clear()
        thread.join(timeout=40)
        _cancel_jobs_under(folder)
    assert not thread.is_alive() and not errors, errors
    return {o.label: o for o in outcomes}, folder, requeued


@pytest.mark.slow
@pytest.mark.usefixtures("time_limit_grid")
def test_a_requeued_job_resumes_from_its_finished_stages(requeue_grid, released):
    outcomes, folder, requeued = requeue_grid
    outcome = outcomes["fus2net"]
    assert outcome.status == "ok", outcome.message
    assert requeued == [outcome.job_id]  # the job that paused was the one requeued
    assert outcome.attempts == 1 and outcome.job_id in released  # the same job, requeued
    (run_dir,) = (folder / "runs").iterdir()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["timings"]["stages"]["fold_0"]["status"] == "reused"
    assert "resumed: reused fold_0" in Path(outcome.stdout).read_text()


@pytest.mark.slow
@pytest.mark.usefixtures("time_limit_grid")
def test_a_bad_input_job_fails_once_with_its_message_and_log(requeue_grid):
    outcome = requeue_grid[0]["fus2nett"]
    assert outcome.status == "FAILED" and outcome.attempts == 1  # retries=2: never retried
    assert "did you mean fus2net" in outcome.message and Path(outcome.log).is_file()


@pytest.mark.slow
@pytest.mark.usefixtures("time_limit_grid")
def test_ctrl_c_of_the_suite_cancels_its_queued_and_running_jobs(small_synthetic, tmp_path):
    # more 1-CPU jobs than the node has CPUs (2 models x seeds; 4 on 2 CPUs): some run and the
    # others wait in the queue, whether or not the time-limit job holds a CPU now
    cpus = int(subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.split()[0])
    seeds = ",".join(map(str, range(cpus // 2 + 1)))
    n_jobs = 2 * (cpus // 2 + 1)
    cmd = [sys.executable, "-m", "bench.suite", "--data", str(small_synthetic), *EXECUTOR_SUITE,
           "--seeds", seeds, "--epochs", "500", "--out", str(tmp_path / "res"), "--executor",
           "slurm", "--cpus-per-job", "1", "--mem-gb", "1"]
    suite = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        end = time.time() + 120
        while set(_jobs_under(tmp_path).values()) != {"PENDING", "RUNNING"}:
            assert time.time() < end and suite.poll() is None, "the jobs did not start"
            time.sleep(0.2)
        t0 = time.time()
        suite.send_signal(signal.SIGINT)
        output, _ = suite.communicate(timeout=60)
        took = time.time() - t0
    finally:
        if suite.poll() is None:
            suite.kill()
            suite.communicate(timeout=30)
    assert suite.returncode == 130, output
    assert took < 20, f"the suite took {took:.0f} s to exit"
    (line,) = [x for x in output.splitlines()
               if x.startswith(f"cancelled {n_jobs} queued or running")]
    ids = line.split(": ")[1].split()
    end = time.time() + 30
    while _jobs_under(tmp_path) and time.time() < end:
        time.sleep(0.5)
    assert not _jobs_under(tmp_path)  # squeue: none of them is left
    states = slurm_states() or {}
    # an array task cancelled before it started has no record of its own: the array's has its
    # state, or, when the array's other tasks ran, no record at all (none left in the queue, above)
    seen = [states.get(i, states.get(i.split("_")[0])) for i in ids]
    assert set(seen) <= {"CANCELLED", None} and "CANCELLED" in seen, states


@pytest.mark.slow
def test_a_job_past_its_time_limit_is_checkpointed_requeued_and_finishes(time_limit_grid,
                                                                         released):
    (outcome,) = time_limit_grid.result(timeout_s=180)
    assert time_limit_grid.gate.exists()
    assert outcome["status"] == "ok" and outcome["attempts"] == 1, outcome["message"]
    assert outcome["job_id"] in released  # requeued by submitit, not resubmitted by the suite
    log = Path(outcome["stdout"]).read_text() + Path(outcome["log"]).read_text()
    assert "checkpoint: requeued" in log and "resumed: reused fold_0" in log
    (run_dir,) = (time_limit_grid.folder / "runs").iterdir()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["timings"]["stages"]["fold_0"]["status"] == "reused"
