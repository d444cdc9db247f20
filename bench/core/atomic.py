"""Atomic file writes (temporary file in the same folder + rename): a crash never leaves half a file."""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def write_atomic(path: Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp)`` then rename ``tmp`` to ``path`` (a unique temporary name in the same
    folder; the result gets the permissions a plain new file would, i.e. 0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def finite(obj: object) -> object:
    """``obj`` with every NaN or infinite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_json(path: Path, obj: object) -> Path:
    """Strict JSON: an undefined number (NaN, inf) is written as ``null``."""
    return write_text(path, json.dumps(finite(obj), indent=2, sort_keys=False, default=str,
                                       allow_nan=False) + "\n")


def write_csv(path: Path, df: pd.DataFrame, float_format: str | None = None) -> Path:
    """``df`` as CSV without its index; ``float_format`` (e.g. ``"%.10g"``) rounds every float
    column as it is written (``None``: full precision, as a run's predictions are kept)."""
    return write_atomic(path, lambda p: df.to_csv(p, index=False, lineterminator="\n",
                                                  float_format=float_format))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A compressed ``.npz`` (readable by ``np.load``) whose bytes depend on the arrays only: keys
    sorted and a fixed timestamp, unlike ``np.savez_compressed`` (so reports are byte-identical)."""
    def writer(p: Path) -> None:
        with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key in sorted(arrays):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(arrays[key]), allow_pickle=False)
    return write_atomic(path, writer)


@contextmanager
def exclusive(lock_path: Path, waiting: str):
    """Hold an exclusive lock on ``lock_path`` (``fcntl.flock``); print ``waiting`` and block while
    another process holds it. The lock ends with the process, also when it is killed."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(waiting, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish_folder(target: Path, build: Callable[[Path], None], ready: Callable[[Path], bool],
                   waiting: str) -> bool:
    """Make the folder ``target`` once, also when several processes (SLURM jobs on a shared file
    system included) ask for it at once: under :func:`exclusive` on ``.<name>.lock`` beside it,
    the first builds it into a temporary sibling ``.<name>.<random>.tmp`` with ``build(tmp)`` and
    renames that to ``target``; the others wait (saying ``waiting``) and find it ``ready``. Only
    ``target`` is ever read, so a temporary sibling left by a killed builder is never taken for
    the folder; the next builder removes it. Returns whether this call built it."""
    target = Path(target)
    if ready(target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(target.parent / f".{target.name}.lock", waiting):
        if ready(target):  # built while this process waited
            return False
        for stale in target.parent.glob(f".{target.name}.*.tmp"):  # killed builders' leftovers
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            build(tmp)
            if target.exists():  # an unfinished folder (not ready): set aside, then removed
                aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp",
                                              dir=target.parent))
                os.replace(target, aside / "old")
                shutil.rmtree(aside, ignore_errors=True)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return True
