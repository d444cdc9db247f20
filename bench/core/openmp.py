"""How OpenMP's worker threads wait between parallel regions, set before torch loads
(docs/engines.md, "Threads on a busy machine").

torch's CPU kernels run on an OpenMP pool (libgomp in the Linux wheels). Between two parallel
regions its threads spin, waiting for the next one. On an idle machine that is the fastest; but
when another busy process takes one of the run's cores, every region waits for the thread that
lost its core while the others spin on theirs, and a step takes many times longer than at one
thread. libgomp reads its waiting rules once, when it loads (``OMP_WAIT_POLICY``,
``GOMP_SPINCOUNT``): this module sets the project's default into the environment before torch is
imported (``bench/__init__.py`` calls :func:`configure`), unless the environment already names one
(a user's setting always wins), and says what a run uses so the run can record it.

The default (:data:`DEFAULT_WAIT`) was chosen by ``python -m bench.speed --contention``
(``results/speed_contention.md``): training steps alone and beside one and two busy processes of
the same priority, for each candidate rule.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass

WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
# spin this many iterations (about a microsecond), then sleep: as fast as libgomp's default spin
# (300,000) alone, and no collapse when a busy program takes a core mid-run (results/
# speed_contention.md)
DEFAULT_WAIT = {"GOMP_SPINCOUNT": "1000"}


@dataclass(frozen=True)
class WaitRule:
    """The OpenMP waiting rule of this process and where it came from."""

    variables: dict[str, str]  # what the environment sets, e.g. {"GOMP_SPINCOUNT": "10000"}
    source: str  # "default", "environment", or "unset: torch was loaded first"

    def describe(self) -> str:
        shown = " ".join(f"{k}={v}" for k, v in self.variables.items()) or "libgomp's own"
        return f"{shown} ({self.source})"

    def record(self) -> dict:
        return {"openmp_wait": {k: self.variables.get(k) for k in WAIT_VARIABLES},
                "openmp_wait_from": self.source}


_RULE: WaitRule | None = None


def configure(environ: MutableMapping[str, str] | None = None,
              loaded: bool | None = None) -> WaitRule:
    """Put :data:`DEFAULT_WAIT` into ``environ`` (default: this process's) unless it names a
    waiting rule already or the OpenMP runtime is loaded already (``loaded``: torch imported; the
    rule would not take effect). Returns the rule in force; the first call of a process is
    remembered for :func:`wait_rule`."""
    global _RULE
    env = os.environ if environ is None else environ
    loaded = "torch" in sys.modules if loaded is None else loaded
    given = {k: env[k] for k in WAIT_VARIABLES if env.get(k)}
    if given:
        rule = WaitRule(given, "environment")
    elif loaded:
        rule = WaitRule({}, "unset: torch was loaded first")
    else:
        env.update(DEFAULT_WAIT)
        rule = WaitRule(dict(DEFAULT_WAIT), "default")
    if environ is None and _RULE is None:
        _RULE = rule
    return rule


def wait_rule() -> WaitRule:
    """The rule this process's OpenMP runtime loaded with (configured on first use)."""
    return _RULE if _RULE is not None else configure()


def child_environment() -> dict[str, str]:
    """The waiting rule for processes this one starts (a suite's jobs): the rule in force here,
    or the default where none is."""
    given = {k: os.environ[k] for k in WAIT_VARIABLES if os.environ.get(k)}
    return given or dict(DEFAULT_WAIT)


def load_average() -> float | None:
    """The 1-minute load average (runnable processes) where the system gives one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
