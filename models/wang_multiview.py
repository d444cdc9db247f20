"""Wang et al. 2020 multiview CNN with transfer learning, adapted to 2-D images (docs/protocol.md, Comparison models).

Wang Y. et al., "Breast cancer classification in automated breast ultrasound using multiview
convolutional neural network with transfer learning", Ultrasound Med Biol 46(5):1119–32 (2020).

The original feeds several views of a 3-D automated-breast-ultrasound volume to a shared,
ImageNet-pretrained InceptionV3 and fuses their features. Our 2-D data have no volume, so the
**adaptation** uses three views of each image: the whole image, a central zoom crop (the central
2/3 of each side, resized back to the input size) and the horizontally flipped image. One shared
InceptionV3 extracts 2048 pooled features per view; the three vectors are concatenated (6144) and
classified by Dropout 0.5 → FC 2. Fine-tuned end to end, Adam lr 1e-4, 299 px, ImageNet-style
normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.config import ModelConfig, Recipe
from models.entries import register_model
from models.inception_v3 import INCEPTION_MEAN_STD, WEIGHTS, inception_v3_backbone
from models.pretrained import create_pretrained
from models.weights import NO_WEIGHTS, Weights


def three_views(x: torch.Tensor, zoom: float = 2 / 3) -> list[torch.Tensor]:
    """Whole image, central zoom crop resized back, horizontal flip."""
    h, w = x.shape[-2:]
    ch, cw = round(h * zoom), round(w * zoom)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top:top + ch, left:left + cw]
    crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
    return [x, crop, x.flip(-1)]


class MultiviewInceptionV3(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(3 * backbone.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = three_views(x)
        feats = self.backbone(torch.cat(views, dim=0))  # one pass over all views, shared weights
        n = x.shape[0]
        fused = torch.cat([feats[i * n:(i + 1) * n] for i in range(3)], dim=1)
        return self.fc(self.drop(fused))


@register_model(ModelConfig(
    name="wang_multiview_inception_v3", family="Multiview InceptionV3", input_size=299, min_input_size=75,
    normalization="imagenet", mean=INCEPTION_MEAN_STD, std=INCEPTION_MEAN_STD,
    recipe=Recipe(lr=1e-4, source="adapted from Wang et al. 2020 (2-D views)"),
    cam_layer="backbone.Mixed_7c",  # the map of the first view, the whole image
    classifier="fc",
    reference="Wang et al., Ultrasound Med Biol 46(5):1119-32 (2020), doi:10.1016/j.ultrasmedbio.2020.01.001",
    notes="3-D views replaced by whole / central zoom / flipped views of the 2-D image",
    pretrained="imagenet"), weights=WEIGHTS)
def wang_multiview_inception_v3(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.5,
                                pretrained: Weights = NO_WEIGHTS) -> nn.Module:
    backbone = create_pretrained(lambda: inception_v3_backbone(in_chans), pretrained, WEIGHTS,
                                 "wang_multiview_inception_v3", classifier="")  # features only
    model = MultiviewInceptionV3(backbone, num_classes, dropout)
    model.weights_provenance = backbone.weights_provenance
    return model
