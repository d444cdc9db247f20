"""InceptionV3 transfer learning, the two ways the paper's introduction describes (docs/protocol.md, Comparison models).

* ``inception_v3_tl``: ImageNet InceptionV3 as a *frozen* feature extractor (all epochs; its
  BatchNorm statistics stay fixed) + a trained "customised classifier" (FC 256 → ReLU → Dropout 0.5
  → FC 2), Adam lr 1e-3 (Keras default) on the classifier only.
* ``inception_v3_ft``: the same network fully fine-tuned, Adam lr 1e-4.

Input 299×299, ImageNet-style normalisation (timm's InceptionV3 weights use mean = std = 0.5).
21.8 M parameters with a 2-way linear classifier.
"""

from __future__ import annotations

import timm
from torch import nn

from models.config import ModelConfig, Recipe
from models.entries import register_model
from models.heads import BackboneClassifier, CustomClassifier
from models.pretrained import create_pretrained, timm_source
from models.weights import NO_WEIGHTS, Weights

INCEPTION_MEAN_STD = (0.5, 0.5, 0.5)
WEIGHTS = timm_source("inception_v3")
REFERENCE = "Szegedy et al., CVPR 2016 (InceptionV3); transfer learning as in Ma et al. 2021 §Background"


def inception_v3_backbone(in_chans: int) -> nn.Module:
    """timm's InceptionV3 without classifier: 2048 pooled features."""
    return timm.create_model("inception_v3", num_classes=0, in_chans=in_chans)


@register_model(ModelConfig(
    name="inception_v3_tl", family="InceptionV3 (frozen features)", input_size=299, min_input_size=75,
    normalization="imagenet", mean=INCEPTION_MEAN_STD, std=INCEPTION_MEAN_STD,
    cam_layer="backbone.Mixed_7c", classifier="head",
    recipe=Recipe(lr=None, frozen="backbone (all epochs)",
                  source="Ma et al. 2021 introduction: pretrained CNN as feature extractor + custom classifier"),
    reference=REFERENCE, pretrained="imagenet"), weights=WEIGHTS)
def inception_v3_tl(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.5,
                    pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    backbone = create_pretrained(lambda: inception_v3_backbone(in_chans), pretrained, WEIGHTS,
                                 "inception_v3_tl", classifier="")  # no classifier: features
    model = BackboneClassifier(backbone, CustomClassifier(backbone.num_features, 256, num_classes,
                                                          dropout), freeze=True)
    model.weights_provenance = backbone.weights_provenance
    return model


@register_model(ModelConfig(
    name="inception_v3_ft", family="InceptionV3 (fine-tuned)", input_size=299, min_input_size=75,
    normalization="imagenet", mean=INCEPTION_MEAN_STD, std=INCEPTION_MEAN_STD,
    recipe=Recipe(lr=1e-4, source="standard full fine-tuning"), cam_layer="Mixed_7c",
    classifier="fc", reference=REFERENCE, pretrained="imagenet"), weights=WEIGHTS)
def inception_v3_ft(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.2,
                    pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    return create_pretrained(lambda: timm.create_model("inception_v3", num_classes=num_classes,
                                                       in_chans=in_chans, drop_rate=dropout),
                             pretrained, WEIGHTS, "inception_v3_ft")
