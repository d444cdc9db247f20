"""timm-style model registry: ``@register_model`` + ``create_model(name, **kwargs)``."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from torch import nn

from models.config import ModelConfig
from models.errors import UserError
from models.pretrained import Weights, WeightSource, resolve

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_CONFIGS: dict[str, ModelConfig] = {}
_SOURCES: dict[str, WeightSource] = {}


def register_model(cfg: ModelConfig, weights: WeightSource | None = None
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory under ``cfg.name`` together with its :class:`ModelConfig` and
    the :class:`WeightSource` its factory loads from (then :func:`resolve_weights` decides the
    weights and their provenance without building the model, and :func:`create_model` hands the
    factory the resolved weights as ``pretrained``)."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if cfg.name in _ENTRYPOINTS:
            raise ValueError(f"model {cfg.name!r} is registered twice")
        _ENTRYPOINTS[cfg.name] = fn
        _CONFIGS[cfg.name] = cfg
        if weights is not None:
            _SOURCES[cfg.name] = weights
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


def resolve_weights(name: str, pretrained: str = "auto") -> Weights:
    """The weights ``pretrained`` (none | auto | hub | PATH) gives model ``name`` and their
    provenance, decided from the registered entry without building it; resolved once per process
    and request (a file: once per file version). An entry registered without a weight source (a
    plugin's) is built once to find out."""
    _check(name)
    if name not in _SOURCES:
        return Weights(create_model(name, pretrained=pretrained).weights_provenance)
    stamp = 0
    if pretrained not in ("none", "auto", "hub") and Path(pretrained).is_file():
        stamp = os.stat(pretrained).st_mtime_ns
    return _resolved(name, pretrained, stamp)


@lru_cache(maxsize=4)
def _resolved(name: str, pretrained: str, stamp: int) -> Weights:
    return resolve(pretrained, _SOURCES[name], name)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its constructor (e.g. ``in_chans``, ``dropout``,
    ``pretrained``: a mode, resolved here once per process for entries with a weight source)."""
    _check(name)
    pretrained = kwargs.get("pretrained")
    if name in _SOURCES and isinstance(pretrained, str):
        kwargs["pretrained"] = resolve_weights(name, pretrained)
    model = _ENTRYPOINTS[name](**kwargs)
    model.model_name = name  # type: ignore[attr-defined]
    if not hasattr(model, "weights_provenance"):
        model.weights_provenance = "random"  # type: ignore[attr-defined]
    return model
