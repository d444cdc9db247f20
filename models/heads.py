"""Shared pieces of the baseline models: the transfer-learning wrapper and its classifier head."""

from __future__ import annotations

import torch
from torch import nn


class CustomClassifier(nn.Sequential):
    """The "customised classifier" of transfer learning (paper introduction): FC → ReLU → Dropout → FC."""

    def __init__(self, in_features: int, hidden: int = 256, num_classes: int = 2, dropout: float = 0.5):
        super().__init__(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, num_classes))


class BackboneClassifier(nn.Module):
    """A pooled-feature backbone (``num_classes=0``) + a head; ``freeze`` keeps the backbone fixed
    (no gradients, BatchNorm statistics frozen in eval mode) for feature-extractor transfer."""

    def __init__(self, backbone: nn.Module, head: nn.Module, freeze: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze = freeze
        if freeze:
            for p in self.backbone.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> BackboneClassifier:
        super().train(mode)
        if self.freeze:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
