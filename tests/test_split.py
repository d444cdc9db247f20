"""Split protocol (docs/protocol.md, Images that belong together; Held-out test and cross-validation): duplicates grouped, conflicts excluded, 50/50 test, no leakage."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.core.errors import BenchError
from bench.data.datasets import load_index
from bench.data.manifest import (
    SplitConfig,
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
