"""Same-scene grouping (SPEC §3): re-framed shots of one lesion are one group; the guard refuses
manifests that split them."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from bench.data.datasets import load_index
from bench.data.manifest import (
    SplitConfig,
    check_leakage,
    fingerprints,
    make_split,
    read_manifest,
)
from bench.data.similarity import SAME_SCENE
from bench.errors import BenchError
from tests.helpers import BUSI

COMMITTED = Path(__file__).resolve().parents[1] / "datasets" / "splits" / "busi.csv"
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


def test_crop_shift_zoom_and_brightness_variants_are_grouped_with_their_source(with_reframed):
    manifest, report = make_split(load_index(with_reframed), SplitConfig(test_per_class=15, folds=4))
    groups = manifest.set_index("id").group
    assert {groups[v] for v in VARIANTS} == {groups[SOURCE]}
    assert report["same_scene"]["largest_group"]["with_same_scene"] == 5


def test_different_lesions_are_not_grouped(small_synthetic):
    fp = fingerprints(load_index(small_synthetic), skip_bad=False)
    assert fp.scenes.same_scene(SAME_SCENE).sum() == 0
    best = fp.scenes.ranked(1)[0]
    assert best[2] < SAME_SCENE.z_threshold


def test_guard_refuses_a_manifest_that_splits_a_reframed_pair(with_reframed):
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
    with pytest.raises(BenchError, match=r"show the same scene .* in train and test"):
        check_leakage(leaky, "m.csv", index)


@pytest.mark.skipif(not BUSI.is_dir(), reason="BUSI not available")
def test_committed_busi_manifest_keeps_reframed_lesions_together_and_stays_50_50():
    manifest = read_manifest(COMMITTED)
    test = manifest[manifest.split == "test"]
    assert (test.label == 0).sum() == 50 and (test.label == 1).sum() == 50
    check_leakage(manifest, str(COMMITTED), load_index(BUSI))
    by_id = manifest.set_index("id")
    for a, b in [("malignant (123)", "malignant (114)"), ("malignant (14)", "malignant (114)"),
                 ("malignant (8)", "malignant (6)"), ("malignant (4)", "malignant (6)"),
                 ("benign (119)", "benign (116)"), ("benign (141)", "benign (64)")]:
        assert by_id.group[a] == by_id.group[b], (a, b)
    sizes = manifest.groupby("group").size()
    assert sizes.max() <= 12 and np.isclose(len(manifest), 647)


def test_cross_contrast_matches_the_split_measure_for_images_of_the_reference_set():
    from bench.data.similarity import contrast_scores, cross_contrast
    rng = np.random.default_rng(0)
    sim = rng.uniform(0.2, 0.6, (8, 8))
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 1.0)
    sim[6, 2] = sim[2, 6] = 0.95  # new image 6 repeats reference image 2
    z = cross_contrast(sim, 6)
    assert z.shape == (2, 6) and np.argmax(z[0]) == 2 and z[0, 2] > 1.5
    # standardised over the reference only: unaffected by how unlike each other the new images are
    other = sim.copy()
    other[6, 7] = other[7, 6] = 0.0
    np.testing.assert_allclose(cross_contrast(other, 6), z)
    assert contrast_scores(sim).shape == (8, 8)
