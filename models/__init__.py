"""Model registry and architectures (one architecture per module, timm style)."""

from models import (  # noqa: F401  (each import registers its models)
    byra_vgg19,
    efficientnet_lite0,
    fus2net,
    googlenet,
    inception_v3,
    timm_baselines,
    wang_multiview,
    zeimarani_cnn,
)
from models.config import ModelConfig, Recipe
from models.entries import register_model
from models.registry import create_model, get_model_config, list_models

__all__ = ["ModelConfig", "Recipe", "create_model", "get_model_config", "list_models", "register_model"]
