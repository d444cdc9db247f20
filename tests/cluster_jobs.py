"""Jobs for the cluster tests (importable by the worker processes, which unpickle them by name).

:class:`PausedRunJob` is the suite's job, except that its first attempt stops after its first
finished stage, says so in a file and waits there until it is killed, cancelled, requeued or sent
SLURM's time-limit signal: a pre-emption in a test then always hits a job that is running and has
a finished stage, whatever the machine's speed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.cluster import RunJob


class PausedRunJob(RunJob):
    def __init__(self, gate: Path, wait_s: float = 300.0):
        self.gate = str(gate)  # written once the first attempt pauses; later attempts go on
        self.wait_s = wait_s

    def __call__(self, argv, threads=None, source="--cpus-per-job"):
        import bench.protocol as protocol

        original = protocol.write_done

        def write_done(*args, **kwargs):
            result = original(*args, **kwargs)
            gate = Path(self.gate)
            if not gate.exists():
                gate.write_text(f"{os.getpid()}\n")
                print(f"paused after stage {args[0]} (pid {os.getpid()})", flush=True)
                end = time.time() + self.wait_s
                while time.time() < end:  # killed, cancelled or signalled here
                    time.sleep(0.2)
            return result

        protocol.write_done = write_done
        try:
            return super().__call__(argv, threads, source)
        finally:
            protocol.write_done = original


def wait_for(path: Path, timeout_s: float = 120.0) -> None:
    """Until ``path`` exists (a paused job), at most ``timeout_s``."""
    end = time.time() + timeout_s
    while not path.exists():
        if time.time() > end:
            raise TimeoutError(f"{path} did not appear within {timeout_s:.0f} s")
        time.sleep(0.1)
