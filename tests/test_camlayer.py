"""Explanations at a resolution that means something (bench.evaluation.camlayer) and the explanation table
over images (bench.reporting.camtable)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from bench.evaluation.camlayer import CamLayer, choose_cam_layer
from bench.evaluation.explain import map_status
from bench.reporting.camtable import band_text, clustered_mean_ci, explanation_rows, per_image
from models import create_model, get_model_config


def _tiny(stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=stride, padding=1),
                         nn.Conv2d(4, 4, 3, stride=stride, padding=1),
                         nn.Conv2d(4, 4, 3, stride=stride, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_a_coarse_last_stage_is_replaced_by_the_deepest_stage_of_at_least_7x7():
    layer = choose_cam_layer(_tiny(2), "2", 64, 3)  # maps 32, 16, 8
    assert (layer.name, layer.size, layer.measurable) == ("2", "8x8", True)
    layer = choose_cam_layer(_tiny(2), "2", 32, 3)  # maps 16, 8, 4: the middle one
    assert (layer.name, layer.size, layer.configured) == ("1", "8x8", "2")
    layer = choose_cam_layer(_tiny(4), "2", 16, 3)  # maps 4, 1, 1: none fine enough
    assert (layer.name, layer.size, layer.measurable) == ("2", "1x1", False)


def test_fus2net_at_the_cpu_size_is_explained_at_a_12x12_stage():
    cfg = get_model_config("fus2net")
    model = create_model("fus2net", pretrained="none")
    layer = choose_cam_layer(model, cfg.cam_layer, 64, 3)
    assert layer.configured == "block2" and layer.name == "block1.1"
    assert layer.size == "12x12" and layer.measurable


def test_a_map_is_measured_empty_or_not_measurable():
    fine, coarse = CamLayer("a", 8, 8, "a"), CamLayer("a", 2, 2, "a")
    assert map_status(np.ones((64, 64)), fine) == "measured"
    assert map_status(np.zeros((64, 64)), fine) == "empty map"
    assert map_status(np.ones((64, 64)), coarse) == "not measurable"


def test_clustered_mean_interval_matches_a_hand_computation_and_ignores_copies():
    v = np.array([1.0, 3.0, 2.0, 6.0])
    g = np.array(["a", "a", "b", "c"])
    mean, lo, hi = clustered_mean_ci(v, g)
    # residuals -2, 0, -1, 3; cluster sums -2, -1, 3; G/(G-1) = 3/2
    se = math.sqrt(1.5 * (4 + 1 + 9)) / 4
    assert (mean, lo, hi) == pytest.approx((3.0, 3 - 1.959964 * se, 3 + 1.959964 * se))
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    one = clustered_mean_ci(x, np.arange(40))
    twice = clustered_mean_ci(np.r_[x, x], np.r_[np.arange(40), np.arange(40)])
    assert twice[2] - twice[1] == pytest.approx(one[2] - one[1], rel=0.02)
    assert clustered_mean_ci([0.0, 1.0, 1.0], ["a", "b", "c"], bounds=(0, 1))[2] == 1.0


def _frame(seed_shift: float, status: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": ["a", "b", "c", "d"], "label": [0, 0, 1, 1],
                         "prob_malignant": [0.2, 0.6, 0.7, 0.9], "predicted": [0, 1, 1, 1],
                         "correct": [True, False, True, True], "has_mask": True,
                         "pointing_hit": [1.0, 0.0, 1.0, 1.0],
                         "lesion_energy_ratio": [2.0, 1.0, 3.0, 4.0],
                         "frame_energy_ratio": np.array([1.5, 1.4, 1.6, 1.7]) + seed_shift,
                         "set": "test", "status": status, "map_size": "8x8", "layer": "l"})


def test_seeds_are_averaged_per_image_and_n_measured_is_counted_per_image():
    s0 = _frame(0.0, ["measured", "empty map", "measured", "measured"])
    s1 = _frame(0.2, ["measured", "empty map", "empty map", "measured"])
    img = per_image([s0, s1], {"test": {"a": "g1", "b": "g1", "c": "g2", "d": "g3"}})
    assert len(img) == 4  # images, not seeds × images
    assert list(img.status) == ["measured", "empty map", "measured", "measured"]
    assert img.frame_energy_ratio[0] == pytest.approx(1.6)  # mean of 1.5 and 1.7
    assert img.frame_energy_ratio[2] == pytest.approx(1.6)  # seed 1's empty map left out
    assert math.isnan(img.frame_energy_ratio[1]) and list(img.group) == ["g1", "g1", "g2", "g3"]


class _Run:
    def __init__(self, frame):
        self.frame = frame
        self.test = frame[["id"]].assign(group=["g1", "g1", "g2", "g3"])
        self.external = {}


def test_the_table_gives_n_measured_of_n_and_flags_border_energy():
    runs = [_Run(_frame(0.0, ["measured", "empty map", "measured", "measured"]))]
    t = explanation_rows([("m", runs)], lambda r: r.frame)
    row = t[t.images == "all"].iloc[0]
    assert (row.n, row.n_measured, row.n_empty) == (4, 3, 1)
    assert row.frame_energy_ratio == pytest.approx(1.6) and row.border_flag
    old = _frame(0.0, ["measured"] * 4).drop(columns=["status", "map_size", "layer"])
    t = explanation_rows([("m", [_Run(old)])], lambda r: r.frame)
    assert len(t) == 1 and t.n_measured.iloc[0] == 0 and t.unrecorded.iloc[0]
    assert "6 px at 64 px input, 34% of the image area" in band_text(64)


def test_gradcam_at_the_chosen_layer_gives_maps_at_the_input_size():
    from bench.evaluation.explain import gradcam
    model = create_model("zeimarani_cnn", pretrained="none").eval()
    layer = choose_cam_layer(model, get_model_config("zeimarani_cnn").cam_layer, 64, 3)
    maps = gradcam(model, layer.name, torch.randn(2, 3, 64, 64), torch.tensor([1, 1]))
    assert layer.measurable and maps.shape == (2, 64, 64)
