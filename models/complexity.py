"""Model size and cost, measured the same way for every registered model."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameters of ``model`` (only those that train, with ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def gflops(model: nn.Module, channels: int, img_size: int) -> float:
    """Forward GFLOPs of one image (PyTorch's FLOP counter: 2 × multiply-adds of conv/linear)."""
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, channels, img_size, img_size))
    model.train(was_training)
    return counter.get_total_flops() / 1e9
