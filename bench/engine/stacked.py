"""Train several members of one architecture at once: the CV folds and the final fit (docs/protocol.md, Held-out test and cross-validation).

The reference engine (:func:`bench.engine.train.train_model`) trains one model at batch 16, which leaves a
large GPU mostly idle. Here K members (same architecture, different training sets, seeds and
initialisations) are *stacked* with :mod:`torch.func`: their parameters and buffers are stacked
along a new leading dimension and one ``vmap``-ed forward/backward trains all of them, so each
convolution becomes one grouped convolution over K models. Every member keeps the recipe exactly:

* its own batch of 16 from its own permutation, flip codes and augmentation draws, taken from its
  own generator in the same order as the reference engine (so the data each member sees is
  identical to a sequential run with the same seed);
* its own BatchNorm statistics (stacked buffers, updated in place per member);
* its own optimizer state and step count (:class:`StackedOptimizer`, PyTorch's Adam/RMSprop/SGD
  update rules applied per member; a member whose epoch has fewer steps is not updated on the
  steps it sits out, so unequal fold sizes are handled exactly);
* its own explicit regulariser (Fus2Net's L2 on FC1), and its own divergence check: a member whose
  loss becomes NaN/inf is reported failed and the others go on.

What differs from the reference engine: dropout masks come from a different random stream, and
floating-point summation order differs (grouped convolutions), so results agree in distribution,
not bit for bit (tested in ``tests/test_stacked.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from bench.data.cache import ImageCache
from bench.engine.device import autocast
from bench.engine.train import (
    KERAS,
    BatchSchedule,
    TrainingDiverged,
    TrainOutcome,
    TrainSettings,
    recipe_loss,
    training_batch,
)
from models.config import ModelConfig


@dataclass
class Member:
    """One model to train: its training indices into the cache, flip codes and seed."""

    model: nn.Module
    indices: np.ndarray
    flips: np.ndarray
    seed: int


class _WithRegularizer(nn.Module):
    """``(logits, explicit regulariser)`` in one call, so both see the swapped-in parameters."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        reg = getattr(self.model, "regularization_loss", None)
        return logits, (reg() if reg is not None else logits.new_zeros(()))


class StackedOptimizer:
    """Adam / RMSprop / SGD over stacked parameters (member dim first), with per-member steps.

    The update rules and hyper-parameters are those of :func:`bench.engine.train.make_optimizer` (Keras
    defaults, PyTorch's formulas); ``step(active)`` updates only the members marked active.
    """

    def __init__(self, params: list[torch.Tensor], name: str, lr: float | None, members: int) -> None:
        self.params, self.name = params, name
        self.lr = KERAS.learning_rate(name, lr)
        self.betas, self.alpha, self.eps = KERAS.betas, KERAS.rho, KERAS.eps
        device = params[0].device if params else torch.device("cpu")
        self.steps = torch.zeros(members, dtype=torch.float64, device=device)
        n_state = {"adam": 2, "rmsprop": 1, "sgd": 0}[name]
        self.state = [[torch.zeros_like(p) for _ in range(n_state)] for p in params]
        self._masks: dict[tuple[bool, ...], torch.Tensor] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: list[bool]) -> None:
        """Update the active members; the others' parameters and state are left untouched."""
        key = tuple(active)
        if key not in self._masks:  # a handful of patterns per run: copy each to the device once
            self._masks[key] = torch.tensor(active, device=self.steps.device)
        mask = self._masks[key]
        self.steps += mask
        live = [(p, st) for p, st in zip(self.params, self.state, strict=True) if p.grad is not None]
        if not live:
            return
        resting = ~mask
        saved = [] if all(active) else [(t, t[resting].clone())
                                         for p, st in live for t in (p, *st)]
        self._update(live)
        for t, old in saved:  # members sitting this step out (rare: once an epoch at most)
            t[resting] = old

    def _update(self, live: list) -> None:
        """PyTorch's update rule for every member, as a handful of multi-tensor kernels."""
        params = [p for p, _ in live]
        grads = [p.grad for p in params]
        if self.name == "adam":
            b1, b2 = self.betas
            ms, vs = [st[0] for _, st in live], [st[1] for _, st in live]
            torch._foreach_lerp_(ms, grads, 1 - b1)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
            steps = self.steps.clamp_min(1)  # a member that has not stepped yet is restored anyway
            step_size, bc2_sqrt = self.lr / (1 - b1 ** steps), (1 - b2 ** steps).sqrt()
            # per-member factors broadcast over each parameter: one cast per dtype, then free views
            cast = {dt: (bc2_sqrt.to(dt), step_size.to(dt)) for dt in {p.dtype for p in params}}
            factors = [tuple(f.view((-1,) + (1,) * (p.dim() - 1)) for f in cast[p.dtype])
                       for p in params]
            denom = torch._foreach_sqrt(vs)
            torch._foreach_div_(denom, [bc2 for bc2, _ in factors])
            torch._foreach_add_(denom, self.eps)
            update = torch._foreach_div(ms, denom)
            torch._foreach_mul_(update, [size for _, size in factors])
            torch._foreach_sub_(params, update)
        elif self.name == "rmsprop":
            sq = [st[0] for _, st in live]
            torch._foreach_mul_(sq, self.alpha)
            torch._foreach_addcmul_(sq, grads, grads, value=1 - self.alpha)
            denom = torch._foreach_sqrt(sq)
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(params, grads, denom, value=-self.lr)
        else:
            torch._foreach_add_(params, grads, alpha=-self.lr)


