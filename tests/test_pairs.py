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


@pytest.mark.timeout(120)  # "ends": a loop that never finds its random pairs fails here
def test_sample_on_a_set_too_small_for_the_random_pairs_ends(tmp_path, capsys):
    from tests.helpers import write_image

    for cls in ("benign", "malignant"):  # 6 images: every pair is a candidate, none is free
        for i in range(3):
            write_image(tmp_path / "d" / cls / f"{cls}_{i}.png", seed=i + 10 * len(cls),
                        size=(96, 80))
    code, out, err = run_cli(capsys, "sample", "--data", str(tmp_path / "d"), "--out",
                             str(tmp_path / "pairs"))
    assert code == 0, err
    assert "0 random pairs instead of 20" in out
    pairs = pd.read_csv(tmp_path / "pairs.csv", keep_default_na=False)
    assert len(pairs) == 15 and not (pairs.drawn_by == "random pair").any()


@pytest.mark.parametrize("option, value", [("--random", "-1"), ("--seed", "-1"),
                                           ("--per-bin", "-2"), ("--neighbours", "0")])
def test_a_bad_sample_option_is_exit_2_naming_it(capsys, tmp_path, option, value):
    code, _, err = run_cli(capsys, "sample", "--out", str(tmp_path / "p"), option, value)
    assert code == 2 and f"{option} must be an integer" in err


# --- the second look ---------------------------------------------------------------------------


def _evidence_stub(ids_labels, candidates, probs):
    """An :class:`~bench.data.pairs.Evidence` stand-in: images, candidate pairs and a feature per
    candidate that the stub rule below maps straight to p(same lesion)."""
    from types import SimpleNamespace

    import numpy as np

    samples = [SimpleNamespace(id=i, label=lab) for i, lab in ids_labels]
    cand = np.array(candidates, dtype=int).reshape(-1, 2)
    p_of = {tuple(c): p for c, p in zip(candidates, probs, strict=True)}
    return SimpleNamespace(samples=samples, candidates=cand,
                           features=lambda pairs: np.array([[p_of[tuple(q)]] for q in
                                                            pairs.tolist()]))


class _RuleStub:
    def probability(self, x):
        return x[:, 0]


def test_near_numbers_pairs_one_class_within_the_gap_only():
    from bench.data.pairs import near_numbers

    ev = _evidence_stub([("benign (1)", 0), ("benign (2)", 0), ("benign (5)", 0),
                         ("malignant (3)", 1), ("benign (4)", 0)], [], [])
    got = {(ev.samples[i].id, ev.samples[j].id) for i, j in near_numbers(ev, 3)}
    assert got == {("benign (1)", "benign (2)"), ("benign (1)", "benign (4)"),
                   ("benign (2)", "benign (5)"), ("benign (2)", "benign (4)"),
                   ("benign (5)", "benign (4)")}  # never across classes, never more than 3 apart
    assert near_numbers(ev, 0) == []


def test_the_second_look_draws_near_numbers_and_the_band_but_nothing_judged_before():
    from bench.data.pairs import recheck_pairs

    ids = [("benign (1)", 0), ("benign (2)", 0), ("benign (9)", 0), ("benign (30)", 0),
           ("malignant (2)", 1)]
    # candidates: (0,2) p 0.2 in the band; (2,3) p 0.05 below it; (0,3) p 0.3 not below 0.3;
    # (0,1) p 0.15 both near and in the band
    ev = _evidence_stub(ids, [(0, 2), (2, 3), (0, 3), (0, 1)], [0.2, 0.05, 0.3, 0.15])
    fresh = recheck_pairs(ev, _RuleStub(), pd.DataFrame({"a": [], "b": [], "verdict": []}), 3,
                          (0.1, 0.3), seed=0)
    why = {frozenset((a, b)): w for a, b, w in zip(fresh.a, fresh.b, fresh.drawn_by, strict=True)}
    assert why == {frozenset({"benign (1)", "benign (9)"}): "rule p in [0.1, 0.3)",
                   frozenset({"benign (1)", "benign (2)"}):
                       "file numbers 1 apart; rule p in [0.1, 0.3)"}
    assert sorted(fresh.pair) == [1, 2] and (fresh.verdict == "").all()
    judged = pd.DataFrame({"a": ["benign (9)"], "b": ["benign (1)"], "verdict": ["different"],
                           "pair": [41]})  # judged before, in the other order
    got = recheck_pairs(ev, _RuleStub(), judged, 3, (0.1, 0.3), seed=0, first=42)
    assert list(zip(got.pair, got.a, got.b, strict=True)) == [(42, "benign (1)", "benign (2)")]


def test_the_second_look_sheets_show_no_file_name(tmp_path, monkeypatch):
    import bench.data.review as review
    from bench.data.index import DataIndex, Sample
    from tests.helpers import write_image

    for name in ("benign (1)", "benign (2)"):
        write_image(tmp_path / "d" / "benign" / f"{name}.png", seed=1, size=(64, 48))
    index = DataIndex(root=tmp_path / "d", kind="folder", samples=[
        Sample(id=n, path=f"benign/{n}.png", label=0) for n in ("benign (1)", "benign (2)")])
    captions = []
    real = review.tile_pairs
    monkeypatch.setattr(review, "tile_pairs", lambda rows, out, per, stem: captions.extend(
        c for row in rows for _, _, c in row) or real(rows, out, per, stem))
    sheets = review.pair_sheets(index, [(7, "benign (1)", "benign (2)")], tmp_path / "s",
                                hide_names=True)
    assert captions == ["pair 7: A", "pair 7: B"] and len(sheets) == 1 and sheets[0].exists()


