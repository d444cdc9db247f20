"""``bench.evaluation.illustrate``: the report's preprocessing and augmentation figures come from a run's own
training images and the engines' own augmentation; deterministic ``.npz`` tables."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bench.core.atomic import write_npz
from bench.data.augment import AugmentConfig
from bench.evaluation.illustrate import augmentation_views, illustrate_run, training_examples
from bench.reporting.runs import load_runs
from tests.helpers import SMOKE, run_main


def test_examples_are_the_first_training_image_of_each_class():
    split = pd.DataFrame({"id": ["b2", "b1", "m9", "m1", "t0"], "label": [0, 0, 1, 1, 1],
                          "split": ["train", "train", "train", "excluded", "test"],
                          "path": ["x"] * 5})
    assert list(training_examples(split).id) == ["b1", "m9"]


def test_augmentation_views_follow_the_ranges_and_the_seed():
    img = torch.randint(0, 255, (3, 48, 48), generator=torch.Generator().manual_seed(0),
                        dtype=torch.uint8)
    cfg = AugmentConfig()
    views, params = augmentation_views(img, cfg, 6, seed=3)
    again, params2 = augmentation_views(img, cfg, 6, seed=3)
    assert views.shape == (6, 3, 48, 48) and views.dtype == np.uint8
    assert np.array_equal(views, again) and np.array_equal(params, params2)
    assert (np.abs(params[:, 0]) <= cfg.rotation_deg).all()
    assert (np.abs(params[:, 1]) <= cfg.shear_deg).all()
    assert (np.abs(params[:, 2:4]) <= cfg.shift).all()
    assert ((params[:, 5] >= cfg.brightness[0]) & (params[:, 5] <= cfg.brightness[1])).all()


def test_npz_tables_are_byte_identical_across_writes(tmp_path):
    arrays = {"b": np.arange(6, dtype=np.float16).reshape(2, 3), "a|x": np.array(["id1", "id2"])}
    write_npz(tmp_path / "one.npz", arrays)
    write_npz(tmp_path / "two.npz", dict(reversed(arrays.items())))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with np.load(tmp_path / "one.npz") as z:
        assert np.array_equal(z["b"], arrays["b"]) and list(z["a|x"]) == ["id1", "id2"]


@pytest.mark.slow
def test_a_run_is_illustrated_from_its_own_training_images(small_synthetic, tmp_path, capsys):
    code, _, err = run_main(capsys, "--model", "fus2net", "--data", str(small_synthetic),
                            "--out", str(tmp_path), *SMOKE)
    assert code == 0, err
    (run,) = load_runs(tmp_path)
    path = illustrate_run(run)
    split = pd.read_csv(run.path / "split.csv")
    with np.load(path) as z:
        ids = list(z["ids"])
        assert set(ids) <= set(split.id[split.split == "train"])
        assert z["benign/resized"].shape == (64, 64)
        norm = z["malignant/normalized"].astype(np.float32)
        assert abs(norm.mean()) < 1e-2 and abs(norm.std() - 1) < 1e-2  # paper Eq. 1
        assert z["benign/augmented"].shape[0] == z["benign/params"].shape[0] == 5
        assert json.loads(str(z["ranges"]))["rotation_deg"] == AugmentConfig().rotation_deg


def test_each_ultrasound_transform_is_shown_alone_at_the_training_size():
    from bench.evaluation.illustrate import ultrasound_views

    img = torch.full((3, 48, 48), 120, dtype=torch.uint8)
    names, views = ultrasound_views(img)
    assert views.shape == (len(names), 3, 48, 48) and views.dtype == np.uint8
    assert len(set(names)) == len(names) == 11
    shown = dict(zip(names, views, strict=True))
    assert (shown["gain +3 dB"] > 120).all() and (shown["gain -3 dB"] < 120).all()
    assert shown["border 8%"][0, 0, 0] == 0 and shown["border 8%"][0, 24, 24] == 120


@pytest.mark.slow
def test_the_ultrasound_transforms_figure_is_drawn_from_the_arrays(tmp_path):
    from bench.evaluation.illustrate import ultrasound_views
    from bench.reporting.sections.illustrations import ultrasound_figure

    img = torch.full((3, 48, 48), 120, dtype=torch.uint8)
    names, views = ultrasound_views(img)
    grey = {"benign/display": img[0].numpy(), "malignant/display": img[0].numpy(),
            "benign/ultrasound": views[:, 0], "malignant/ultrasound": views[:, 0],
            "ultrasound_names": np.array(names)}
    (png,) = [p for p in ultrasound_figure(grey, tmp_path / "fig") if p.suffix == ".png"]
    assert png.stat().st_size > 0
