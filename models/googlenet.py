"""GoogLeNet fine-tuned, as in Fujioka et al. 2019 and Han et al. 2017 (docs/protocol.md, Comparison models).

Fujioka T. et al., Jpn J Radiol 37(6):466–72 (2019); Han S. et al., Phys Med Biol 62(19):7714 (2017)
both fine-tuned ImageNet GoogLeNet (Inception v1) on breast-ultrasound images. timm has no GoogLeNet,
so torchvision's is used (auxiliary classifiers off). Recipe: all layers trained with Adam lr 1e-4,
224 px, ImageNet normalisation, batch 16, the shared protocol's epochs.

torchvision's ImageNet GoogLeNet weights were ported from a network fed ``(x - 0.5) / 0.5``;
torchvision builds the model with ``transform_input=True`` for them, which maps ImageNet-normalised
input to that range. We do the same whenever ImageNet weights are loaded (from the hub or a file);
a randomly initialised model keeps ``transform_input=False``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from models.config import ModelConfig, Recipe
from models.entries import register_model
from models.errors import UserError
from models.pretrained import create_pretrained, hub_reachable
from models.weights import NO_WEIGHTS, RANDOM, Weights, WeightSource

TV_WEIGHTS = "GoogLeNet_Weights.IMAGENET1K_V1"


def _torchvision_cached() -> bool:
    url = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.url
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file()


def _fetch() -> tuple[dict[str, torch.Tensor], str]:
    try:
        state = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as exc:  # noqa: BLE001 - network failures of any kind
        raise UserError(f"`pretrained`=hub: cannot fetch torchvision {TV_WEIGHTS} "
                        f"({exc.__class__.__name__}); use `pretrained`=PATH or none") from None
    return ({k: v for k, v in state.items() if not k.startswith("aux")},
            f"imagenet:torchvision:{TV_WEIGHTS}")


WEIGHTS = WeightSource(
    fetch=_fetch, available=lambda: _torchvision_cached() or hub_reachable("download.pytorch.org"),
    name=TV_WEIGHTS)


@register_model(ModelConfig(
    name="googlenet_fujioka", family="GoogLeNet", input_size=224, normalization="imagenet",
    recipe=Recipe(lr=1e-4, source="fine-tuning as in Fujioka et al. 2019"), cam_layer="inception5b", classifier="fc",
    reference="Fujioka et al., Jpn J Radiol 37:466-72 (2019); Han et al., Phys Med Biol 62:7714 (2017)",
    pretrained="imagenet"), weights=WEIGHTS)
def googlenet_fujioka(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.2,
                      pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    if in_chans != 3:
        raise UserError("googlenet_fujioka takes 3-channel input; use `in_chans`=3")
    model = create_pretrained(
        lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True,
                                             num_classes=num_classes, dropout=dropout),
        pretrained, WEIGHTS, "googlenet_fujioka")
    model.transform_input = model.weights_provenance != RANDOM
    return model
