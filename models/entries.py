"""The registered entries: each model's factory, :class:`ModelConfig` and :class:`WeightSource`,
by name. :func:`register_model` fills the table; :mod:`models.pretrained` reads an entry's config
(the classifier its weights leave random), :mod:`models.plugins` takes back what a failing plugin
registered, and :mod:`models.registry` answers questions about it after the plugins are loaded."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from models.config import ModelConfig
from models.errors import UserError
from models.weights import WeightSource

Factory = Callable[..., nn.Module]

_FACTORIES: dict[str, Factory] = {}
_CONFIGS: dict[str, ModelConfig] = {}
_SOURCES: dict[str, WeightSource] = {}


def register_model(cfg: ModelConfig, weights: WeightSource | None = None
                   ) -> Callable[[Factory], Factory]:
    """Register a model factory under ``cfg.name`` together with its :class:`ModelConfig` and
    the :class:`WeightSource` its factory loads from (then :func:`models.registry.resolve_weights`
    decides the weights and their provenance without building the model, and
    :func:`models.registry.create_model` hands the factory the resolved :class:`Weights` as
    ``pretrained``). A name is registered once: a second registration raises ``ValueError``."""

    def decorator(fn: Factory) -> Factory:
        if cfg.name in _FACTORIES:
            raise ValueError(f"model {cfg.name!r} is registered twice")
        _FACTORIES[cfg.name] = fn
        _CONFIGS[cfg.name] = cfg
        if weights is not None:
            _SOURCES[cfg.name] = weights
        return fn

    return decorator


def registered_factories() -> dict[str, Factory]:
    """Every registered name and its factory (a copy), plugins' included once they are loaded."""
    return dict(_FACTORIES)


def factory_of(name: str) -> Factory:
    """The factory registered as ``name``."""
    _known(name)
    return _FACTORIES[name]


def config_of(name: str) -> ModelConfig:
    """The :class:`ModelConfig` registered as ``name``."""
    _known(name)
    return _CONFIGS[name]


def source_of(name: str) -> WeightSource | None:
    """The :class:`WeightSource` registered with ``name``; ``None`` when it was registered without
    one (its factory then gets ``pretrained`` as the caller gave it)."""
    _known(name)
    return _SOURCES.get(name)


def unregister(name: str) -> None:
    """Take ``name`` out of the table (a plugin that failed to load, or one a test uninstalls)."""
    _FACTORIES.pop(name, None)
    _CONFIGS.pop(name, None)
    _SOURCES.pop(name, None)


def _known(name: str) -> None:
    if name not in _FACTORIES:
        raise UserError(f"model {name!r} is not registered")