def stack_state(models: list[nn.Module], device: torch.device
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Parameters and buffers of ``models`` stacked on a new leading member dimension.

    Names carry the ``model.`` prefix of :class:`_WithRegularizer`; a stacked parameter requires
    grad only where the members' own parameter does (frozen backbones stay frozen).
    """
    named = [dict(m.named_parameters()) for m in models]
    bufs = [dict(m.named_buffers()) for m in models]
    params = {f"model.{n}": torch.stack([d[n].detach() for d in named]).to(device)
              .requires_grad_(p.requires_grad) for n, p in named[0].items()}
    buffers = {f"model.{n}": torch.stack([d[n] for d in bufs]).to(device) for n in bufs[0]}
    return params, buffers


def unstack_into(models: list[nn.Module], params: dict[str, torch.Tensor],
                 buffers: dict[str, torch.Tensor]) -> None:
    """Copy member ``j`` of the stacked state back into ``models[j]`` (in place)."""
    with torch.no_grad():
        for j, model in enumerate(models):
            for n, t in [*model.named_parameters(), *model.named_buffers()]:
                src = params.get(f"model.{n}", buffers.get(f"model.{n}"))
                t.copy_(src[j].to(t.device))


class _Stack:
    """The members' stacked state on the training device, their optimizer and the vmapped loss."""

    def __init__(self, members: list[Member], cfg: ModelConfig, cache: ImageCache,
                 settings: TrainSettings) -> None:
        self.device = device = torch.device(settings.device)
        self.k, self.cfg, self.cache, self.settings = len(members), cfg, cache, settings
        structure = _WithRegularizer(copy.deepcopy(members[0].model)).to("meta").train()
        self.params, self.buffers = stack_state([m.model for m in members], device)
        trainable = [p for p in self.params.values() if p.requires_grad]
        self.dtype = trainable[0].dtype if trainable else torch.float32
        self.opt = StackedOptimizer(trainable, settings.optimizer, settings.lr, self.k)

        def member_loss(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with autocast(device):
                logits, reg = functional_call(structure, (p, b), (x,))
            return recipe_loss(logits, y, reg)

        self.stacked_loss = vmap(member_loss, randomness="different")
        self.position_cache: dict[tuple[int, ...], torch.Tensor] = {}

    def positions(self, who: list[int]) -> torch.Tensor:
        """Member indices as a device tensor, copied once per distinct group."""
        key = tuple(who)
        if key not in self.position_cache:
            self.position_cache[key] = torch.tensor(who, device=self.device)
        return self.position_cache[key]

    def train_group(self, size: int, group: list, step: int, loss_sum: torch.Tensor,
                    bad_step: torch.Tensor) -> None:
        """Forward and backward of the members in ``group`` (same batch ``size``) at ``step``;
        adds their losses to ``loss_sum`` and marks a first non-finite loss in ``bad_step``."""
        aug, params, buffers = self.settings.augment, self.params, self.buffers
        who = [j for j, _, _, _ in group]
        src = torch.cat([s for _, s, _, _ in group])
        codes = torch.cat([c for _, _, c, _ in group])
        p_aug = None if aug is None else {key: torch.cat([pa[key] for _, _, _, pa in group])
                                          for key in group[0][3]}
        x, y = training_batch(self.cache, src, codes, p_aug, self.cfg, self.device, self.dtype)
        if self.settings.channels_last:  # kept through the view: each member's slice is NHWC
            x = x.contiguous(memory_format=torch.channels_last)
        x, y = x.view(len(who), size, *x.shape[1:]), y.view(len(who), size)
        at = self.positions(who)
        if len(who) == self.k:
            p_in, b_in = params, buffers
        else:
            p_in = {name: t[at] for name, t in params.items()}
            b_in = {name: t[at].clone() for name, t in buffers.items()}
        losses = self.stacked_loss(p_in, b_in, x, y)
        finite = torch.isfinite(losses.detach())
        kept = torch.where(finite, losses, 0.0)  # a diverged member gets no gradient
        kept.sum().backward()
        with torch.no_grad():
            if len(who) != self.k:
                for name, t in buffers.items():
                    t[at] = b_in[name]
            loss_sum[at] += kept.detach() * size
            first = (bad_step[at] < 0) & ~finite
            bad_step[at] = torch.where(first, step, bad_step[at])

    def epoch(self, schedules: list[BatchSchedule], alive: list[bool]
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch of every live member: summed losses, and the first bad step (-1: none)."""
        k, steps = self.k, [s.steps for s in schedules]
        for schedule, ok in zip(schedules, alive, strict=True):
            if ok:
                schedule.start_epoch()
        loss_sum = torch.zeros(k, device=self.device)
        bad_step = torch.full((k,), -1, dtype=torch.long, device=self.device)
        for step in range(max((s for s, ok in zip(steps, alive, strict=True) if ok), default=0)):
            active = [alive[j] and step < steps[j] for j in range(k)]
            groups: dict[int, list[tuple[int, torch.Tensor, torch.Tensor, dict | None]]] = {}
            for j in (j for j in range(k) if active[j]):
                src, codes, p_aug = schedules[j].batch(step)
                groups.setdefault(len(src), []).append((j, src, codes, p_aug))
            self.opt.zero_grad()
            for size, group in groups.items():
                self.train_group(size, group, step, loss_sum, bad_step)
            self.opt.step(active)
        return loss_sum, bad_step


def _record_epoch(results: list[TrainOutcome], alive: list[bool], loss_sum: torch.Tensor,
                  bad_step: torch.Tensor, n: list[int], epoch: int) -> None:
    """Each live member's epoch loss, or where it diverged (it then stops training)."""
    bad = bad_step.tolist()
    epoch_loss = (loss_sum.cpu() / torch.tensor(n, dtype=torch.float32)).tolist()
    for j in range(len(results)):
        if not alive[j]:
            continue
        if bad[j] >= 0:
            alive[j] = False
            results[j].diverged = TrainingDiverged(epoch + 1, bad[j] + 1, float("nan"))
        else:
            results[j].history.append(epoch_loss[j])


def train_stacked(members: list[Member], cfg: ModelConfig, cache: ImageCache,
                  settings: TrainSettings, desc: str = "stacked", progress: bool = True
                  ) -> list[TrainOutcome]:
    """Train ``members`` concurrently (see the module docstring); one result per member.

    The members' models are only read at the start and written at the end (on their own devices):
    during training the stacked copy on ``settings.device`` is the only one in use.
    """
    stack = _Stack(members, cfg, cache, settings)
    schedules = [BatchSchedule(m.indices, m.flips, m.seed, settings.batch_size, settings.augment)
                 for m in members]
    n = [s.n for s in schedules]
    results = [TrainOutcome() for _ in members]
    alive = [True] * len(members)
    bar = tqdm(range(settings.epochs), desc=desc, unit="epoch", leave=False, disable=not progress)
    for epoch in bar:
        loss_sum, bad_step = stack.epoch(schedules, alive)
        _record_epoch(results, alive, loss_sum, bad_step, n, epoch)
        last = [r.history[-1] for r in results if len(r.history) == epoch + 1]
        if progress and last:
            bar.set_postfix(loss=f"{np.mean(last):.4f}")
    unstack_into([m.model for m in members], stack.params, stack.buffers)
    return results
