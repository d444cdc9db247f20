"""Seeds wherever they enter (bench.run --seed, bench.suite --seeds, the suite's TOML file, a
Python caller's RunOptions) and the suite's TOML file itself: bad values are one line, exit 2
(README, "When things go wrong")."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bench.cli.suite import main as suite_main
from bench.cli.suite import parse_seeds
from bench.core.errors import BenchError
from bench.engine.runner import prepare
from bench.engine.spec import SEED_LIMIT, RunOptions, check_seed
from tests.helpers import TINY, call_main, run_cli, run_main

RULE = "an integer 0 <= seed < 10^16"


def only_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_seed_is_an_integer_whose_stage_seeds_fit_64_bits():
    """A stage's seed is 100 × the run's seed + its number: the largest seed accepted keeps it
    below 2**63 (a seed of 1e20 was once recorded as -2**63)."""
    assert (SEED_LIMIT - 1) * 100 + 99 < 2**63
    for good, value in ((0, 0), (SEED_LIMIT - 1, SEED_LIMIT - 1), (np.int64(3), 3), ("7", 7)):
        assert check_seed(good) == value and type(check_seed(good)) is int
    for bad in (-1, SEED_LIMIT, 10**20, 1.5, 1e20, True, "1e20", "x", None):
        with pytest.raises(BenchError, match=re.escape(f"a seed is {RULE}")):
            check_seed(bad)


@pytest.mark.parametrize("seed", ["1e20", str(10**20), str(SEED_LIMIT), "-1", "1.5"])
def test_a_seed_out_of_range_is_one_line_in_bench_run(seed, capsys):
    code, _, err = run_main(capsys, "--seed", seed)
    assert code == 2 and only_line(err) == f"error: --seed {seed}: a seed is {RULE}"


def test_a_python_caller_s_seed_is_checked_before_anything_is_read(tmp_path):
    with pytest.raises(BenchError, match=r"`seed`=100000000000000000000: a seed is"):
        prepare(RunOptions(seed=10**20, out=tmp_path))


@pytest.mark.parametrize("option", ["--seeds", "--experiment-seeds"])
def test_suite_seeds_out_of_range_are_one_line_naming_their_option(option, capsys):
    assert parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("0,1e20", f"0,{10**20}", "-1", "1,1", ""):
        with pytest.raises(BenchError, match=f"^{option} "):
            parse_seeds(bad, option)
    code, _, err = call_main(capsys, suite_main, option, f"0,{10**20}", "--models", "fus2net")
    assert code == 2 and only_line(err).startswith(f"error: {option} '0,{10**20}': give distinct "
                                                   f"seeds, each {RULE}")


@pytest.mark.parametrize("toml, message", [
    ("seeds = [100000000000000000000]", "seeds = [100000000000000000000] is not a list of seeds, "
                                        f"each {RULE}"),
    ('experiment_seeds = "0,1e20"', 'experiment_seeds = "0,1e20" is not a list of seeds'),
    ("seeds = [-1]", "seeds = [-1] is not a list of seeds"),
    ("seeds = [1, 1]", "seeds = [1, 1] is not a list of seeds"),
    ("help = true", "help is not a setting of the config file; its keys are the suite's flags "
                    "without dashes"),
    ('config = "other.toml"\nfoo = 1', "config, foo are not settings of the config file"),
])
def test_bad_settings_of_a_suite_config_are_one_line_naming_the_file(toml, message, tmp_path,
                                                                     capsys):
    config = tmp_path / "suite.toml"
    config.write_text(toml + "\n")
    code, _, err = call_main(capsys, suite_main, "--config", str(config))
    line = only_line(err)
    assert code == 2 and line.startswith(f"error: --config {config}: {message}"), line
    assert "is not None" not in line


def test_a_config_file_that_is_not_utf8_is_one_line_naming_the_file(tmp_path, capsys):
    config = tmp_path / "suite.toml"
    config.write_bytes(b'models = "caf\xe9"\n')  # Latin-1, not UTF-8
    code, _, err = call_main(capsys, suite_main, "--config", str(config))
    assert code == 2 and only_line(err) == (
        f"error: --config {config}: not UTF-8 text (byte 0xe9 at offset 13); a TOML file is "
        "UTF-8: save it as UTF-8")


@pytest.mark.slow
def test_bad_seeds_and_config_files_are_one_line_in_a_fresh_process(tiny_synthetic, tmp_path):
    """As a shell sees them: exit code 2 and exactly one line on stderr (one case of each
    command; the in-process tests above give every case)."""
    (tmp_path / "latin1.toml").write_bytes(b'models = "caf\xe9"\n')
    for module, args in (
            ("bench.run", ["--seed", "1e20", "--data", str(tiny_synthetic), *TINY]),
            ("bench.suite", ["--config", str(tmp_path / "latin1.toml")])):
        done = run_cli(*args, module=module)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, \
            (args, done.stderr)
        assert done.stderr.startswith("error: ")
