"""Balancing and augmentation (docs/protocol.md, The paper): training data only, documented ranges, exact flips."""

import math

import numpy as np
import pytest
import torch

from bench.data.augment import (
    HFLIP,
    VFLIP,
    AugmentConfig,
    affine_matrices,
    apply_flips,
    augment,
    flip_balance,
    sample_params,
    standardize,
)
from bench.data.datasets import load_index
from bench.data.manifest import SplitConfig, make_split
from bench.engine.protocol import stage_plan


def test_flip_balance_equalises_classes_with_h_and_v_flips():
    idx = np.arange(100)
    labels = np.array([0] * 70 + [1] * 30)
    out_idx, codes = flip_balance(idx, labels, np.random.default_rng(0))
    out_labels = labels[out_idx]
    assert (out_labels == 0).sum() == (out_labels == 1).sum() == 70
    added = out_idx[100:]
    assert set(codes[100:]) == {HFLIP, VFLIP} and (labels[added] == 1).all()
    assert (codes[:100] == 0).all()


@pytest.mark.slow
def test_flip_balance_never_touches_validation_or_test(small_synthetic):
    manifest, _ = make_split(load_index(small_synthetic), SplitConfig(test_per_class=20, folds=4))
    rows = manifest[manifest.split != "excluded"].reset_index(drop=True)
    labels = rows.label.to_numpy()
    for _name, train_pos, eval_pos in stage_plan(rows, 4):
        idx, codes = flip_balance(train_pos, labels[train_pos], np.random.default_rng(1))
        assert set(idx) <= set(train_pos)
        assert not set(idx) & set(eval_pos)
        assert not set(idx[codes > 0]) & set(np.nonzero((rows.split == "test").to_numpy())[0])


def test_flips_are_exact():
    x = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).view(2, 1, 3, 4)
    out = apply_flips(x, torch.tensor([HFLIP, VFLIP]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1].flip(-2))


def test_sampled_parameters_stay_in_documented_ranges():
    cfg = AugmentConfig()
    p = sample_params(4000, cfg, torch.Generator().manual_seed(0))
    assert p["angle"].abs().max() <= math.radians(cfg.rotation_deg) + 1e-6
    assert p["shear"].abs().max() <= math.radians(cfg.shear_deg) + 1e-6
    assert p["tx"].abs().max() <= cfg.shift and p["ty"].abs().max() <= cfg.shift
    assert 0.45 < p["flip"].float().mean() < 0.55
    assert p["brightness"].min() >= 0.8 and p["brightness"].max() <= 1.2
    assert abs(p["angle"].mean()) < 0.02


def test_identity_parameters_leave_the_image_unchanged():
    x = torch.rand(3, 3, 32, 32) * 255
    zeros = torch.zeros(3)
    p = {"angle": zeros, "shear": zeros, "tx": zeros, "ty": zeros,
         "flip": torch.zeros(3, dtype=torch.bool), "brightness": torch.ones(3)}
    assert torch.allclose(augment(x.clone(), p), x, atol=1e-3)
    assert torch.allclose(affine_matrices(p), torch.eye(3)[:2].expand(3, 2, 3))


def test_augmented_images_keep_statistics_close_to_the_original():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 48, 48) * 200 + 20
    p = sample_params(64, AugmentConfig(), torch.Generator().manual_seed(1))
    y = augment(x.clone(), p)
    assert y.min() >= 0 and y.max() <= 255
    assert abs(y.mean() - x.mean()) / x.mean() < 0.05


def test_standardize_gives_zero_mean_unit_std_per_image():
    x = torch.rand(4, 3, 16, 16) * 100 + torch.arange(4).view(4, 1, 1, 1) * 30
    z = standardize(x).flatten(1)
    assert torch.allclose(z.mean(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(z.std(1, unbiased=False), torch.ones(4), atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_augmentation_matches_the_cpu_path():
    """The same batched code runs on both devices: same parameters give the same images."""
    x = torch.rand(32, 3, 64, 64) * 255
    p = sample_params(32, AugmentConfig(), torch.Generator().manual_seed(2))
    cpu = augment(x.clone(), p)
    gpu = augment(x.cuda(), p).cpu()
    assert (cpu - gpu).abs().mean() < 0.05 and (cpu - gpu).abs().max() < 2.0
    assert abs(float(standardize(gpu).std()) - float(standardize(cpu).std())) < 1e-3
