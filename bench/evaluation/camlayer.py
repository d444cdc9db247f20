"""Which layer to explain at a given input size, and whether its map can be measured
(docs/protocol.md, "Where the models look").

A Grad-CAM map is as coarse as the layer it comes from: at 64 px input, the last stage of most
models is 2×2, and a 2×2 map upsampled to the image has the same frame and lesion energy ratios
whatever the model looks at. So each model is explained at the deepest layer whose map is at least
``MIN_SIDE``×``MIN_SIDE`` for the run's input size: the layer its registry config names
(``cam_layer``) when that is fine enough, else the last earlier stage that is. Candidates are the
configured layer's siblings that hold a convolution and the children of those that are sequential
containers (so on the main path, never one branch of an Inception module), ordered by when they
finish in the forward pass. A model and size with no such layer is *not measurable*, never a
number.

Each map then gets a status: ``measured``, ``empty map`` (no positive evidence anywhere, so no
energy to place) or ``not measurable``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MIN_SIDE = 7
MEASURED, EMPTY, NOT_MEASURABLE = "measured", "empty map", "not measurable"


@dataclass(frozen=True)
class CamLayer:
    """The layer explained, its map size at the run's input size and the layer the config named."""

    name: str
    height: int
    width: int
    configured: str

    @property
    def measurable(self) -> bool:
        return min(self.height, self.width) >= MIN_SIDE

    @property
    def size(self) -> str:
        return f"{self.height}x{self.width}"


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def map_sizes(model: nn.Module, names: list[str], img_size: int, in_chans: int
              ) -> list[tuple[str, int, int]]:
    """``(name, height, width)`` of the 4-D outputs of the modules ``names`` for one input of
    ``img_size``, in the order the modules finish in the forward pass (first call of each)."""
    seen: dict[str, tuple[int, int]] = {}
    handles = []
    for name in names:
        def hook(_m, _i, out, name=name):
            if name not in seen and isinstance(out, torch.Tensor) and out.dim() == 4:
                seen[name] = (int(out.shape[-2]), int(out.shape[-1]))
        handles.append(model.get_submodule(name).register_forward_hook(hook))
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_chans, img_size, img_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [(n, *seen[n]) for n in seen]


def candidates(model: nn.Module, configured: str) -> list[str]:
    """The configured layer, its siblings that hold a convolution, and the children of sequential
    siblings that hold one."""
    parent = configured.rsplit(".", 1)[0] if "." in configured else ""
    root = model.get_submodule(parent) if parent else model
    prefix = f"{parent}." if parent else ""
    names = [configured]
    for child_name, child in root.named_children():
        full = prefix + child_name
        if full != configured and _has_conv(child):
            names.append(full)
        if isinstance(child, nn.Sequential):  # its children lie on the main path
            for sub_name, sub in child.named_children():
                if _has_conv(sub):
                    names.append(f"{full}.{sub_name}")
    return list(dict.fromkeys(names))


def choose_cam_layer(model: nn.Module, configured: str, img_size: int, in_chans: int,
                     min_side: int = MIN_SIDE) -> CamLayer:
    """The configured layer when its map is at least ``min_side`` on each side at ``img_size``;
    else the candidate that finishes last before it (in the forward pass) with such a map; else
    the configured layer, which is then not measurable."""
    order = map_sizes(model, candidates(model, configured), img_size, in_chans)
    sizes = {n: (h, w) for n, h, w in order}
    if configured not in sizes:
        raise ValueError(f"layer {configured!r} gives no 4-D map")
    h, w = sizes[configured]
    if min(h, w) >= min_side:
        return CamLayer(configured, h, w, configured)
    stop = [n for n, _, _ in order].index(configured)
    fine = [(n, hh, ww) for n, hh, ww in order[:stop] if min(hh, ww) >= min_side
            and not configured.startswith(n + ".")]
    if not fine:
        return CamLayer(configured, h, w, configured)
    name, hh, ww = fine[-1]
    return CamLayer(name, hh, ww, configured)
