"""Decode + resize every image of a manifest once into a uint8 tensor (the one data loader).

Images are kept as ``uint8`` N×C×S×S (≈ 270 MB for 1,052 RGB images at 299 px) so training only
indexes memory and augments whole batches on the training device (:mod:`bench.data.augment`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.data.images import BadImageError, load_resized


@dataclass
class ImageCache:
    """Resized images (uint8, N×C×S×S), labels and the manifest rows they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    rows: pd.DataFrame

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> ImageCache:
        return ImageCache(self.images.to(device), self.labels.to(device), self.rows)


def build_cache(root: Path, rows: pd.DataFrame, size: int, channels: int, skip_bad: bool = False,
                workers: int = 4) -> tuple[ImageCache, list[tuple[str, str]]]:
    """Load ``rows`` (manifest rows, ``path`` relative to ``root``) at ``size`` px.

    A bad image raises :class:`BadImageError`; with ``skip_bad`` its row is dropped and returned in
    the list of ``(path, reason)``.
    """
    rows = rows.reset_index(drop=True)

    def one(rel: str) -> np.ndarray | BadImageError:
        try:
            return load_resized(root / rel, size, channels)
        except BadImageError as exc:
            if not skip_bad:
                raise
            return exc

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, rows.path.tolist()))
    bad = [(rel, str(r)) for rel, r in zip(rows.path, results, strict=True)
           if isinstance(r, BadImageError)]
    keep = [not isinstance(r, BadImageError) for r in results]
    rows = rows[keep].reset_index(drop=True)
    arrays = [r for r in results if not isinstance(r, BadImageError)]
    images = torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros(0, channels, size, size,
                                                                            dtype=torch.uint8)
    labels = torch.as_tensor(rows.label.to_numpy(dtype=np.int64))
    return ImageCache(images=images, labels=labels, rows=rows), bad
