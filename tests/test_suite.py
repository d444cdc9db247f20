"""``bench.cli.suite`` (the library: ``bench.jobs.suite``) end to end at smoke size: seeds are separate runs, the report aggregates them,
and the experiments are compared on CV folds."""

import pandas as pd
import pytest

from bench.cli.suite import main, parse_seeds
from bench.core.errors import BenchError
from tests.helpers import TINY


@pytest.mark.slow
def test_suite_with_two_seeds_gives_per_seed_and_aggregated_rows(small_synthetic, tmp_path,
                                                                  capsys):
    out = tmp_path / "res"
    code = main(["--data", str(small_synthetic), "--profile", "smoke", "--models",
                 "fus2net,zeimarani_cnn", "--seeds", "0,1", "--out", str(out), "--no-progress",
                 "--test-per-class", "20", "--experiments", "on"])
    assert code == 0
    started = [line for line in capsys.readouterr().out.splitlines() if line.startswith("=== ")]
    # every seed of the comparison runs before any experiment variant ("fus2net [SGD] seed 0")
    compared = [k for k, line in enumerate(started) if "[" not in line]
    assert compared == list(range(4))
    assert sum("fus2net [" in line for line in started) == 2 * 7
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 2 * (2 + 7)  # 2 seeds × (2 models + 7 more Fus2Net variants)
    per_seed = pd.read_csv(out / "tables" / "table3_per_seed.csv")
    assert sorted(per_seed.seed[per_seed.model == "zeimarani_cnn"]) == [0, 1]
    t3 = pd.read_csv(out / "tables" / "table3_comparison.csv")
    row = t3[t3.model == "zeimarani_cnn"].iloc[0]
    assert row.n_seeds == 2 and row.auc_min <= row.auc <= row.auc_max
    t2 = pd.read_csv(out / "tables" / "table2_regularization.csv")
    assert t2.evaluated_on.str.startswith("CV: 4 folds over 2 seed(s)").all()
    assert "test_auc_secondary" in t2
    readme = (out / "README.md").read_text()
    assert "**Seeds**: 0, 1" in readme and "--seeds 0,1" in readme


def test_seeds_option_is_checked():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("a", "1,1", "-1", ""):
        with pytest.raises(BenchError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.slow
def test_on_a_cpu_the_default_leaves_the_experiments_out_and_says_so(tiny_synthetic, tmp_path,
                                                                     capsys):
    out = tmp_path / "res"
    assert main(["--data", str(tiny_synthetic), "--models", "zeimarani_cnn", "--out", str(out),
                 *TINY, "--device", "cpu"]) == 0
    assert "experiments are off on a CPU" in capsys.readouterr().out
    assert sorted(p.name.split("-")[0] for p in (out / "runs").iterdir()) == [
        "fus2net", "zeimarani_cnn"]  # the reference model and the one asked for, no variants
