"""The fast loop stays fast: an unmarked test over its CPU budget fails and says what to do
(tests/conftest.py, ``_fast_loop_budget``)."""

import importlib.util
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

BURN = '''
import time

import pytest


def _burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_unmarked_and_expensive():
    _burn(0.6)


@pytest.mark.slow
def test_marked_and_expensive():
    _burn(0.6)


def test_unmarked_and_cheap():
    pass
'''


def test_an_unmarked_test_over_the_cpu_budget_fails_and_a_slow_one_does_not(pytester, monkeypatch):
    pytester.makeconftest((Path(__file__).with_name("conftest.py")).read_text())
    pytester.makeini('[pytest]\nmarkers =\n    slow: slow\n')
    pytester.makepyfile(test_burn=BURN)
    monkeypatch.setenv("FUS2BENCH_TEST_BUDGET", "0.3")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)  # a failure of the test, not an error
    result.stdout.fnmatch_lines(["*test_unmarked_and_expensive took * s of CPU*mark it "
                                 "@pytest.mark.slow or make it cheaper*"])


def test_the_budget_can_be_turned_off_and_changed():
    from tests.conftest import FAST_BUDGET, fast_budget

    assert fast_budget(None) == fast_budget("") == FAST_BUDGET
    assert fast_budget("off") is None
    assert fast_budget("2.5,30") == (2.5, 30.0)
    assert fast_budget("1") == (1.0, FAST_BUDGET[1])
    with pytest.raises(pytest.UsageError, match="FUS2BENCH_TEST_BUDGET='fast'"):
        fast_budget("fast")


def test_each_xdist_worker_gets_an_equal_share_of_the_cpus_and_a_plain_run_all_of_them():
    """Under ``./run_all.sh test`` (pytest-xdist) a worker's runs use their share of the CPUs, at
    least one thread, so workers never spin against each other; outside xdist nothing is set."""
    import os

    from tests.conftest import _worker_threads

    cpus = len(os.sched_getaffinity(0))
    assert _worker_threads({}) is None
    assert _worker_threads({"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_WORKER_COUNT": "1"}) == cpus
    assert _worker_threads({"PYTEST_XDIST_WORKER": "gw2", "PYTEST_XDIST_WORKER_COUNT": "64"}) == 1
    assert _worker_threads({"PYTEST_XDIST_WORKER": "gw1",
                            "PYTEST_XDIST_WORKER_COUNT": str(cpus)}) == 1


@pytest.mark.slow
def test_tests_sharing_a_module_fixture_or_the_cluster_share_one_xdist_worker(pytester):
    """``--dist loadgroup`` keeps a module's expensive fixture built once: the conftest puts the
    tests that use one (and those marked ``slurm``) in one ``xdist_group``."""
    # the conftest's grouping without its data imports (they load torch in every xdist worker)
    source = (Path(__file__).parent / "conftest.py").read_text()
    for line in ("from tests.helpers import EXECUTOR_SUITE, write_image",
                 "from bench.data.synthetic import PhantomSpec, generate"):
        assert line in source, f"tests/conftest.py no longer has {line!r}: update this test"
    pytester.makeconftest(source
                          .replace("from tests.helpers import EXECUTOR_SUITE, write_image",
                                   "EXECUTOR_SUITE, write_image = (), None")
                          .replace("from bench.data.synthetic import PhantomSpec, generate",
                                   "PhantomSpec = generate = None"))
    pytester.makeini("[pytest]\nmarkers =\n    slow: s\n    slurm: s\n")
    pytester.makepyfile(test_groups='''
import pytest


@pytest.fixture(scope="module")
def built():
    return 1


@pytest.mark.slow
def test_a(built, request):
    assert request.node.get_closest_marker("xdist_group").args == ("test_groups",)


def test_b(request):
    assert request.node.get_closest_marker("xdist_group") is None


@pytest.mark.slurm
def test_c(request):
    assert request.node.get_closest_marker("xdist_group").args == ("executors",)
''')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)
    if importlib.util.find_spec("xdist") is not None:  # and xdist schedules by them
        done = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist",
                                             "loadgroup", "-v")
        done.assert_outcomes(passed=3)
        assert "test_a@test_groups" in done.stdout.str() and "test_c@executors" in done.stdout.str()
