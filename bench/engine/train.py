"""The training recipe engine: one loop for every model (docs/protocol.md, Training recipe and preprocessing).

Batches are sampled from an in-memory :class:`~bench.data.cache.ImageCache`, flipped/augmented and
normalised on the training device, and fed to the model with cross-entropy loss plus the model's
own explicit regulariser (Fus2Net: Keras ``l2(0.05)`` on the first FC layer). Optimisers use Keras
defaults (Adam/RMSprop lr 1e-3, ε 1e-7, RMSprop ρ 0.9; SGD lr 1e-2, no momentum). bf16 autocast is
used on CUDA only (it is ~7× slower on this CPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
from bench.data.cache import ImageCache
from bench.engine.device import autocast
from models.config import ModelConfig


@dataclass(frozen=True)
class KerasDefaults:
    """The optimisers' Keras default hyper-parameters (docs/protocol.md, Training recipe and preprocessing: "Adam with default parameters";
    Keras' epsilon is 1e-7, not PyTorch's 1e-8). Both engines read them from here."""

    lr: tuple[tuple[str, float], ...] = (("adam", 1e-3), ("rmsprop", 1e-3), ("sgd", 1e-2))
    betas: tuple[float, float] = (0.9, 0.999)
    rho: float = 0.9  # RMSprop's decay (PyTorch's ``alpha``)
    eps: float = 1e-7

    def learning_rate(self, optimizer: str, lr: float | None) -> float:
        rates = dict(self.lr)
        if optimizer not in rates:
            raise ValueError(f"unknown optimizer {optimizer!r}")
        return rates[optimizer] if lr is None else lr


KERAS = KerasDefaults()


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; carries where it happened."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss


@dataclass
class TrainOutcome:
    """What either engine returns for one model: epoch mean losses, or where it diverged."""

    history: list[float] = field(default_factory=list)
    diverged: TrainingDiverged | None = None


class BatchSchedule:
    """The recipe's data order for one model, which both engines follow (so a stacked member sees
    exactly the batches of a reference run with the same seed): each epoch a permutation of the
    training positions from the model's own generator, batches of ``batch_size`` in that order,
    and per batch the augmentation draws from the same generator."""

    def __init__(self, indices: np.ndarray, flips: np.ndarray, seed: int, batch_size: int,
                 augment: AugmentConfig | None) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.flips = torch.as_tensor(flips, dtype=torch.long)
        self.n, self.batch_size, self.augment = len(self.indices), batch_size, augment
        self.steps = math.ceil(self.n / batch_size)
        self.perm = torch.arange(self.n)

    def start_epoch(self) -> None:
        self.perm = torch.randperm(self.n, generator=self.gen)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, dict | None]:
        """Cache positions, flip codes and augmentation parameters of batch ``step``."""
        sel = self.perm[step * self.batch_size:(step + 1) * self.batch_size]
        params = (sample_params(len(sel), self.augment, self.gen)
                  if self.augment is not None else None)
        return self.indices[sel], self.flips[sel], params


def recipe_loss(logits: torch.Tensor, y: torch.Tensor, reg: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy in float32 plus the model's explicit regulariser (Fus2Net: Keras l2 on FC1)."""
    loss = F.cross_entropy(logits.float(), y)
    return loss if reg is None else loss + reg.float()


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int = 16
    optimizer: str = "adam"
    lr: float | None = None
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    channels_last: bool = True
    device: str = field(kw_only=True)  # always given: a default would hide a wrong device


