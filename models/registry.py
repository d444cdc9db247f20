"""timm-style model registry: ``@register_model`` + ``create_model(name, **kwargs)``."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from models.config import ModelConfig
from models.errors import UserError

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_CONFIGS: dict[str, ModelConfig] = {}


def register_model(cfg: ModelConfig) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory under ``cfg.name`` together with its :class:`ModelConfig`."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if cfg.name in _ENTRYPOINTS:
            raise ValueError(f"model {cfg.name!r} is registered twice")
        _ENTRYPOINTS[cfg.name] = fn
        _CONFIGS[cfg.name] = cfg
        return fn

    return decorator


def _ensure_plugins() -> None:
    """Import the ``fus2bench.models`` entry points of installed packages once (models.plugins)."""
    from models.plugins import load_plugins  # here: a plugin's import needs this module first

    load_plugins()


def list_models() -> list[str]:
    """Names of all registered models (plugins' included), sorted."""
    _ensure_plugins()
    return sorted(_ENTRYPOINTS)


def _check(name: str) -> None:
    _ensure_plugins()
    if name not in _ENTRYPOINTS:
        close = difflib.get_close_matches(name, list_models(), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        from models.plugins import broken_plugins

        broken = "".join(f"; plugin package {b.package!r} failed to load ({b.error})"
                         for b in broken_plugins())
        raise UserError(
            f"unknown model {name!r}{hint} (registered: {', '.join(list_models())}){broken}"
        )


def get_model_config(name: str) -> ModelConfig:
    """The :class:`ModelConfig` of a registered model."""
    _check(name)
    return _CONFIGS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its constructor (e.g. ``in_chans``, ``dropout``)."""
    _check(name)
    model = _ENTRYPOINTS[name](**kwargs)
    model.model_name = name  # type: ignore[attr-defined]
    if not hasattr(model, "weights_provenance"):
        model.weights_provenance = "random"  # type: ignore[attr-defined]
    return model
