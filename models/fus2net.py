"""Fus2Net (Ma et al., BioMed Eng OnLine 20:112, 2021), as reconstructed in docs/protocol.md, Fus2Net reconstruction.

The paper's Table 4 is not available; the stem is Inception-v4-like and Block 2 is an
Inception-ResNet-style block with a scaled residual. Stage outputs at 299 px:
64×147×147 → 160×73×73 → 192×71×71 → 384×35×35 → 384×35×35 → 2 logits.
Keras defaults are kept for fidelity: BatchNorm eps 1e-3 and momentum 0.99 (PyTorch 0.01).
"""

from __future__ import annotations

import torch
from torch import nn

from models.config import ModelConfig, Recipe
from models.entries import register_model
from models.pretrained import create_pretrained
from models.weights import NO_WEIGHTS, Weights, WeightSource

FC_L2 = 0.05  # Keras l2() factor on the first FC layer's weights (docs/protocol.md, The paper)
DROPOUT = 0.5  # after the first FC layer (docs/protocol.md, The paper)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # = Keras momentum 0.99


class ConvBN(nn.Sequential):
    """Conv2d (no bias) + BatchNorm (+ ReLU); ``padding="same"`` or unpadded ("valid")."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 same: bool = False, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride=stride, padding="same" if same else 0, bias=False),
            nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Stem(nn.Sequential):
    """Three basic 3×3 convs: /2 32 → 32 → 64 same (docs/protocol.md, Fus2Net reconstruction: stem)."""

    def __init__(self, in_chans: int, widths: tuple[int, int, int] = (32, 32, 64)) -> None:
        a, b, c = widths
        super().__init__(ConvBN(in_chans, a, 3, stride=2), ConvBN(a, b, 3), ConvBN(b, c, 3, same=True))


class ReductionModule(nn.Module):
    """Block 1 Modules 1 and 3: concat[3×3/2 conv, 3×3/2 pool] (max for Module 1, avg for 3)."""

    def __init__(self, cin: int, cout: int, pool: str) -> None:
        super().__init__()
        self.conv = ConvBN(cin, cout, 3, stride=2)
        self.pool = nn.MaxPool2d(3, 2) if pool == "max" else nn.AvgPool2d(3, 2)
        self.out_channels = cout + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


class MixedModule(nn.Module):
    """Block 1 Module 2: six convs with all four kernel types (1×1, 3×3, 1×7, 7×1)."""

    def __init__(self, cin: int, mid: int = 64, cout: int = 96) -> None:
        super().__init__()
        self.branch_a = nn.Sequential(ConvBN(cin, mid, 1), ConvBN(mid, cout, 3))
        self.branch_b = nn.Sequential(
            ConvBN(cin, mid, 1),
            ConvBN(mid, mid, (1, 7), same=True),
            ConvBN(mid, mid, (7, 1), same=True),
            ConvBN(mid, cout, 3),
        )
        self.out_channels = 2 * cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)


class ScaledResidualBlock(nn.Module):
    """Block 2: three conv branches → 1×1 projection × ``scale``, added to the adjusted input.

    ``shortcut="projection"`` (default, the paper's "adjusted input") uses a 1×1 conv + BN;
    ``"identity"`` adds ``x`` unchanged.
    """

    def __init__(self, cin: int, scale: float = 0.2, shortcut: str = "projection",
                 widths: tuple[int, int, int, int, int] = (32, 32, 32, 48, 64)) -> None:
        super().__init__()
        if shortcut not in ("projection", "identity"):
            raise ValueError(f"shortcut must be 'projection' or 'identity', not {shortcut!r}")
        w1, w2, w3a, w3b, w3c = widths
        self.branch_1 = ConvBN(cin, w1, 1)
        self.branch_2 = nn.Sequential(ConvBN(cin, w2, 1), ConvBN(w2, w2, 3, same=True))
        self.branch_3 = nn.Sequential(
            ConvBN(cin, w3a, 1), ConvBN(w3a, w3b, (1, 7), same=True), ConvBN(w3b, w3c, (7, 1), same=True)
        )
        self.project = ConvBN(w1 + w2 + w3c, cin, 1, relu=False)
        self.shortcut = ConvBN(cin, cin, 1, relu=False) if shortcut == "projection" else nn.Identity()
        self.scale = scale
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.project(torch.cat([self.branch_1(x), self.branch_2(x), self.branch_3(x)], dim=1))
        return self.act(self.shortcut(x) + self.scale * r)


class Fus2Net(nn.Module):
    """Fus2Net classifier; ``l2`` is the Keras ``l2()`` factor on the first FC layer's weights."""

    def __init__(self, in_chans: int = 3, num_classes: int = 2, head_width: int = 256,
                 dropout: float = DROPOUT, l2: float = FC_L2, block2_scale: float = 0.2,
                 shortcut: str = "projection") -> None:
        super().__init__()
        self.stem = Stem(in_chans)
        m1 = ReductionModule(64, 96, pool="max")
        m2 = MixedModule(m1.out_channels)
        m3 = ReductionModule(m2.out_channels, 192, pool="avg")
        self.block1 = nn.Sequential(m1, m2, m3)
        self.block2 = ScaledResidualBlock(m3.out_channels, scale=block2_scale, shortcut=shortcut)
        self.num_features = m3.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(self.num_features, head_width)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(head_width, num_classes)
        self.l2 = l2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(self.stem(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(torch.flatten(self.pool(x), 1)))
        return self.fc2(self.drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def regularization_loss(self) -> torch.Tensor:
        """Keras ``kernel_regularizer=l2(f)``: ``f · Σ w²`` over the first FC layer's weights."""
        return self.l2 * self.fc1.weight.pow(2).sum()


FUS2NET_CFG = ModelConfig(
    name="fus2net",
    family="Fus2Net (custom CNN)",
    input_size=299,
    in_chans=3,
    normalization="per_image",
    recipe=Recipe(),
    cam_layer="block2", classifier="fc2",
    reference="Ma et al., Fus2Net, BioMed Eng OnLine 20:112 (2021), doi:10.1186/s12938-021-00950-z",
    notes="Architecture reconstructed from the text (docs/protocol.md, Fus2Net reconstruction); Table 4 of the paper is unavailable.",
)


OWN_WEIGHTS = WeightSource(files="own")  # no ImageNet weights; a file of Fus2Net weights loads


@register_model(FUS2NET_CFG, weights=OWN_WEIGHTS)
def fus2net(pretrained: Weights = NO_WEIGHTS, **kwargs) -> Fus2Net:
    """Fus2Net with the paper's defaults (3-channel 299×299 input, FC 256, dropout 0.5, L2 0.05).

    Trained from scratch in the paper; ``pretrained`` may only name a file of Fus2Net weights.
    """
    return create_pretrained(lambda: Fus2Net(**kwargs), pretrained, OWN_WEIGHTS, "fus2net")

