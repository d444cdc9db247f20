"""Test-time BatchNorm adaptation when scoring on another site (docs/protocol.md, "Closing the site
gap"): ``--adapt-bn target|source|none`` of ``bench.run --external`` and ``bench.score``.

* ``target`` (AdaBN, Li et al. 2016, *Revisiting Batch Normalization for Practical Domain
  Adaptation*): in a copy of the final model, the running mean and variance of every BatchNorm
  layer are re-estimated on the *unlabelled* external images that are then scored; weights and
  every other setting stay as trained. The function that does it is given the images only
  (:func:`adapt_batchnorm` takes a uint8 tensor), so it cannot read a label.
* ``source``: its control, the same re-estimation on the run's own training images (unflipped,
  unaugmented): what the procedure changes by itself, without anything of the target.
* ``none``: the model as trained (the external validation of the protocol).

Statistics are a cumulative average over batches of about ``batch_size`` images (PyTorch's
``momentum=None``, as :func:`bench.engine.train.recalibrate_batchnorm`), with every other layer in
evaluation mode (dropout off: the statistics of the inputs seen when scoring). Batches are split
evenly, so none has a single image.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from bench.core.errors import BenchError
from bench.engine.device import autocast
from bench.engine.train import normalize
from models.config import ModelConfig

ADAPT_BN = ("none", "target", "source")


def adaptation_folder(mode: str) -> str:
    """The subfolder of ``external/<set>/`` an adapted scoring writes (``none``: the set's own
    folder, so external validation as the protocol defines it keeps its place)."""
    check_mode(mode)
    return "" if mode == "none" else f"adapt-bn-{mode}"


def check_mode(mode: str) -> str:
    if mode not in ADAPT_BN:
        raise BenchError(f"`adapt_bn`={mode!r}: choose from {', '.join(ADAPT_BN)}")
    return mode


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer that keeps running statistics (frozen backbones' included: AdaBN
    adapts all of them)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, cfg: ModelConfig, images: torch.Tensor, *, device: str,
                    batch_size: int = 16, channels_last: bool = False) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are re-estimated on ``images``
    (uint8 N×C×H×W, the model's input size; no labels: none is passed). ``model`` itself is not
    changed. Returns the copy in evaluation mode."""
    dev = torch.device(device)
    adapted = copy.deepcopy(model).to(dev)
    if channels_last:
        adapted = adapted.to(memory_format=torch.channels_last)
    adapted.eval()
    layers = batchnorm_layers(adapted)
    if not layers or len(images) == 0:
        return adapted
    if len(images) < 2:
        raise BenchError("`adapt_bn`: BatchNorm statistics need at least 2 images")
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
        m.train()
    dtype = next(adapted.parameters()).dtype
    parts = np.array_split(np.arange(len(images)), max(1, -(-len(images) // batch_size)))
    with torch.random.fork_rng(devices=[]):
        for part in parts:
            src = torch.as_tensor(part, dtype=torch.long)
            x = normalize(images[src.to(images.device)].to(dev).to(dtype), cfg)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(dev):
                adapted(x)
    for m, momentum in zip(layers, momenta, strict=True):
        m.momentum = momentum
    return adapted.eval()


def adaptation_record(mode: str, images: int, layers: int, batch_size: int) -> dict:
    """What ``metrics.json`` records of an adapted scoring (absent for ``none``)."""
    return {"mode": mode, "images": images, "layers": layers, "batch_size": batch_size,
            "statistics_from": "the scored external images, unlabelled" if mode == "target"
            else "the run's training images (the control)", "labels_read": False}
