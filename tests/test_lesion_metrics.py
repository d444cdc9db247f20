"""Lesion-level metrics (bench.stats.lesion): one score per lesion, so photographing a lesion
more often changes the image-level AUC but not the lesion-level one."""

import math

import numpy as np
import pytest

from bench.stats.arrays import StatsInputError
from bench.stats.clustered import mann_whitney_auc
from bench.stats.lesion import lesion_metrics, lesion_scores
from bench.stats.stats import wilson_ci

Y = np.array([1, 1, 1, 0, 0, 0])
S = np.array([0.9, 0.4, 0.7, 0.6, 0.2, 0.3])  # AUC 8/9: only 0.4 < 0.6 is ranked wrong


def test_duplicated_images_change_the_image_auc_but_not_the_lesion_auc():
    groups = np.array(["a", "b", "c", "d", "e", "f"])
    # lesion b (malignant, score 0.4) and lesion d (benign, 0.6) photographed twice more, each
    # copy scored alike
    extra = [1, 3, 1, 3]
    y2 = np.r_[Y, Y[extra]]
    s2 = np.r_[S, S[extra]]
    g2 = np.r_[groups, groups[extra]]
    assert mann_whitney_auc(y2, s2) != pytest.approx(mann_whitney_auc(Y, S))
    one = lesion_metrics(Y, S, groups, n_boot=50)
    more = lesion_metrics(y2, s2, g2, n_boot=50)
    assert more.auc.estimate == one.auc.estimate == pytest.approx(mann_whitney_auc(Y, S))
    assert more.n_lesions == 6 and more.n_images == 10
    assert more.proportions["sensitivity"].estimate == one.proportions["sensitivity"].estimate


def test_a_lesion_score_is_the_mean_of_its_images_per_seed():
    s = np.vstack([S, S[::-1]])
    les = lesion_scores(Y, s, ["x", "x", "y", "z", "z", "w"])
    assert list(les.ids) == ["w", "x", "y", "z"]
    assert list(les.y) == [0, 1, 1, 0]
    assert list(les.n_images) == [1, 2, 1, 2]
    assert les.scores[0] == pytest.approx([0.3, 0.65, 0.7, 0.4])
    assert les.scores[1] == pytest.approx([0.9, 0.25, 0.6, 0.55])


def test_one_image_per_lesion_gives_the_image_metrics_with_plain_wilson_intervals():
    r = lesion_metrics(Y, S, np.arange(6), n_boot=50)
    sens = r.proportions["sensitivity"]  # 0.9, 0.7 at or above 0.5; 0.4 below
    assert sens.estimate == pytest.approx(2 / 3)
    assert (sens.lo, sens.hi) == pytest.approx(wilson_ci(2, 3), abs=1e-12)
    assert r.n_malignant == 3 and r.auc.note.startswith("one seed")


def test_a_group_with_both_labels_is_refused_naming_it():
    with pytest.raises(StatsInputError, match=r"group 'x' \(1 malignant, 1 benign\) holds both "
                                              "labels") as err:
        lesion_scores(Y, S, ["x", "b", "c", "x", "e", "f"])
    assert "\n" not in str(err.value)
    with pytest.raises(StatsInputError, match=r"groups 'x' .*, 'y' .* hold both labels"):
        lesion_scores(Y, S, ["x", "y", "c", "x", "y", "f"])


def test_lesion_metrics_say_why_a_value_is_undefined():
    r = lesion_metrics(np.ones(4, int), [0.2, 0.6, 0.7, 0.9], [0, 0, 1, 2], n_boot=20)
    assert math.isnan(r.auc.estimate) and "one class" in r.auc.note
    assert math.isnan(r.proportions["specificity"].estimate)
    assert "denominator" in r.proportions["specificity"].note
