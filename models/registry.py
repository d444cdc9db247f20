"""timm-style model registry: ``create_model(name, **kwargs)`` and what is registered, plugins'
models included (``@register_model`` fills the table, :mod:`models.entries`; the installed
plugins are imported before the first answer, :mod:`models.plugins`)."""

from __future__ import annotations

import difflib
import os
from functools import lru_cache
from pathlib import Path

from torch import nn

from models.config import ModelConfig
from models.entries import config_of, factory_of, registered_factories, source_of
from models.errors import UserError
from models.plugins import broken_plugins, load_plugins
from models.pretrained import resolve
from models.weights import Weights, WeightSource


def list_models() -> list[str]:
    """Names of all registered models (plugins' included), sorted."""
    load_plugins()
    return sorted(registered_factories())


def _check(name: str) -> None:
    names = list_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        broken = "".join(f"; plugin package {b.package!r} failed to load ({b.error})"
                         for b in broken_plugins())
        raise UserError(f"unknown model {name!r}{hint} (registered: {', '.join(names)}){broken}")


def get_model_config(name: str) -> ModelConfig:
    """The :class:`ModelConfig` of a registered model."""
    _check(name)
    return config_of(name)


def resolve_weights(name: str, pretrained: str = "auto") -> Weights:
    """The weights ``pretrained`` (none | auto | hub | PATH) gives model ``name`` and their
    provenance, decided from the registered entry without building it; resolved once per process
    and request (a file: once per file version). An entry registered without a weight source (a
    plugin's) is built once to find out."""
    _check(name)
    source = source_of(name)
    if source is None:
        return Weights(create_model(name, pretrained=pretrained).weights_provenance)
    stamp = 0
    if pretrained not in ("none", "auto", "hub") and Path(pretrained).is_file():
        stamp = os.stat(pretrained).st_mtime_ns
    return _resolved(name, source, pretrained, stamp)


@lru_cache(maxsize=4)
def _resolved(name: str, source: WeightSource, pretrained: str, stamp: int) -> Weights:
    return resolve(pretrained, source, name)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its constructor (e.g. ``in_chans``, ``dropout``,
    ``pretrained``: a mode, resolved here once per process into the :class:`Weights` the factory
    receives, for entries registered with a weight source)."""
    _check(name)
    pretrained = kwargs.get("pretrained")
    if source_of(name) is not None and isinstance(pretrained, str):
        kwargs["pretrained"] = resolve_weights(name, pretrained)
    model = factory_of(name)(**kwargs)
    model.model_name = name  # type: ignore[attr-defined]
    if not hasattr(model, "weights_provenance"):
        model.weights_provenance = "random"  # type: ignore[attr-defined]
    return model
