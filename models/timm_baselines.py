"""Modern timm baselines fine-tuned end to end: ResNet-50, EfficientNet-B0, ConvNeXt-Tiny (not in the paper).

Not in the paper; the baselines a reviewer asks for today. Recipe: ImageNet weights when available
(``--pretrained``), ImageNet normalisation, all layers trained with Adam lr 1e-4 (a common
fine-tuning rate; Keras-default 1e-3 destabilises pretrained BatchNorm/LayerNorm nets), batch 16,
the shared protocol's epochs, new 2-way classifier with dropout.
"""

from __future__ import annotations

import timm
from torch import nn

from models.config import ModelConfig, Recipe
from models.entries import register_model
from models.pretrained import create_pretrained, timm_source
from models.weights import NO_WEIGHTS, Weights

FINETUNE = Recipe(lr=1e-4,
                  source="common ImageNet fine-tuning practice (not in Ma et al. 2021)")


SOURCES = {arch: timm_source(arch) for arch in ("resnet50", "efficientnet_b0", "convnext_tiny")}


def _timm(arch: str, in_chans: int, num_classes: int, dropout: float,
          pretrained: Weights) -> nn.Module:
    return create_pretrained(lambda: timm.create_model(arch, num_classes=num_classes,
                                                       in_chans=in_chans, drop_rate=dropout),
                             pretrained, SOURCES[arch], arch)


def _cfg(name: str, family: str, reference: str, cam_layer: str,
         cpu_channels_last: bool = True) -> ModelConfig:
    return ModelConfig(name=name, family=family, input_size=224, normalization="imagenet",
                       recipe=FINETUNE, reference=reference, pretrained="imagenet",
                       cpu_channels_last=cpu_channels_last, cam_layer=cam_layer,
                       classifier=timm.get_pretrained_cfg(name).classifier)


@register_model(_cfg("resnet50", "ResNet", "He et al., CVPR 2016; timm resnet50", "layer4"), weights=SOURCES["resnet50"])
def resnet50(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.2,
             pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    return _timm("resnet50", in_chans, num_classes, dropout, pretrained)


@register_model(_cfg("efficientnet_b0", "EfficientNet", "Tan & Le, ICML 2019; timm efficientnet_b0",
                     "bn2"), weights=SOURCES["efficientnet_b0"])
def efficientnet_b0(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.2,
                    pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    return _timm("efficientnet_b0", in_chans, num_classes, dropout, pretrained)


# channels_last is no faster for it on the 2-core CPU (training step at 64 px, interleaved medians
# 693 vs 691 ms), so it stays contiguous there (Fus2Net, by contrast: 121 vs 141 ms)
@register_model(_cfg("convnext_tiny", "ConvNeXt", "Liu et al., CVPR 2022; timm convnext_tiny",
                     "stages.3", cpu_channels_last=False), weights=SOURCES["convnext_tiny"])
def convnext_tiny(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.2,
                  pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    return _timm("convnext_tiny", in_chans, num_classes, dropout, pretrained)
