"""Atomic file writes (temporary file in the same folder + rename): a crash never leaves half a
file. :func:`output_folder` does the same for a command's whole output folder (built beside it,
published by rename, locked for the whole command), :func:`exclusive` is the lock."""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError

log = logging.getLogger(__name__)


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


def _open_lock(lock_path: Path):
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        if lock_path.is_dir():
            raise IsADirectoryError(21, "Is a directory")
        return open(lock_path, "a")
    except OSError as exc:
        what = "a folder is where the lock file goes; remove it" if isinstance(
            exc, IsADirectoryError) else f"cannot create the lock file ({exc.strerror})"
        raise BenchError(f"{lock_path}: {what}") from None


@contextmanager
def exclusive(lock_path: Path, waiting: str, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (``fcntl.flock``); print ``waiting`` and block while
    another process holds it. The lock ends with the process, also when it is killed. A folder
    (or anything unwritable) where the lock file goes is one line naming it. ``remove``: delete
    the lock file when done (a waiter that then holds the deleted file's lock opens it anew)."""
    lock_path = Path(lock_path)
    while True:
        handle = _open_lock(lock_path)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info(waiting)
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:  # the holder before may have removed the file we waited on: lock the new one
                same = os.path.samestat(os.fstat(handle.fileno()), os.stat(lock_path))
            except FileNotFoundError:
                same = False
        except BaseException:
            handle.close()
            raise
        if same:
            break
        handle.close()
    try:
        yield
    finally:
        if remove:
            lock_path.unlink(missing_ok=True)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _entries(folder: Path, parts: tuple[str, ...] | None) -> list[str]:
    """What ``folder`` holds that a build would replace: everything, or only ``parts``."""
    if not folder.is_dir():
        return []
    if parts is None:
        return sorted(p.name for p in folder.iterdir())
    return [name for name in parts if os.path.lexists(folder / name)]


def _publish(tmp: Path, path: Path, parts: tuple[str, ...] | None, home: Path) -> None:
    """Move the build ``tmp`` into place: the whole folder (``parts`` None, or no folder there
    yet: one rename) or each of ``parts`` in order; what it replaces is renamed aside (into a
    hidden folder in ``home``) first and deleted last."""
    if parts is None or not os.path.lexists(path):
        moves = [(tmp, path)]
    else:
        moves = [(tmp / name, path / name) for name in parts]
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=home))
    try:
        for k, (src, dst) in enumerate(moves):
            if os.path.lexists(dst):
                os.replace(dst, old / str(k))
            if os.path.lexists(src):
                os.replace(src, dst)
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def output_folder(path: Path, overwrite: bool = False, parts: tuple[str, ...] | None = None,
                  check: Callable[[Path], None] | None = None, carry: bool = False,
                  option: str = "`out`",
                  remedy: str = "choose another folder or remove it") -> Iterator[Path]:
    """A command's output folder ``path``, written all or nothing: yields a temporary folder
    beside it (hidden, same file system) to build into, and publishes it by rename when the block
    ends without an error (a crash or a refusal leaves ``path`` as it was and no partial output).

    The folder is locked (:func:`exclusive`, a hidden lock file beside it) from before the checks
    to after the publish, so a second writer of the same folder waits, then finds the first one's
    output and is refused (or, where ``overwrite`` allows it, replaces it).

    ``parts`` None: the folder is the output, replaced whole. ``parts`` given (e.g. ``tables``,
    ``figures``, ``README.md``): only those entries are the output, each replaced in place in
    that order; anything else in ``path`` is left alone. ``carry``: the build starts from a copy
    of the parts already there (files a build does not rewrite are kept). Under the lock,
    ``check(path)`` (when ``path`` exists) may raise its own one-line refusal; then output already
    there is refused unless ``overwrite``, naming ``option`` and ``remedy``."""
    shown, path = path, Path(os.path.abspath(path))
    try:
        if os.path.lexists(path) and not path.is_dir():
            raise BenchError(f"{option}={shown}: is a file, not a folder; {remedy}")
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"{option}={shown}: cannot write there ({exc.strerror}); "
                         f"{remedy}") from None
    # the lock and the build go beside the folder; inside it (hidden) when only the folder is
    # writable and only parts of it are the output
    home = path if parts is not None and path.is_dir() and not os.access(path.parent, os.W_OK) \
        else path.parent
    with exclusive(home / f".{path.name}.lock", f"waiting: another command is writing {shown}; "
                   "this one goes on when it ends", remove=True):
        if check is not None and path.is_dir():
            check(shown)
        present = _entries(path, parts)
        if present and not overwrite:
            listed = ", ".join(present[:3]) + (f" and {len(present) - 3} more"
                                               if len(present) > 3 else "")
            raise BenchError(f"{option}={shown}: already exists and holds {listed}; {remedy}")
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=home))
            os.chmod(tmp, 0o777 & ~UMASK)  # what a plain new folder gets
        except OSError as exc:
            raise BenchError(f"{option}={shown}: cannot write there ({exc.strerror}); "
                             f"{remedy}") from None
        try:
            for name in (parts or ()) if carry else ():
                src = path / name
                if src.is_dir() and not src.is_symlink():
                    shutil.copytree(src, tmp / name, symlinks=True)
                elif os.path.lexists(src):
                    shutil.copy2(src, tmp / name, follow_symlinks=False)
            yield tmp
            _publish(tmp, path, parts, home)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def git_tracked(paths: list[Path]) -> list[Path]:
    """Those of ``paths`` (files, or folders: any file under them) that git tracks in the checkout
    they are in; none outside a git checkout or without git."""
    found = []
    for p in paths:
        p = Path(p).absolute()
        where = p if p.is_dir() else p.parent
        while not where.is_dir():
            where = where.parent
        try:
            listed = subprocess.run(["git", "-C", str(where), "ls-files", "-z", "--", str(p)],
                                    capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if listed.returncode == 0 and listed.stdout.strip(b"\0"):
            found.append(p)
    return found


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
