"""The reviewed pairs behind the same-lesion rule (docs/protocol.md): sampling blind contact sheets
and fitting the rule with cross-validated precision and recall."""

import json

import pandas as pd
import pytest
from PIL import Image

from bench.cli.pairs import main
from tests.helpers import call_main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m bench.pairs`` as the command line sees it."""
    return call_main(capsys, main, *args)


@pytest.mark.slow
def test_sample_draws_blind_sheets_and_a_csv_to_fill(small_synthetic, tmp_path, capsys):
    code, out, err = run_cli(capsys, "sample", "--data", str(small_synthetic), "--out",
                             str(tmp_path / "pairs"), "--per-bin", "2", "--random", "4")
    assert code == 0, err
    pairs = pd.read_csv(tmp_path / "pairs.csv", keep_default_na=False)
    assert len(pairs) >= 20 and (pairs.verdict == "").all()
    assert (pairs.drawn_by == "random pair").sum() == 4
    sheets = sorted((tmp_path / "pairs").glob("pairs_*.png"))
    assert len(sheets) == -(-len(pairs) // 6)
    assert Image.open(sheets[0]).width > 600
    code, _, err = run_cli(capsys, "sample", "--data", str(small_synthetic), "--out",
                           str(tmp_path / "pairs"))
    assert code == 2 and "exists" in err  # never overwritten silently


@pytest.mark.slow
def test_fit_writes_a_rule_with_cross_validated_precision_and_recall(synthetic_copy, tmp_path,
                                                                    capsys):
    folder = synthetic_copy / "malignant"
    rows = []
    for k in range(6):  # six shifted copies: the same lesion
        src = Image.open(folder / f"syn_malignant_{k:04d}.png")
        w, h = src.size
        src.crop((w // 12, h // 15, w, h)).resize((w, h)).save(folder / f"shift_{k}.png")
        rows.append((f"syn_malignant_{k:04d}", f"shift_{k}", "same"))
    for k in range(6, 18):  # independent phantom lesions
        rows.append((f"syn_malignant_{k:04d}", f"syn_benign_{k:04d}", "different"))
    rows.append(("syn_benign_0030", "syn_benign_0031", "unsure"))
    reviewed = tmp_path / "reviewed.csv"
    pd.DataFrame(rows, columns=["a", "b", "verdict"]).to_csv(reviewed, index=False)
    rule_path = tmp_path / "rule.json"
    code, out, err = run_cli(capsys, "fit", "--data", str(synthetic_copy), "--reviewed",
                             str(reviewed), "--out", str(rule_path))
    assert code == 0, err
    rule = json.loads(rule_path.read_text())
    v = rule["validation"]
    assert v["verdicts"] == {"same": 6, "different": 12, "unsure": 1}
    assert v["pairs"]["threshold 0.5"]["recall"] == 1.0
    assert v["pairs"]["threshold 0.5"]["precision"] == 1.0
    assert "groups_average_linkage" in v and "previous_rule_ncc_contrast_z_3.2" in v
    assert "precision 1.0 recall 1.0" in out


@pytest.mark.slow
def test_a_bad_verdict_or_an_unknown_image_is_one_line(small_synthetic, tmp_path, capsys):
    reviewed = tmp_path / "r.csv"
    pd.DataFrame({"a": ["x"], "b": ["y"], "verdict": ["maybe"]}).to_csv(reviewed, index=False)
    code, _, err = run_cli(capsys, "fit", "--data", str(small_synthetic), "--reviewed",
                           str(reviewed), "--out", str(tmp_path / "rule.json"))
    assert code == 2 and "line 2: verdict 'maybe'" in err and "Traceback" not in err


def test_random_pairs_take_what_exists_and_say_how_many(capsys):
    import numpy as np

    from bench.core.errors import console_logging
    from bench.data.pairs import random_pairs

    rng = np.random.default_rng(0)
    taken = {(0, 1), (0, 2), (1, 2), (0, 3)}  # 6 images: 15 pairs, 11 free
    with console_logging():
        pairs = random_pairs(6, taken, 20, rng)
    assert len(pairs) == 11 == len(set(pairs)) and not set(pairs) & taken
    assert all(0 <= i < j < 6 for i, j in pairs)
    assert "only 11 pairs outside the candidate pairs" in capsys.readouterr().out
    everything = {(i, j) for i in range(4) for j in range(i + 1, 4)}
    assert random_pairs(4, everything, 20, rng) == [] and random_pairs(1, set(), 20, rng) == []
    assert len(random_pairs(50, set(), 20, rng)) == 20  # enough pairs: exactly as many as asked


@pytest.mark.slow
def test_sample_on_a_set_too_small_for_the_random_pairs_ends(tmp_path):
    import subprocess
    import sys

    from tests.helpers import write_image

    for cls in ("benign", "malignant"):  # 6 images: every pair is a candidate, none is free
        for i in range(3):
            write_image(tmp_path / "d" / cls / f"{cls}_{i}.png", seed=i + 10 * len(cls),
                        size=(96, 80))
    done = subprocess.run([sys.executable, "-m", "bench.pairs", "sample", "--data",
                           str(tmp_path / "d"), "--out", str(tmp_path / "pairs")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "0 random pairs instead of 20" in done.stdout
    pairs = pd.read_csv(tmp_path / "pairs.csv", keep_default_na=False)
    assert len(pairs) == 15 and not (pairs.drawn_by == "random pair").any()


@pytest.mark.parametrize("option, value", [("--random", "-1"), ("--seed", "-1"),
                                           ("--per-bin", "-2"), ("--neighbours", "0")])
def test_a_bad_sample_option_is_exit_2_naming_it(capsys, tmp_path, option, value):
    code, _, err = run_cli(capsys, "sample", "--out", str(tmp_path / "p"), option, value)
    assert code == 2 and f"{option} must be an integer" in err
