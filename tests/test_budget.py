"""The fast loop stays fast: an unmarked test over its CPU budget fails and says what to do
(tests/conftest.py, ``_fast_loop_budget``)."""

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
