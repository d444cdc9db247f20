"""What every run records: versions, git revision, device, hashes (docs/protocol.md, "Runs and profiles")."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from bench.core.paths import PROJECT_ROOT
from models.pretrained import file_sha256  # noqa: F401  (one implementation)

PACKAGES = ("torch", "torchvision", "timm", "numpy", "pillow", "scipy", "scikit-learn", "pandas",
            "safetensors")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision() -> str:
    """``<sha>`` of the project checkout, ``+dirty`` when its code has uncommitted changes.

    Generated output under ``results/`` does not count: regenerating a committed results set
    rewrites tracked files there while its runs are still being made."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10).stdout
        return sha + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# The code a run's numbers depend on (data pipeline, engines, metrics, models); the report and the
# command-line front ends may change without invalidating finished runs.
TRAINING_CODE = ("bench/data", "bench/engine/train.py", "bench/engine/stacked.py", "bench/engine/protocol.py",
                 "bench/stats/metrics.py", "bench/engine/profiles.py", "models")
# The annotation detector is not training code: its own version enters the hash of the runs that
# clean their images (RunSpec.annotations), so runs that keep them do not depend on it.
NOT_TRAINING_CODE = ("bench/data/annotations.py", "bench/data/planted.py", "bench/data/annotate.py",
                     "bench/data/pairs.py")


def code_version() -> str:
    """SHA-256 (12 hex) of the training code's source files, independent of git and of dirty
    trees: runs are reused only when it matches."""
    h = hashlib.sha256()
    for entry in TRAINING_CODE:
        path = PROJECT_ROOT / entry
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if f.relative_to(PROJECT_ROOT).as_posix() in NOT_TRAINING_CODE:
                continue
            h.update(f.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def portable(value: str | Path) -> str:
    """A path as committed results may hold it: relative to the project when it is absolute."""
    text = str(value)
    if not Path(text).is_absolute():
        return text
    return Path(os.path.relpath(text, PROJECT_ROOT)).as_posix()


def from_portable(text: str | Path) -> Path:
    """A recorded path (:func:`portable`) as a location: relative to the project when relative,
    never to the current directory (the one rule every reader of a record follows)."""
    path = Path(text)
    if "," in str(text) and not path.exists() and not (PROJECT_ROOT / path).exists():
        return Path(",".join(str(from_portable(p)) for p in str(text).split(",")))  # several sites
    return path if path.is_absolute() else PROJECT_ROOT / path


def recorded_location(value: str | Path) -> str:
    """A path the user gave, resolved against the current directory now and recorded portably
    (relative to the project when that holds it), so a later reader finds it from anywhere.
    Several sites (``A,B``, none of them a path with a comma) are recorded one by one."""
    if "," in str(value) and not Path(value).exists():
        return ",".join(recorded_location(p) for p in str(value).split(",") if p.strip())
    return portable(Path(value).expanduser().resolve())


def device_info(device: str) -> dict[str, str | int]:
    dev = torch.device(device)
    info: dict[str, str | int] = {"device": str(dev), "threads": torch.get_num_threads(),
                                  "cpu": platform.processor() or platform.machine()}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = str(torch.version.cuda)
    return info


def config_hash(obj: dict) -> str:
    """Stable short hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]