@pytest.mark.parametrize("band", ["0.3,0.1", "x", "0.1", "-0.1,0.2"])
def test_a_bad_band_is_exit_2_naming_it(capsys, tmp_path, band):
    code, _, err = run_cli(capsys, "recheck", "--out", str(tmp_path / "p"), "--reviewed",
                           str(tmp_path / "r.csv"), "--band", band)
    assert code == 2 and "--band" in err


def _write(path, text):
    path.write_text(text)
    return path


def test_adding_verdicts_says_agreement_only_where_two_judges_judged(tmp_path, capsys):
    reviewed = _write(tmp_path / "reviewed.csv",
                      "pair,a,b,verdict,judges,judges_agree\n"
                      "1,x (1),x (9),same,J1,True\n2,x (2),x (8),different,J1+J2,True\n")
    key = _write(tmp_path / "key.csv", "pair,a,b,drawn_by,rule_p\n"
                 "3,x (3),x (4),file numbers 1 apart,0\n4,x (5),x (6),file numbers 1 apart,0\n"
                 "5,x (6),x (7),rule p in [0.1 0.3),0.2\n6,x (7),x (9),file numbers 2 apart,0\n")
    j1 = _write(tmp_path / "j1.csv", "pair,verdict,confidence,reason\n3,same,high,one mass\n"
                "4,different,high,other tissue\n5,same,medium,alike\n")
    j2 = _write(tmp_path / "j2.csv", "pair,verdict,confidence,reason\n4,different,high,no\n"
                "5,different,low,unlike\n")
    code, out, err = run_cli(capsys, "add", "--reviewed", str(reviewed), "--key", str(key),
                             "--verdicts", f"A={j1},B={j2}")
    assert code == 0, err
    assert "added 3 judged pairs" in out  # pair 6 was judged by nobody: not added
    got = pd.read_csv(reviewed, dtype=str, keep_default_na=False).set_index("pair")
    assert got.loc["1", "judges_agree"] == "" and got.loc["2", "judges_agree"] == "True"
    assert got.loc["3", ["verdict", "judges", "judges_agree", "round"]].tolist() == \
        ["same", "A", "", "2"]
    assert got.loc["4", ["verdict", "judges_agree"]].tolist() == ["different", "True"]
    assert got.loc["5", ["verdict", "judges_agree", "judge_verdict"]].tolist() == \
        ["unsure", "False", "A:same; B:different"]  # a disagreement is unsure unless settled
    assert got.loc["1", "round"] == "1" and "6" not in got.index
    code, _, err = run_cli(capsys, "add", "--reviewed", str(reviewed), "--key", str(key),
                           "--verdicts", f"A={j1}")
    assert code == 2 and "added before" in err  # never added twice


def test_an_adjudication_settles_a_disagreement_and_a_foreign_pair_is_refused(tmp_path, capsys):
    reviewed = _write(tmp_path / "reviewed.csv", "pair,a,b,verdict\n1,x (1),x (9),same\n")
    key = _write(tmp_path / "key.csv", "pair,a,b,drawn_by,rule_p\n5,x (6),x (7),near,0\n")
    j1 = _write(tmp_path / "j1.csv", "pair,verdict,confidence,reason\n5,same,high,a\n")
    j2 = _write(tmp_path / "j2.csv", "pair,verdict,confidence,reason\n5,different,high,b\n")
    adj = _write(tmp_path / "adj.csv", "pair,verdict,note\n5,same,lead: one cyst in two planes\n")
    code, _, err = run_cli(capsys, "add", "--reviewed", str(reviewed), "--key", str(key),
                           "--verdicts", f"A={j1},B={j2}", "--adjudication", str(adj))
    assert code == 0, err
    got = pd.read_csv(reviewed, dtype=str, keep_default_na=False).set_index("pair")
    assert got.loc["5", ["verdict", "adjudication"]].tolist() == \
        ["same", "lead: one cyst in two planes"]
    stray = _write(tmp_path / "j3.csv", "pair,verdict,confidence,reason\n99,same,high,c\n")
    code, _, err = run_cli(capsys, "add", "--reviewed", str(reviewed), "--key", str(key),
                           "--verdicts", f"C={stray}")
    assert code == 2 and "pair 99 is not in the key" in err
    code, _, err = run_cli(capsys, "add", "--reviewed", str(reviewed), "--key", str(key),
                           "--verdicts", "nojudge")
    assert code == 2 and "--verdicts" in err


@pytest.mark.slow
def test_recheck_draws_the_second_look_on_blind_sheets_and_never_overwrites(small_synthetic,
                                                                          tmp_path, capsys):
    reviewed = _write(tmp_path / "reviewed.csv", "pair,a,b,verdict\n")
    code, out, err = run_cli(capsys, "recheck", "--data", str(small_synthetic), "--reviewed",
                             str(reviewed), "--out", str(tmp_path / "r2"), "--max-gap", "1",
                             "--band", "0.1,0.15")  # a narrow band: fewer sheets to encode
    assert code == 0, err
    key = pd.read_csv(tmp_path / "r2.csv", keep_default_na=False)
    assert len(key) > 0 and (key.verdict == "").all()
    assert key.drawn_by.str.contains("file numbers 1 apart|rule p in", regex=True).all()
    assert key.drawn_by.str.contains("file numbers 1 apart").any()
    assert key.drawn_by.str.contains("rule p in").any()
    assert len(list((tmp_path / "r2").glob("pairs_*.png"))) == -(-len(key) // 6)
    code, _, err = run_cli(capsys, "recheck", "--data", str(small_synthetic), "--reviewed",
                           str(reviewed), "--out", str(tmp_path / "r2"))
    assert code == 2 and "exists" in err
