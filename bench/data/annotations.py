"""Burnt-in annotations of ultrasound images: detection, removal and pasting (docs/protocol.md,
"Burnt-in annotations").

Scanners burn marks into the pixels: caliper crosses ("+") and the dotted measuring lines between
them, text (side, clock position, scanner name, the digits that number the calipers) and other
overlays (orientation icons drawn with an outline, region-of-interest boxes, colour). The detector
is classical image processing, with no coordinates of any data set:

1. The image is brought to a working width of ``WORK_WIDTH`` px (area interpolation), so stroke
   widths and glyph sizes are in known units whatever the scanner's resolution.
2. **Strokes**: the white top-hat (image minus its 5×5 opening) keeps bright structures at most a
   few pixels wide; a stroke pixel is one whose top-hat exceeds ``STROKE_TOPHAT`` grey levels and
   whose grey level is within the image's top ``STROKE_LEVEL_Q`` quantile band (annotations are
   drawn at a near-constant, high grey level).
3. **Calipers**: a pixel is a caliper centre when stroke pixels extend from it in all four axial
   directions (arms of 3 px or more) while the diagonal neighbours at 3 px are not stroke pixels —
   the shape of a "+" and of nothing else that is bright and thin (tissue echoes are lines, not
   crosses; an outlined box has corners, not crossings).
4. **Measuring lines**: for every pair of calipers the segment between them is sampled; where
   stroke pixels lie along it at regular gaps (dots), the dots within 2 px of the segment are the
   line.
5. **Text**: the remaining stroke pixels are merged by a horizontal closing into word blobs; a blob
   of glyph height (5–16 px at the working width) is text when it is made of vertical strokes
   (at least 3 columns, and 18 % of its columns, hold a vertical run of half its height) and no
   horizontal run is longer than a letter (12 px), and its strokes stand out sharply (mean top-hat
   of at least ``TEXT_TOPHAT``): tissue echoes are horizontal, blurred streaks. The
   digits that number calipers (a glyph within 14 px of a caliper) are text too.
6. **Other overlays**: outlined glyphs (a dark outline of at most 2 px around a bright stroke,
   found with the black top-hat) and coloured pixels (saturation of an RGB image).

Masks come back at the image's own size. :func:`clean` inpaints the masked pixels (OpenCV's Telea
or Navier–Stokes) and leaves every other pixel untouched; :func:`paste` copies one image's
annotation pixels onto another (the insertion test).

The phantom with planted marks is in :mod:`bench.data.planted`. This module is not training code (``bench/core/provenance.py``): a run that cleans its images records
the detector's own version in its hash, so runs that keep the images are unaffected by changes here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

KINDS = ("caliper", "line", "text", "other")
CODE = {k: i + 1 for i, k in enumerate(KINDS)}  # mask value of each kind (0: not annotation)
WORK_WIDTH = 360
STROKE_TOPHAT = 45
STROKE_LEVEL_Q = 0.985
ARM = 3
OUTLINE_MIN = 8  # dark outline pixels of an outlined glyph
TEXT_TOPHAT = 75  # mean top-hat of a word's strokes: drawn glyphs are sharper than echoes
INPAINT = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
# Navier–Stokes: the lower error on real annotation shapes cut into BUSI images without marks
# (python -m bench.annotations writes inpainting.csv; README, "Burnt-in annotations")
CLEAN_METHOD = "ns"


def detector_version() -> str:
    """SHA-256 (12 hex) of this module's source: part of the hash of runs on cleaned images."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class Mark:
    """One detected annotation: its kind and bounding box in image pixels (x0, y0, x1, y1)."""

    kind: str
    box: tuple[int, int, int, int]


@dataclass
class Detection:
    """The per-pixel kind map (uint8, 0 = image, ``CODE[kind]``) and the marks found."""

    kinds: np.ndarray
    marks: list[Mark] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray:
        return self.kinds > 0

    def has(self, kind: str) -> bool:
        return any(m.kind == kind for m in self.marks)


