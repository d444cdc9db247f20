"""Image decoding: any PIL-readable file to 8-bit grey or RGB, with clear errors (docs/protocol.md, Data sets).

Images above PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, about 89 M pixels) are
refused before they are decoded, like any other unusable image (``--skip-bad-images`` skips them).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.core.errors import BenchError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm"}
MIN_SIDE = 32


class BadImageError(BenchError):
    """An image file that cannot be used; ``--skip-bad-images`` turns it into a report entry."""


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _to_8bit(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 'L' or 'RGB' (16-bit scaled, palette/CMYK mapped; RGBA composited
    over black and made grey: ultrasound is grey, the alpha channel marks the scan area)."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if (mode.startswith("I;16") or arr.max() > 255) else 1.0
        return Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8), "L")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.nan_to_num(arr).astype(np.uint8), "L")
    if mode in ("1", "LA", "La"):
        return img.convert("L")
    if mode == "RGBA":  # BrEaST: a transparent frame around the scan, tinted channels → grey
        black = Image.new("RGBA", img.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, img).convert("L")
    if mode == "P":
        return img.convert("RGBA").convert("RGB") if "transparency" in img.info else img.convert("RGB")
    return img.convert("RGB")  # RGBa, CMYK, YCbCr, LAB, HSV


def read_image(path: Path) -> Image.Image:
    """Decode ``path`` fully into an 8-bit 'L' or 'RGB' image or raise :class:`BadImageError`."""
    try:
        if path.stat().st_size == 0:
            raise BadImageError(f"{path}: empty file (0 bytes); remove it or pass `skip_bad_images`")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = _to_8bit(img)
    except BadImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadImageError(
            f"{path}: image is too large to decode safely ({exc}); shrink or remove it, or pass "
            "`skip_bad_images`") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(
            f"{path}: cannot decode image ({exc.__class__.__name__}: {exc}); "
            "replace the file or pass `skip_bad_images`"
        ) from None
    if min(img.size) < MIN_SIDE:
        raise BadImageError(
            f"{path}: image is {img.size[0]}×{img.size[1]} px, smaller than {MIN_SIDE} px; "
            "remove it or pass `skip_bad_images`"
        )
    return img


def load_resized(path: Path, size: int, channels: int) -> np.ndarray:
    """Decode, convert to ``channels`` (3: RGB, grey replicated; 1: luminance) and resize bilinearly
    to ``size``×``size`` (docs/protocol.md, The paper). Returns uint8 C×H×W."""
    img = read_image(path)
    img = img.convert("RGB" if channels == 3 else "L")
    img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()
