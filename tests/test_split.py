"""Split protocol (docs/protocol.md, Images that belong together; Held-out test and cross-validation): duplicates grouped, conflicts excluded, 50/50 test, no leakage."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.core.errors import BenchError
from bench.data.datasets import load_index
from bench.data.manifest import (
    SplitConfig,
    _pick_test,
    check_leakage,
    make_split,
    match_manifest,
    read_manifest,
)
from tests.helpers import BUSI

COMMITTED = Path(__file__).resolve().parents[1] / "datasets" / "splits" / "busi.csv"


@pytest.fixture()
def with_duplicates(synthetic_copy):
    """Phantom data plus exact duplicates (same class) and one cross-label duplicate."""
    b, m = synthetic_copy / "benign", synthetic_copy / "malignant"
    for i in range(5):
        shutil.copy(b / f"syn_benign_{i:04d}.png", b / f"dup_benign_{i:04d}.png")
    shutil.copy(m / "syn_malignant_0000.png", m / "dup_malignant_0000.png")
    shutil.copy(b / "syn_benign_0010.png", m / "conflict_0010.png")
    return synthetic_copy


def _groups_ok(manifest: pd.DataFrame) -> None:
    used = manifest[manifest.split != "excluded"]
    assert (used.groupby("group").split.nunique() == 1).all()
    train = used[used.split == "train"]
    assert (train.groupby("group").fold.nunique() == 1).all()


@pytest.mark.slow
def test_duplicate_groups_never_cross_train_test_or_folds(with_duplicates):
    index = load_index(with_duplicates)
    manifest, report = make_split(index, SplitConfig(test_per_class=15, folds=4))
    _groups_ok(manifest)
    groups = manifest.set_index("id").group
    for i in range(5):
        assert groups[f"dup_benign_{i:04d}"] == groups[f"syn_benign_{i:04d}"]
    assert len(report["duplicate_groups"]) >= 6


@pytest.mark.slow
def test_label_conflicts_are_excluded_and_reported(with_duplicates):
    manifest, report = make_split(load_index(with_duplicates), SplitConfig(test_per_class=15, folds=4))
    excluded = set(manifest[manifest.split == "excluded"].id)
    assert excluded == {"syn_benign_0010", "conflict_0010"}
    assert len(report["excluded_label_conflicts"]) == 1


@pytest.mark.slow
def test_test_set_is_balanced_and_folds_are_stratified(small_synthetic):
    manifest, report = make_split(load_index(small_synthetic), SplitConfig(test_per_class=20, folds=5))
    test = manifest[manifest.split == "test"]
    assert (test.label == 0).sum() == 20 and (test.label == 1).sum() == 20
    train = manifest[manifest.split == "train"]
    assert sorted(train.fold.unique()) == [0, 1, 2, 3, 4]
    assert (test.fold == -1).all()
    ratios = train.groupby("fold").label.mean()
    assert ratios.max() - ratios.min() < 0.25


@pytest.mark.slow
def test_split_is_deterministic_for_a_seed(small_synthetic):
    a, _ = make_split(load_index(small_synthetic), SplitConfig(test_per_class=20, folds=5))
    b, _ = make_split(load_index(small_synthetic), SplitConfig(test_per_class=20, folds=5))
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_too_few_images_for_the_held_out_test_is_a_clear_error(small_synthetic):
    with pytest.raises(BenchError, match="too few usable benign images"):
        make_split(load_index(small_synthetic), SplitConfig(test_per_class=61))


@pytest.mark.slow
def test_leaky_manifest_is_refused(small_synthetic):
    manifest, _ = make_split(load_index(small_synthetic), SplitConfig(test_per_class=20, folds=5))
    leaky = manifest.copy()
    test_group = leaky[leaky.split == "test"].group.iloc[0]
    leaky.loc[leaky.index[leaky.split == "train"][0], "group"] = test_group
    with pytest.raises(BenchError, match="both train and test"):
        check_leakage(leaky, "m.csv")
    two_folds = manifest.copy()
    tr = two_folds.index[two_folds.split == "train"]
    two_folds.loc[tr[1], "group"] = two_folds.loc[tr[0], "group"]
    two_folds.loc[tr[1], "fold"] = (two_folds.loc[tr[0], "fold"] + 1) % 5
    with pytest.raises(BenchError, match="two CV folds"):
        check_leakage(two_folds, "m.csv")
    repeated = pd.concat([manifest, manifest.iloc[:1]])
    with pytest.raises(BenchError, match="appears twice"):
        check_leakage(repeated, "m.csv")


@pytest.mark.slow
@pytest.mark.skipif(not BUSI.is_dir(), reason="BUSI not present in ../shared/data")
def test_committed_busi_manifest_matches_data_and_is_reproducible():
    index = load_index(BUSI)
    committed = read_manifest(COMMITTED)
    match_manifest(committed, index, "busi.csv")
    check_leakage(committed, "busi.csv")
    test = committed[committed.split == "test"]
    assert (test.label == 0).sum() == 50 and (test.label == 1).sum() == 50
    rebuilt, report = make_split(index, SplitConfig())
    pd.testing.assert_frame_equal(rebuilt.reset_index(drop=True), committed.reset_index(drop=True),
                                  check_dtype=False)
    # the known cross-label duplicate (datasets/cards/busi.md) is excluded
    assert set(committed[committed.split == "excluded"].id) >= {"benign (433)", "malignant (145)"}


# --- the command's checks: options, --out, and the held-out test's refusal ------------------


def split_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m bench.split`` as the command line sees it."""
    from bench.cli.split import main
    from tests.helpers import call_main

    return call_main(capsys, main, *args)