def _grey(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``out[y, x] = a[y + dy, x + dx]`` (False outside)."""
    out = np.zeros_like(a)
    h, w = a.shape
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[yd, xd] = a[ys, xs]
    return out


def stroke_mask(g: np.ndarray) -> np.ndarray:
    """Bright thin strokes (step 2 of the module docstring), at the working scale."""
    tophat = cv2.morphologyEx(g, cv2.MORPH_TOPHAT, np.ones((5, 5), np.uint8))
    level = max(float(np.quantile(g, STROKE_LEVEL_Q)) * 0.8, 120.0)
    return (tophat.astype(int) > STROKE_TOPHAT) & (g >= level)


def caliper_centres(s: np.ndarray) -> list[tuple[int, int]]:
    """Centres of "+" crosses in a stroke mask (step 3)."""
    c = s.copy()
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        for k in range(1, ARM + 1):
            c &= _shift(s, dy * k, dx * k)
    for dy, dx in ((3, 3), (3, -3), (-3, 3), (-3, -3)):
        c &= ~_shift(s, dy, dx)
    # arms are short: a cross, not the crossing of two long lines
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        c &= ~(_shift(s, dy * 9, dx * 9) & _shift(s, dy * 8, dx * 8) & _shift(s, dy * 7, dx * 7))
    n, _, _, cent = cv2.connectedComponentsWithStats(c.astype(np.uint8))
    return [(int(round(cent[k][0])), int(round(cent[k][1]))) for k in range(1, n)]


def _caliper_pixels(s: np.ndarray, centres: list[tuple[int, int]], r: int = 6) -> np.ndarray:
    m = np.zeros_like(s)
    h, w = s.shape
    for x, y in centres:
        m[max(0, y - r):min(h, y + r + 1), max(0, x - r):min(w, x + r + 1)] = True
    return m & cv2.dilate(s.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def measuring_lines(s: np.ndarray, centres: list[tuple[int, int]]
                    ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Dotted lines between pairs of calipers (step 4): their pixels and segments."""
    near = cv2.dilate(s.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    out = np.zeros_like(s)
    segs = []
    for i, (x0, y0) in enumerate(centres):
        for x1, y1 in centres[i + 1:]:
            length = float(np.hypot(x1 - x0, y1 - y0))
            if length < 20:
                continue
            t = np.linspace(0, 1, int(length))[4:-4]
            xs = np.round(x0 + t * (x1 - x0)).astype(int)
            ys = np.round(y0 + t * (y1 - y0)).astype(int)
            on = near[ys, xs]
            if on.mean() < 0.15 or on.mean() > 0.95:  # dotted: neither empty nor a solid line
                continue
            band = np.zeros(s.shape, np.uint8)
            cv2.line(band, (x0, y0), (x1, y1), 1, 5)
            out |= band.astype(bool) & s
            segs.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return out, segs


def _runs(a: np.ndarray) -> np.ndarray:
    """Longest run of True down each column of ``a``."""
    best = np.zeros(a.shape[1], int)
    cur = np.zeros(a.shape[1], int)
    for row in a:
        cur = np.where(row, cur + 1, 0)
        best = np.maximum(best, cur)
    return best


def text_blobs(s: np.ndarray, g: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Word-sized groups of strokes (step 5), as boxes at the working scale."""
    tophat = cv2.morphologyEx(g, cv2.MORPH_TOPHAT, np.ones((5, 5), np.uint8))
    closed = cv2.morphologyEx(s.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 7), np.uint8))
    n, lab, st, _ = cv2.connectedComponentsWithStats(closed)
    boxes = []
    for k in range(1, n):
        x, y, w, h, area = st[k]
        if not (5 <= h <= 16 and w >= h * 0.8 and w <= 140):
            continue
        blob = lab[y:y + h, x:x + w] == k
        strokes = s[y:y + h, x:x + w] & blob
        if strokes.sum() < 12 or tophat[y:y + h, x:x + w][strokes].mean() < TEXT_TOPHAT:
            continue
        # glyphs are made of vertical strokes (tissue echoes are horizontal streaks) and no
        # horizontal run is longer than a letter
        vertical = _runs(strokes)
        horizontal = _runs(strokes.T)
        n_vertical = int((vertical >= max(4, 0.5 * h)).sum())
        if n_vertical < 3 or n_vertical < 0.18 * w or horizontal.max() > 12:
            continue
        boxes.append((int(x), int(y), int(x + w), int(y + h)))
    return boxes


def caliper_digits(s: np.ndarray, centres: list[tuple[int, int]], reach: int = 14) -> np.ndarray:
    """Glyph-sized stroke groups next to a caliper: the digits that number it (step 5)."""
    out = np.zeros_like(s)
    if not centres:
        return out
    n, lab, st, cent = cv2.connectedComponentsWithStats(s.astype(np.uint8))
    for k in range(1, n):
        x, y, w, h, _ = st[k]
        if not (4 <= h <= 14 and w <= 12):
            continue
        cx, cy = cent[k]
        if min(np.hypot(cx - px, cy - py) for px, py in centres) <= reach:
            out |= lab == k
    return out


def outlined_glyphs(g: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Icons drawn with a dark outline around bright strokes (step 6)."""
    blackhat = cv2.morphologyEx(g, cv2.MORPH_BLACKHAT, np.ones((5, 5), np.uint8))
    dark = (blackhat.astype(int) > 70) & (g < 60)
    bright = cv2.dilate(s.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    both = cv2.dilate((dark & bright).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    out = both & (dark | s)
    n, lab, _, _ = cv2.connectedComponentsWithStats(out.astype(np.uint8))
    keep = np.bincount(lab[dark & out], minlength=n) >= OUTLINE_MIN  # a drawn outline, not a speck
    keep[0] = False
    return keep[lab]


def _colour(img: np.ndarray) -> np.ndarray:
    if img.ndim != 3:
        return np.zeros(img.shape[:2], bool)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    return (hsv[..., 1] > 80) & (hsv[..., 2] > 60)


def _boxes(m: np.ndarray, kind: str, scale: float, join: int = 3) -> list[Mark]:
    grown = cv2.dilate(m.astype(np.uint8), np.ones((join, join), np.uint8))
    n, _, st, _ = cv2.connectedComponentsWithStats(grown)
    return [Mark(kind, (int(x * scale), int(y * scale), int((x + w) * scale), int((y + h) * scale)))
            for x, y, w, h, _ in st[1:]]


def detect(img: np.ndarray) -> Detection:
    """Detect the annotations of an 8-bit grey (H×W) or RGB (H×W×3) image."""
    h, w = img.shape[:2]
    scale = max(1.0, w / WORK_WIDTH)  # larger images are brought down, smaller ones kept
    small = img if scale == 1.0 else cv2.resize(
        img, (WORK_WIDTH, max(1, round(h / scale))), interpolation=cv2.INTER_AREA)
    g = _grey(small)
    s = stroke_mask(g)
    centres = caliper_centres(s)
    kinds = np.zeros(g.shape, np.uint8)
    cal = _caliper_pixels(s, centres)
    line, _ = measuring_lines(s, centres)
    outlined = outlined_glyphs(g, s)
    rest = s & ~cal & ~line
    text = np.zeros_like(s)
    for x0, y0, x1, y1 in text_blobs(rest, g):
        text[y0:y1, x0:x1] |= rest[y0:y1, x0:x1] | outlined[y0:y1, x0:x1]
    text |= caliper_digits(rest, centres)
    other = (outlined | _colour(small)) & ~text
    marks: list[Mark] = []
    for kind, m in (("other", other), ("text", text), ("line", line), ("caliper", cal)):
        # a stroke pixel's surroundings are blended with it: mask a 1-px margin as well
        kinds[cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)] = CODE[kind]
        marks += _boxes(m, kind, scale, 9 if kind == "text" else 3)
    if (h, w) != kinds.shape:
        kinds = cv2.resize(kinds, (w, h), interpolation=cv2.INTER_NEAREST)
        if scale > 1:  # cover the strokes' full width at the original resolution
            grown = cv2.dilate(kinds, np.ones((3, 3), np.uint8))
            kinds = np.where(kinds > 0, kinds, grown)
    return Detection(kinds=kinds, marks=marks)


def clean(img: np.ndarray, mask: np.ndarray, method: str = "telea", radius: int = 3) -> np.ndarray:
    """Inpaint the pixels of ``mask``; every pixel outside it is returned unchanged."""
    if method not in INPAINT:
        raise ValueError(f"inpainting method {method!r}: choose one of {sorted(INPAINT)}")
    m = mask.astype(bool)
    if not m.any():
        return img.copy()
    filled = cv2.inpaint(np.ascontiguousarray(img), m.astype(np.uint8), radius, INPAINT[method])
    out = img.copy()
    out[m] = filled[m]
    return out


def paste(src: np.ndarray, src_mask: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``dst`` with ``src``'s annotation pixels copied in (both brought to ``dst``'s size; the
    mask by nearest neighbour). Grey and RGB mix by converting ``src`` to ``dst``'s mode."""
    h, w = dst.shape[:2]
    if src.ndim != dst.ndim:
        src = cv2.cvtColor(src, cv2.COLOR_GRAY2RGB) if dst.ndim == 3 else _grey(src)
    if src.shape[:2] != (h, w):
        src = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
        src_mask = cv2.resize(src_mask.astype(np.uint8), (w, h),
                              interpolation=cv2.INTER_NEAREST).astype(bool)
    out = dst.copy()
    out[src_mask.astype(bool)] = src[src_mask.astype(bool)]
    return out


def fitted_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` brought to the image size ``shape[:2]`` as :func:`paste` brings it (nearest
    neighbour)."""
    h, w = shape[:2]
    m = mask.astype(bool)
    if m.shape != (h, w):
        m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return m


def mark_intensity(src: np.ndarray, src_mask: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The mean value of ``src``'s annotation pixels in ``dst``'s mode (one grey level, or one
    RGB triple), as :func:`paste` would copy them."""
    if src.ndim != dst.ndim:
        src = cv2.cvtColor(src, cv2.COLOR_GRAY2RGB) if dst.ndim == 3 else _grey(src)
    m = src_mask.astype(bool)
    if m.shape != src.shape[:2]:
        m = fitted_mask(m, src.shape)
    if not m.any():
        return np.zeros(dst.shape[2:], dst.dtype)
    return np.asarray(src[m].mean(axis=0)).round().astype(dst.dtype)


_STEPS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))


def random_marks(mask: np.ndarray, rng: np.random.Generator, turn: float = 0.2,
                 brush: int = 3) -> np.ndarray:
    """A random-shape control for the marks ``mask``: per connected component (8-connected), a
    stroke drawn by a persistent random walk from the component's centroid (a new direction with
    probability ``turn`` per step, a ``brush``×``brush`` pen; 1 px for components under 20 px)
    until it covers exactly as many pixels as the component. Same position and pixel count as the
    marks, a shape of no scanner (docs/protocol.md, "Burnt-in annotations": insertion controls)."""
    m = mask.astype(bool)
    h, w = m.shape
    out = np.zeros_like(m)
    n, lab, stats, cent = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    for k in range(1, n):
        need = min(int(stats[k, cv2.CC_STAT_AREA]), int(h * w - out.sum()))
        r = (brush // 2) if need >= 20 else 0
        pen = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        y, x = int(round(cent[k][1])), int(round(cent[k][0]))
        d = int(rng.integers(0, 8))
        got = 0
        while got < need:
            for dy, dx in pen:
                yy, xx = y + dy, x + dx
                if got < need and 0 <= yy < h and 0 <= xx < w and not out[yy, xx]:
                    out[yy, xx] = True
                    got += 1
            if rng.random() < turn:
                d = int(rng.integers(0, 8))
            ny, nx = y + _STEPS[d][0], x + _STEPS[d][1]
            if not (0 <= ny < h and 0 <= nx < w):  # turn away from the border
                d = int(rng.integers(0, 8))
                continue
            y, x = ny, nx
    return out


def paint(dst: np.ndarray, mask: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``dst`` with the pixels of ``mask`` (brought to ``dst``'s size) set to ``value``."""
    out = dst.copy()
    out[fitted_mask(mask, dst.shape)] = value
    return out


def read_array(path: Path) -> np.ndarray:
    """An image file as uint8 H×W (grey) or H×W×3 (RGB), decoded by :func:`read_image`."""
    from bench.data.images import read_image

    return np.asarray(read_image(path))


def clean_file(src: Path, dst: Path, method: str = "telea") -> Detection:
    """Detect and inpaint ``src``'s annotations; write the cleaned image to ``dst`` (PNG bytes,
    lossless, whatever the name's suffix). Returns the detection."""
    from PIL import Image

    from bench.core.atomic import write_atomic

    img = read_array(src)
    det = detect(img)
    out = clean(img, det.mask, method)
    write_atomic(dst, lambda p: Image.fromarray(out).save(p, format="PNG"))
    return det


def cleaned_copy(root: Path, paths: list[str], method: str = "telea",
                 cache_root: Path | None = None) -> Path:
    """A cleaned copy of the images ``paths`` (relative to ``root``), cached under
    ``datasets/cache/annotations-clean/`` by detector version, method and the images' identity;
    returns its root (same relative paths). Images are cleaned once; a copy missing some is
    completed."""
    from bench.data.synthetic import default_cache_root

    stamp = []
    for rel in sorted(paths):  # a source replaced under the same name gets a new copy
        st = (Path(root) / rel).stat()
        stamp.append(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}")
    key = hashlib.sha256("\n".join([str(Path(root).resolve()), method, detector_version(), *stamp])
                         .encode()).hexdigest()[:16]
    out = (cache_root or default_cache_root()) / "annotations-clean" / f"{method}-{key}"
    if all((out / rel).is_file() for rel in paths):
        return out
    from bench.core.atomic import exclusive

    # one process cleans at a time (jobs of a suite ask at once); each image is written
    # atomically, so a killed cleaner leaves whole images only, and the next one completes them
    with exclusive(out.parent / f".{out.name}.lock",
                   f"waiting: another process is cleaning these images into {out}"):
        for rel in paths:
            if not (out / rel).is_file():
                clean_file(Path(root) / rel, out / rel, method)
    return out

