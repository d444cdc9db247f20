"""Byra et al. 2019: ImageNet VGG19 fine-tuned behind a learnable "matching layer" (docs/protocol.md, Comparison models).

Byra M. et al., "Breast mass classification in sonography with transfer learning using a deep
convolutional neural network and color conversion", Med Phys 46(2):746–55 (2019).

The original maps the grey ultrasound image to three channels with a learned matching layer instead
of replicating the grey value, then fine-tunes the ImageNet VGG19. Here the matching layer is a
1×1 convolution from the grey image (mean of the input channels) to 3 channels, initialised to
replicate the grey value, and trained with the network. Our adaptation of the recipe: all layers
trained with Adam lr 1e-4, batch 16, the shared protocol's epochs, 224 px input, ImageNet
normalisation; the original's own optimiser schedule is not reproduced.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from models.config import ModelConfig, Recipe
from models.entries import register_model
from models.pretrained import create_pretrained, timm_source
from models.weights import NO_WEIGHTS, Weights


class MatchingLayer(nn.Module):
    """Grey image → 3 learned channels (1×1 conv), initialised to grey replication."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, kernel_size=1)
        nn.init.ones_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.mean(dim=1, keepdim=True))


class MatchedVGG19(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.matching = MatchingLayer()
        self.vgg = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg(self.matching(x))


WEIGHTS = timm_source("vgg19")


@register_model(ModelConfig(
    name="byra_vgg19_ml", family="VGG19 + matching layer", input_size=224, normalization="imagenet",
    recipe=Recipe(lr=1e-4, source="adapted from Byra et al. 2019"), cam_layer="vgg.features",
    classifier="vgg.head.fc",
    reference="Byra et al., Med Phys 46(2):746-55 (2019), doi:10.1002/mp.13361", pretrained="imagenet"), weights=WEIGHTS)
def byra_vgg19_ml(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.5,
                  pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    backbone = create_pretrained(lambda: timm.create_model("vgg19", num_classes=num_classes,
                                                           drop_rate=dropout),
                                 pretrained, WEIGHTS, "byra_vgg19_ml", classifier="head.fc")
    model = MatchedVGG19(backbone)
    model.weights_provenance = backbone.weights_provenance
    return model
