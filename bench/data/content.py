"""Content fingerprint of the images a run uses (docs/protocol.md, Held-out test and cross-validation: results are tied to their data).

The configuration hash covers the manifest (paths and labels); this covers the pixels: a SHA-256
over every image file's bytes, so an image replaced under the same name gives a different
configuration and is never served a stale result. Hashing is cached under
``datasets/cache/content/`` by the files' paths, sizes and modification times (the fast path);
when any of those changes, the bytes are hashed again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from bench.core.atomic import write_text
from bench.core.paths import PROJECT_ROOT
from bench.core.provenance import file_sha256

CACHE_DIR = PROJECT_ROOT / "datasets" / "cache" / "content"


def content_sha256(root: Path, paths: Sequence[str], cache_dir: Path | None = CACHE_DIR) -> str:
    """SHA-256 over ``(path, SHA-256 of the file's bytes)`` of ``paths`` (relative to ``root``)."""
    stat = hashlib.sha256()
    for rel in paths:
        st = (root / rel).stat()
        stat.update(f"{root / rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    cached = cache_dir / f"{stat.hexdigest()[:32]}.txt" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        text = cached.read_text().strip()
        if len(text) == 64:
            return text
    h = hashlib.sha256()
    for rel in paths:
        h.update(f"{rel}\0{file_sha256(root / rel)}\n".encode())
    digest = h.hexdigest()
    if cached is not None:
        try:
            write_text(cached, digest + "\n")
        except OSError:
            pass  # a read-only checkout still works, only slower
    return digest
