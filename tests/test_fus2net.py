"""Fus2Net matches the reconstruction of docs/protocol.md, Fus2Net reconstruction: stage shapes, size, cost and L2 term."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from models import create_model, get_model_config, list_models


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_model("fus2net").eval()


def test_stage_output_shapes_follow_spec_table(net):
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        s = net.stem(x)
        m1 = net.block1[0](s)
        m2 = net.block1[1](m1)
        m3 = net.block1[2](m2)
        b2 = net.block2(m3)
        out = net.forward_head(b2)
    assert s.shape[1:] == (64, 147, 147)
    assert m1.shape[1:] == (160, 73, 73)
    assert m2.shape[1:] == (192, 71, 71)
    assert m3.shape[1:] == (384, 35, 35)
    assert b2.shape[1:] == (384, 35, 35)
    assert out.shape == (1, 2)


def test_parameter_count_is_about_one_million(net):
    n = sum(p.numel() for p in net.parameters())
    assert 0.9e6 < n < 1.1e6, n


def test_flops_at_299_are_about_4_9_g(net):
    # conv + linear multiply-adds × 2; our count is ~5.3 G, the reconstruction's estimate is "about 4.9 G"
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.randn(1, 3, 299, 299))
    assert 4.4e9 < counter.get_total_flops() < 5.6e9


def test_batchnorm_uses_keras_defaults(net):
    bn = net.stem[0][1]
    assert bn.eps == pytest.approx(1e-3) and bn.momentum == pytest.approx(0.01)


def test_l2_penalty_is_keras_l2_on_first_fc_only(net):
    expected = 0.05 * net.fc1.weight.pow(2).sum()
    assert torch.allclose(net.regularization_loss(), expected)
    assert create_model("fus2net", l2=0.0).regularization_loss().item() == 0.0


def test_single_channel_variant_and_backward_pass():
    net = create_model("fus2net", in_chans=1)
    out = net(torch.randn(2, 1, 128, 128))
    out.sum().backward()
    assert net.stem[0][0].weight.grad is not None and out.shape == (2, 2)


def test_registry_lists_and_describes_fus2net():
    assert "fus2net" in list_models()
    cfg = get_model_config("fus2net")
    assert cfg.input_size == 299 and cfg.recipe.optimizer == "adam" and cfg.recipe.epochs == 53
