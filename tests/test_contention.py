"""Threads on a busy machine (docs/engines.md, "Threads on a busy machine"): the OpenMP waiting
rule is set before torch loads, a user's setting wins, runs record it, and the contention table
of ``bench.speed --contention`` is computed as its header says."""

import subprocess
import sys

import pandas as pd
import pytest

import bench.engine.contention as contention
from bench.core.openmp import DEFAULT_WAIT, WAIT_VARIABLES, configure
from bench.engine.threads import thread_environment


def test_the_default_wait_is_set_before_torch_loads_and_a_users_setting_wins():
    env: dict[str, str] = {}
    rule = configure(env, loaded=False)
    assert env == DEFAULT_WAIT and rule.source == "default"
    mine = {"OMP_WAIT_POLICY": "PASSIVE"}
    rule = configure(mine, loaded=False)
    assert mine == {"OMP_WAIT_POLICY": "PASSIVE"} and rule.source == "environment"
    late: dict[str, str] = {}
    rule = configure(late, loaded=True)  # too late to take effect: nothing set, and said
    assert late == {} and rule.source == "unset: torch was loaded first"
    assert "torch was loaded first" in rule.describe()


@pytest.mark.slow
def test_a_fresh_python_that_imports_bench_first_gets_the_default_before_torch():
    code = ("import os, bench, torch; from bench.core.openmp import wait_rule; "
            "print(os.environ.get('GOMP_SPINCOUNT'), wait_rule().source)")
    env = {k: v for k, v in __import__("os").environ.items() if k not in WAIT_VARIABLES}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120).stdout.split()
    assert out == [DEFAULT_WAIT["GOMP_SPINCOUNT"], "default"]


def test_a_suites_jobs_get_the_waiting_rule_with_their_threads(monkeypatch):
    for k in WAIT_VARIABLES:
        monkeypatch.delenv(k, raising=False)
    assert thread_environment(1, "--cpus-per-job").items() >= DEFAULT_WAIT.items()
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    env = thread_environment(1, "--cpus-per-job")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and "GOMP_SPINCOUNT" not in env


def test_the_contention_table_compares_each_rule_with_one_thread_under_the_same_load(monkeypatch):
    # ms per step by (rule threads, busy): a rule that collapses beside busy processes
    slow = {(1, 0): 130.0, (2, 0): 80.0, (1, 1): 150.0, (2, 1): 600.0, (None, 0): 80.0,
            (None, 1): 150.0}
    calls = []

    def fake_cell(rule, engine, o):
        calls.append((rule.label, engine))
        return {"ms_per_step": slow[(rule.threads, busy_now[0])] * (2 if engine == "stacked" else 1),
                "threads": rule.threads or (2 - busy_now[0])}

    busy_now = [0]

    class Busy:
        def __init__(self, n):
            busy_now[0] = n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(contention, "time_cell", fake_cell)
    monkeypatch.setattr(contention, "busy_processes", Busy)
    o = contention.ContentionOptions(busy=(0, 1), repeats=2)
    table = contention.measure_contention(o, cpus=2)
    assert len(calls) == 2 * 2 * 5 * 2  # loads x repeats x rules x engines
    t = table.set_index(["engine", "busy_processes", "rule"])
    spin = [r for r in table.rule.unique() if "libgomp" in r][0]
    assert t.loc[("reference", 1, spin)].vs_1_thread == 4.0
    assert t.loc[("reference", 0, spin)].vs_fastest_alone == 1.0
    assert t.loc[("stacked", 0, "1 thread")].vs_fastest_alone == round(130 / 80, 2)
    assert isinstance(table, pd.DataFrame) and set(table.runs) == {2}
    default = [r for r in table.rule.unique() if r.startswith("project default")][0]
    assert t.loc[("reference", 1, default)].threads == "1"  # chosen by the load
    assert t.loc[("reference", 1, default)].vs_1_thread == 1.0
