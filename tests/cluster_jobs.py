"""Jobs for the cluster tests (importable by the worker processes, which unpickle them by name).

:class:`PausedRunJob` is the suite's job, except that its first attempt stops after its first
finished stage, says so in a file (the gate: JSON of the job's pid and job id) and waits there until it is
killed, cancelled, requeued or sent SLURM's time-limit signal: a pre-emption in a test then always
hits a job that is running and has a finished stage, whatever the machine's speed. A job that is
never interrupted ends after ``wait_s`` with an error (not retried) that says so, instead of
going on as if it had been: a lost kill fails its test at once and can never pass as a resume.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

from bench.engine.spec import RunOptions
from bench.jobs.cluster import RunJob
from bench.jobs.plan import Job
from models.errors import UserError


class PausedRunJob(RunJob):
    def __init__(self, gate: Path, wait_s: float = 90.0):
        self.gate = str(gate)  # written once the first attempt pauses; later attempts go on
        self.wait_s = wait_s

    def __call__(self, options: RunOptions):
        import bench.engine.protocol as protocol

        original = protocol.write_done

        def write_done(*args, **kwargs):
            result = original(*args, **kwargs)
            gate = Path(self.gate)
            if not gate.exists():
                import submitit

                tmp = gate.with_name(gate.name + ".tmp")
                tmp.write_text(json.dumps({"pid": os.getpid(),
                                           "job_id": submitit.JobEnvironment().job_id}))
                tmp.replace(gate)  # whole, never half-written, when the test reads it
                print(f"paused after stage {args[0]} (pid {os.getpid()})", flush=True)
                end = time.time() + self.wait_s
                while time.time() < end:  # killed, cancelled or signalled here
                    time.sleep(0.2)
                raise UserError(f"the paused job (pid {os.getpid()}) was not interrupted "
                                f"within {self.wait_s:.0f} s")
            return result

        protocol.write_done = write_done
        try:
            return super().__call__(options)
        finally:
            protocol.write_done = original


def smoke_jobs(data: Path, out: Path, models=("fus2net", "zeimarani_cnn")) -> list[Job]:
    """One smoke-profile job per model on ``data``, writing its run into ``out`` (labelled by the
    model's name)."""
    base = RunOptions(data=Path(data), out=Path(out), profile="smoke", progress=False,
                      test_per_class=20)
    return [Job(m, replace(base, model=m)) for m in models]


def wait_for(gate: Path, timeout_s: float = 120.0, alive=None) -> dict:
    """The paused job's ``{"pid", "job_id"}`` once its gate exists, waiting at most
    ``timeout_s``; stops early with an error when ``alive()`` (e.g. the waiting grid) turns
    false."""
    end = time.time() + timeout_s
    while not gate.exists():
        if time.time() > end:
            raise TimeoutError(f"{gate} did not appear within {timeout_s:.0f} s")
        if alive is not None and not alive():
            raise RuntimeError(f"{gate} did not appear and the grid ended")
        time.sleep(0.1)
    return json.loads(gate.read_text())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


def main(spec_path: str) -> None:
    """``python -m tests.cluster_jobs SPEC.json``: a grid of :class:`PausedRunJob` jobs in a
    process of its own (a test that waits for SLURM's clock runs it beside the others); writes
    the outcomes as JSON to the spec's ``result`` path."""
    from dataclasses import asdict

    from bench.jobs.cluster import ClusterConfig, run_grid

    spec = json.loads(Path(spec_path).read_text())
    outcomes = run_grid(smoke_jobs(Path(spec["data"]), Path(spec["out"]), spec["models"]),
                        ClusterConfig(**spec["cluster"]), Path(spec["log_dir"]), progress=False,
                        target=PausedRunJob(Path(spec["gate"]), spec["wait_s"]), poll_s=1)
    result = Path(spec["result"])
    tmp = result.with_name(result.name + ".tmp")
    tmp.write_text(json.dumps([asdict(o) for o in outcomes], default=str))
    tmp.replace(result)


if __name__ == "__main__":
    import sys

    main(sys.argv[1])