@pytest.fixture()
def no_split(monkeypatch):
    """Fails the test if the split is computed (the checks must come first)."""
    import bench.cli.split as cli

    def computed(*_a, **_k):
        raise AssertionError("the split was computed before the options were checked")

    monkeypatch.setattr(cli, "make_split", computed)


@pytest.mark.parametrize("option, value, said", [
    ("--seed", "-1", "--seed must be an integer >= 0, not '-1'"),
    ("--hash-threshold", "-5", "--hash-threshold must be an integer >= 0 and < 257, not '-5'"),
    ("--hash-threshold", "300", "--hash-threshold must be an integer >= 0 and < 257"),
    ("--folds", "1", "--folds must be an integer >= 2"),
    ("--test-per-class", "0", "--test-per-class must be an integer > 0"),
])
def test_a_bad_split_option_is_exit_2_and_one_line_naming_it(capsys, tmp_path, no_split, option,
                                                             value, said):
    code, _, err = split_cli(capsys, "--out", str(tmp_path / "s.csv"), option, value)
    assert code == 2 and said in err and "Traceback" not in err


def test_an_unwritable_out_is_said_before_the_split_is_computed(capsys, tmp_path, no_split,
                                                                 tiny_synthetic):
    blocker = tmp_path / "file"  # a folder under a regular file cannot be made, even as root
    blocker.write_text("x")
    code, _, err = split_cli(capsys, "--data", str(tiny_synthetic), "--out",
                             str(blocker / "sub" / "s.csv"))
    assert code == 2 and f"--out {blocker / 'sub'}: cannot write there" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_out_folder_is_said_before_the_split_is_computed(capsys, tmp_path, no_split,
                                                                     tiny_synthetic):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, _, err = split_cli(capsys, "--data", str(tiny_synthetic), "--out",
                                 str(folder / "s.csv"))
    finally:
        folder.chmod(0o755)
    assert code == 2 and "cannot write there (Permission denied)" in err


def test_out_naming_a_folder_is_said_as_out_even_with_force(capsys, tmp_path, no_split):
    code, _, err = split_cli(capsys, "--out", str(tmp_path), "--force")
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "--split" not in err
    assert f"--out {tmp_path}: is a folder; give the manifest's file name" in lines[0]


def test_an_existing_manifest_without_force_is_refused_before_any_work(capsys, tmp_path, no_split):
    (tmp_path / "s.csv").write_text("x\n")
    code, _, err = split_cli(capsys, "--out", str(tmp_path / "s.csv"))
    assert code == 2 and "manifest exists; pass --force" in err


@pytest.mark.slow
def test_force_replaces_a_file_that_is_not_a_manifest(capsys, tmp_path, tiny_synthetic):
    out = tmp_path / "s.csv"
    out.write_text("not,a\nmanifest,at all\n")
    code, _, err = split_cli(capsys, "--data", str(tiny_synthetic), "--out", str(out), "--force",
                             "--test-per-class", "4", "--folds", "2")
    assert code == 0, err
    assert list(read_manifest(out).columns) == ["id", "path", "label", "group", "split", "fold"]
    report = json.loads((tmp_path / "s_report.json").read_text())
    assert "not a readable manifest" in report["replaced_manifest"]["note"]


def _groups(sizes: dict[int, list[int]]) -> tuple[dict[int, list[int]], np.ndarray]:
    """Groups of the given sizes per label (0, 1), as _pick_test takes them."""
    groups, labels, k = {}, [], 0
    for label, sizes_of in sizes.items():
        for size in sizes_of:
            groups[len(groups)] = list(range(k, k + size))
            labels += [label] * size
            k += size
    return groups, np.array(labels)


def test_groups_that_cannot_make_the_test_size_are_not_called_too_few():
    groups, labels = _groups({0: [3, 3, 3, 3], 1: [1] * 12})  # 12 usable benign, 10 asked
    with pytest.raises(BenchError) as exc:
        _pick_test(groups, labels, 10, np.random.default_rng(0))
    message = str(exc.value)
    assert "too few usable" not in message
    assert "cannot hold out exactly 10 benign images as whole groups: the 12 usable benign " \
           "images form 4 groups" in message and "no set of whole groups adds up to 10" in message


def test_too_few_usable_images_says_how_many_there_are():
    groups, labels = _groups({0: [1] * 8, 1: [1] * 12})
    with pytest.raises(BenchError, match=r"too few usable benign images .*\(only 8 after"):
        _pick_test(groups, labels, 10, np.random.default_rng(0))


@pytest.mark.parametrize("seed", range(6))
def test_whole_groups_that_can_make_the_test_size_are_found(seed):
    groups, labels = _groups({0: [4, 3, 3], 1: [2, 2, 2]})  # a greedy 4 first misses 3 + 3
    test = _pick_test(groups, labels, 6, np.random.default_rng(seed))
    assert sorted(len(groups[g]) for g in test if labels[groups[g][0]] == 0) == [3, 3]
