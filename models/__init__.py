"""Model registry and architectures (one architecture per module, timm style)."""

from models import fus2net  # noqa: F401  (registers the model)
from models.config import ModelConfig, Recipe
from models.registry import create_model, get_model_config, list_models, register_model

__all__ = ["ModelConfig", "Recipe", "create_model", "get_model_config", "list_models", "register_model"]
