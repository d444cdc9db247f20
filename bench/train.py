"""The training recipe engine: one loop for every model (SPEC §1, Fus2Net training).

Batches are sampled from an in-memory :class:`~bench.data.loader.ImageCache`, flipped/augmented and
normalised on the training device, and fed to the model with cross-entropy loss plus the model's
own explicit regulariser (Fus2Net: Keras ``l2(0.05)`` on the first FC layer). Optimisers use Keras
defaults (Adam/RMSprop lr 1e-3, ε 1e-7, RMSprop ρ 0.9; SGD lr 1e-2, no momentum). bf16 autocast is
used on CUDA only (it is ~7× slower on this CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bench.data.augment import (
    AugmentConfig,
    apply_flips,
    augment,
    imagenet_normalize,
    sample_params,
    standardize,
)
from bench.data.loader import ImageCache
from models.config import ModelConfig

KERAS_LR = {"adam": 1e-3, "rmsprop": 1e-3, "sgd": 1e-2}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; carries where it happened."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int = 16
    optimizer: str = "adam"
    lr: float | None = None
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    device: str = "cpu"
    channels_last: bool = True


def make_optimizer(name: str, params, lr: float | None, fused: bool = False) -> torch.optim.Optimizer:
    """Adam / RMSprop / SGD with Keras default hyper-parameters (fused Adam on CUDA)."""
    lr = KERAS_LR[name] if lr is None else lr
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-7, fused=fused or None)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def normalize(x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """The model's input normalisation on a float batch in [0, 255]."""
    if cfg.normalization == "imagenet":
        return imagenet_normalize(x, cfg.mean, cfg.std)
    return standardize(x)


def _prepare(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def training_batch(cache: ImageCache, src: torch.Tensor, flips: torch.Tensor,
                   aug_params: dict[str, torch.Tensor] | None, cfg: ModelConfig,
                   device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``cache[src]`` on ``device``: flipped by code, augmented with ``aug_params`` (if
    any) and normalised for the model; with their labels. Shared by both training engines."""
    x = cache.images[src.to(cache.images.device)].to(device, non_blocking=True).to(dtype)
    x = apply_flips(x, flips.to(device))
    if aug_params is not None:
        x = augment(x, aug_params)
    return normalize(x, cfg), cache.labels[src.to(cache.labels.device)].to(device)


def train_model(model: nn.Module, cfg: ModelConfig, cache: ImageCache, indices: np.ndarray,
                flips: np.ndarray, settings: TrainSettings, seed: int, desc: str = "train",
                progress: bool = True) -> list[float]:
    """Train ``model`` in place on ``cache[indices]`` (with flip codes); returns epoch mean losses."""
    device = torch.device(settings.device)
    model = _prepare(model, device, settings.channels_last)
    opt = make_optimizer(settings.optimizer, [p for p in model.parameters() if p.requires_grad],
                         settings.lr, fused=device.type == "cuda")
    gen = torch.Generator().manual_seed(seed)
    idx_all = torch.as_tensor(indices, dtype=torch.long)
    flips_all = torch.as_tensor(flips, dtype=torch.long)
    reg = getattr(model, "regularization_loss", None)
    dtype = next(model.parameters()).dtype  # float32 normally; float64 in exactness tests
    history: list[float] = []
    n = len(idx_all)
    steps = math.ceil(n / settings.batch_size)
    bar = tqdm(range(settings.epochs), desc=desc, unit="epoch", leave=False, disable=not progress)
    for epoch in bar:
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for step in range(steps):
            sel = perm[step * settings.batch_size:(step + 1) * settings.batch_size]
            params = (sample_params(len(sel), settings.augment, gen)
                      if settings.augment is not None else None)
            x, y = training_batch(cache, idx_all[sel], flips_all[sel], params, cfg, device, dtype)
            if settings.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            if reg is not None:
                loss = loss + reg()
            if not torch.isfinite(loss):
                raise TrainingDiverged(epoch + 1, step + 1, float(loss.detach()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(sel)
        history.append(total / n)
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    return history


@torch.no_grad()
def predict(model: nn.Module, cfg: ModelConfig, cache: ImageCache, indices: np.ndarray,
            device: str = "cpu", batch_size: int = 64, channels_last: bool = True) -> np.ndarray:
    """P(malignant) for ``cache[indices]`` (no augmentation, eval mode)."""
    dev = torch.device(device)
    model = _prepare(model, dev, channels_last).eval()
    dtype = next(model.parameters()).dtype
    out = []
    idx = torch.as_tensor(indices, dtype=torch.long)
    for start in range(0, len(idx), batch_size):
        src = idx[start:start + batch_size]
        x = normalize(cache.images[src.to(cache.images.device)].to(dev).to(dtype), cfg)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(dev):
            logits = model(x).float()
        out.append(torch.softmax(logits, dim=1)[:, 1].cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)
