"""Same-lesion grouping (docs/protocol.md, "Same lesion"): re-framed shots of one lesion are one
group, weak chains do not snowball, reviewed pairs decide, and the guard refuses manifests that
split a group."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from bench.core.errors import BenchError
from bench.data.datasets import load_index
from bench.data.lesion import FEATURES, LesionRule, PairEvidence, lesion_groups, load_rule
from bench.data.manifest import (
    SplitConfig,
    check_leakage,
    make_split,
    read_manifest,
    reviewed_links,
)
from tests.helpers import BUSI

SPLITS = Path(__file__).resolve().parents[1] / "datasets" / "splits"
SOURCE = "syn_malignant_0003"
VARIANTS = ("v_crop", "v_shift", "v_zoom", "v_bright")


@pytest.fixture()
def with_reframed(synthetic_copy) -> Path:
    """The phantom plus a crop, a shift, a zoom and a brightness change of one malignant image."""
    folder = synthetic_copy / "malignant"
    im = Image.open(folder / f"{SOURCE}.png")
    w, h = im.size
    im.crop((int(0.08 * w), int(0.06 * h), w, h)).save(folder / "v_crop.png")
    im.crop((int(0.05 * w), 0, w, h - int(0.05 * h))).resize((w, h)).save(folder / "v_shift.png")
    im.crop((int(0.1 * w), int(0.1 * h), int(0.9 * w), int(0.9 * h))).resize((w, h)).save(
        folder / "v_zoom.png")
    ImageEnhance.Brightness(im).enhance(1.3).save(folder / "v_bright.png")
    return synthetic_copy


def unit_rule(**kw) -> LesionRule:
    """A rule whose p is the logistic of the first feature (the others weigh nothing)."""
    n = len(FEATURES)
    return LesionRule(coef=(1.0,) + (0.0,) * (n - 1), intercept=0.0, mean=(0.0,) * n,
                      scale=(1.0,) * n, **kw)


def evidence(n: int, links: dict[tuple[int, int], float]) -> PairEvidence:
    """Candidate pairs whose first feature is the logit of the given p."""
    pairs = np.array(sorted(links), dtype=int).reshape(-1, 2)
    feats = np.zeros((len(pairs), len(FEATURES)))
    feats[:, 0] = [np.log(p / (1 - p)) for p in (links[tuple(k)] for k in pairs.tolist())]
    return PairEvidence(n, pairs, feats)


@pytest.mark.slow
def test_crop_shift_zoom_and_brightness_variants_are_grouped_with_their_source(with_reframed):
    manifest, report = make_split(load_index(with_reframed), SplitConfig(test_per_class=15, folds=4))
    groups = manifest.set_index("id").group
    assert {groups[v] for v in VARIANTS} == {groups[SOURCE]}
    assert report["same_lesion"]["average_linkage"]["largest_group"] >= 5


@pytest.mark.slow
def test_independent_phantom_lesions_are_rarely_linked(small_synthetic):
    _, report = make_split(load_index(small_synthetic), SplitConfig(test_per_class=20, folds=5))
    lesion = report["same_lesion"]
    # 120 independently drawn lesions: at most a few look-alike pairs, no chains, no conflicts
    assert lesion["pairs_called_same"] <= 6 and lesion["average_linkage"]["largest_group"] <= 2
    assert not report["excluded_label_conflicts"]


def test_a_chain_of_weak_links_does_not_snowball_under_average_linkage():
    # 0-1-2-3-4-5: each image linked to the next only (p 0.6); no other evidence
    ev = evidence(6, {(k, k + 1): 0.6 for k in range(5)})
    rule, hard = unit_rule(linkage=0.5), np.arange(6)
    assert len(set(lesion_groups(ev, rule, hard, method="single"))) == 1  # single linkage chains
    groups = lesion_groups(ev, rule, hard)
    assert max(np.bincount(groups)) == 2  # average linkage keeps pairs, not the chain
    # a tight clique of three with one weak outsider: the clique groups, the outsider does not
    ev = evidence(4, {(0, 1): 0.9, (0, 2): 0.9, (1, 2): 0.9, (2, 3): 0.6})
    groups = lesion_groups(ev, rule, np.arange(4))
    assert groups[0] == groups[1] == groups[2] != groups[3]


def test_same_picture_links_always_group_and_a_pair_judged_different_is_unlinked():
    ev = evidence(4, {(2, 3): 0.95})
    hard = np.array([0, 0, 2, 3])  # images 0 and 1 are the same picture
    rule = unit_rule(linkage=0.5)
    groups = lesion_groups(ev, rule, hard)
    assert groups[0] == groups[1] and groups[2] == groups[3]
    groups = lesion_groups(ev, rule, hard, unlinked=[(2, 3)])
    assert groups[2] != groups[3]


def test_reviewed_pairs_apply_only_to_the_data_set_they_were_judged_on_and_unsure_is_the_rule_s(
        tmp_path):
    from bench.data.index import Sample
    samples = [Sample(id=i, path=f"{i}.png", label=0) for i in ("a", "b", "c", "d")]
    pd.DataFrame({"a": ["a", "c", "a"], "b": ["b", "d", "d"],
                  "verdict": ["same", "unsure", "different"]}).to_csv(
        tmp_path / "mine_pairs_reviewed.csv", index=False)
    same, different = reviewed_links("mine", samples, tmp_path)
    assert same == [(0, 1)] and different == [(0, 3)]  # ("c", "d") unsure: the rule decides
    assert reviewed_links("mine", samples[:3], tmp_path) == ([], [])  # "d" is not in this data
    assert reviewed_links("other", samples, tmp_path) == ([], [])


@pytest.mark.slow
def test_guard_refuses_a_manifest_that_splits_a_reframed_group(with_reframed):
    index = load_index(with_reframed)
    manifest, _ = make_split(index, SplitConfig(test_per_class=15, folds=4))
    check_leakage(manifest, "m.csv", index)  # its own split passes
    leaky = manifest.copy()
    src = leaky.index[leaky.id == SOURCE][0]
    other_split = "train" if leaky.at[src, "split"] == "test" else "test"
    for v in VARIANTS:
        row = leaky.index[leaky.id == v][0]
        leaky.loc[row, ["split", "group", "fold"]] = [other_split, f"own_{v}",
                                                      0 if other_split == "train" else -1]
    with pytest.raises(BenchError, match=r"belong to one same-lesion group .* in train and test"):
        check_leakage(leaky, "m.csv", index)


def test_the_committed_rule_is_validated_and_reads_back():
    rule = load_rule()
    v = rule.validation
    assert v["verdicts"]["same"] >= 50 and v["reviewed_pairs"] >= 200

    def f1(r: dict) -> float:
        return 2 * r["precision"] * r["recall"] / (r["precision"] + r["recall"])

    # the grouping threshold is the one with the best cross-validated F1 of those measured
    best = v["pairs"][f"threshold {rule.threshold:g}"]
    assert f1(best) == max(f1(r) for r in v["pairs"].values())
    assert best["precision"] >= 0.7 and v["groups_average_linkage"]["precision"] >= 0.85
    # average linkage keeps the largest group small where single linkage snowballs
    assert v["groups_average_linkage"]["largest_group_over_folds"][1] <= 12
    assert v["groups_single_linkage"]["largest_group_over_folds"][1] > 30
    assert np.all(np.asarray(rule.coef) > 0)  # more evidence, never less likely the same


def test_a_damaged_rule_file_is_one_line(tmp_path):
    bad = tmp_path / "rule.json"
    bad.write_text('{"coef": [1.0], "intercept": 0, "mean": [0], "scale": [1]}')
    with pytest.raises(BenchError, match="rule.json: cannot read the same-lesion rule"):
        load_rule(bad)


@pytest.mark.slow
@pytest.mark.skipif(not BUSI.is_dir(), reason="BUSI not available")
def test_committed_busi_manifest_keeps_every_reviewed_same_lesion_pair_together():
    manifest = read_manifest(SPLITS / "busi.csv")
    test = manifest[manifest.split == "test"]
    assert (test.label == 0).sum() == 50 and (test.label == 1).sum() == 50
    check_leakage(manifest, "busi.csv", load_index(BUSI))
    group = manifest.set_index("id").group
    reviewed = pd.read_csv(SPLITS / "busi_pairs_reviewed.csv", dtype=str)
    linked = reviewed[reviewed.verdict == "same"]
    assert len(linked) >= 150
    for a, b in zip(linked.a, linked.b, strict=True):
        assert group[a] == group[b], (a, b)
    # two views of one lesion named in the review of the previous split
    for a, b in [("malignant (24)", "malignant (25)"), ("malignant (139)", "malignant (207)"),
                 ("malignant (23)", "malignant (24)")]:
        assert group[a] == group[b], (a, b)
    kept = manifest[manifest.split != "excluded"]
    assert kept.groupby("group").size().max() <= 12 and len(manifest) == 647