def make_optimizer(name: str, params, lr: float | None, fused: bool = False) -> torch.optim.Optimizer:
    """Adam / RMSprop / SGD with Keras default hyper-parameters (fused Adam on CUDA)."""
    lr = KERAS.learning_rate(name, lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=KERAS.betas, eps=KERAS.eps,
                                fused=fused or None)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=KERAS.rho, eps=KERAS.eps)
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
                progress: bool = True,
                on_epoch: Callable[[int, nn.Module], None] | None = None) -> TrainOutcome:
    """Train ``model`` in place on ``cache[indices]`` (with flip codes), one batch at a time: the
    reference engine. A loss that becomes NaN/inf stops training (``outcome.diverged``).
    ``on_epoch(epoch, model)`` is called after each epoch (learning curves, :mod:`bench.jobs.sweep`);
    the learning rate is constant, so the model after epoch *e* is the model of an *e*-epoch run."""
    device = torch.device(settings.device)
    model = _prepare(model, device, settings.channels_last)
    opt = make_optimizer(settings.optimizer, [p for p in model.parameters() if p.requires_grad],
                         settings.lr, fused=device.type == "cuda")
    schedule = BatchSchedule(indices, flips, seed, settings.batch_size, settings.augment)
    reg = getattr(model, "regularization_loss", None)
    dtype = next(model.parameters()).dtype  # float32 normally; float64 in exactness tests
    outcome = TrainOutcome()
    bar = tqdm(range(settings.epochs), desc=desc, unit="epoch", leave=False, disable=not progress)
    for epoch in bar:
        model.train()
        schedule.start_epoch()
        total = 0.0
        for step in range(schedule.steps):
            src, codes, params = schedule.batch(step)
            x, y = training_batch(cache, src, codes, params, cfg, device, dtype)
            if settings.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device):
                logits = model(x)
            loss = recipe_loss(logits, y, reg() if reg is not None else None)
            if not torch.isfinite(loss):
                outcome.diverged = TrainingDiverged(epoch + 1, step + 1, float(loss.detach()))
                return outcome
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(src)
        outcome.history.append(total / schedule.n)
        bar.set_postfix(loss=f"{outcome.history[-1]:.4f}")
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
    return outcome


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, cfg: ModelConfig, cache: ImageCache,
                          indices: np.ndarray, flips: np.ndarray, device: str,
                          batch_size: int = 16, channels_last: bool = True) -> int:
    """Re-estimate the running mean and variance of every BatchNorm layer that trains, from the
    final weights: one pass in training mode over the training images (flipped copies included,
    no augmentation, batches of ``batch_size``), averaged over all batches (PyTorch's
    ``momentum=None``), the "precise BN" of Wu & Johnson (2021, *Rethinking "Batch" in BatchNorm*)
    and ``torch.optim.swa_utils.update_bn``. Running averages with Keras' momentum (0.99) lag weights
    that a constant learning rate keeps moving, which shifts every eval-mode prediction: on the
    phantom at 20 epochs Fus2Net called all 100 test images malignant (accuracy 0.50) and 0.82 after
    recalibration. Frozen layers (a backbone kept in eval mode) are left alone; the global RNG
    (dropout) is restored afterwards. Returns the number of layers re-estimated."""
    dev = torch.device(device)
    model = _prepare(model, dev, channels_last).train()
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
              and m.training and m.track_running_stats]
    if layers:
        momenta = [m.momentum for m in layers]
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
        dtype = next(model.parameters()).dtype
        idx = torch.as_tensor(indices, dtype=torch.long)
        codes = torch.as_tensor(flips, dtype=torch.long)
        with torch.random.fork_rng(devices=[]):
            for start in range(0, len(idx), batch_size):
                x, _ = training_batch(cache, idx[start:start + batch_size],
                                      codes[start:start + batch_size], None, cfg, dev, dtype)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(dev):
                    model(x)
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
    model.eval()
    return len(layers)


@torch.no_grad()
def predict(model: nn.Module, cfg: ModelConfig, cache: ImageCache, indices: np.ndarray,
            *, device: str, batch_size: int = 64, channels_last: bool = True) -> np.ndarray:
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
        with autocast(dev):
            logits = model(x).float()
        out.append(torch.softmax(logits, dim=1)[:, 1].cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)
