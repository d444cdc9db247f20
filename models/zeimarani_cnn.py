"""A small CNN trained from scratch, after Zeimarani et al. 2020 (docs/protocol.md, Comparison models).

Zeimarani B. et al., "Breast lesion classification in ultrasound images using deep convolutional
neural network", IEEE Access 8:133349–59 (2020), trained a compact CNN from scratch with
regularisation and augmentation. Its exact layer table is not reproduced here; **our
configuration**: five blocks of [3×3 conv → BatchNorm → ReLU → 2×2 max-pool] with 32, 64, 128, 128
and 256 filters, global average pooling, Dropout 0.5, FC 2 (≈ 0.6 M parameters). Per-image
standardisation, Adam with Keras defaults, 224 px, random initialisation (never "transfer").
"""

from __future__ import annotations

import torch
from torch import nn

from models.config import ModelConfig, Recipe
from models.entries import register_model
from models.pretrained import SCRATCH, create_pretrained
from models.weights import NO_WEIGHTS, Weights


class SmallCNN(nn.Module):
    def __init__(self, in_chans: int = 3, num_classes: int = 2, dropout: float = 0.5,
                 widths: tuple[int, ...] = (32, 64, 128, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.flatten(self.pool(self.features(x)), 1)))


@register_model(ModelConfig(
    name="zeimarani_cnn", family="small CNN (from scratch)", input_size=224,
    normalization="per_image",
    recipe=Recipe(source="our configuration after Zeimarani et al. 2020"), cam_layer="features.18",
    classifier="fc",
    reference="Zeimarani et al., IEEE Access 8:133349-59 (2020), doi:10.1109/ACCESS.2020.3010863"),
    weights=SCRATCH)
def zeimarani_cnn(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.5,
                  pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    return create_pretrained(lambda: SmallCNN(in_chans, num_classes, dropout), pretrained, SCRATCH,
                             "zeimarani_cnn")
