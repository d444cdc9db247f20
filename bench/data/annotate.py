"""Detect, remove and review the burnt-in annotations of a data set (docs/protocol.md, "Burnt-in
annotations"); the command:

    python -m bench.annotations --data ../shared/data/BUSI --out OUT \\
        [--labels datasets/annotations/busi_labels.csv] [--method telea|ns]

Writes under ``OUT``: ``masks/<path>.png`` (per pixel the kind: 0 image, 1 caliper, 2 measuring
line, 3 text, 4 other overlay), ``cleaned/<path>`` (the image with its masked pixels inpainted),
``detections.csv`` (one row per image: the kinds found, the number of marks, the masked fraction,
the boxes), ``inpainting.csv`` (Telea against Navier–Stokes on holes of real annotation shapes cut
into images without annotations: the mean absolute error against the true pixels) and
``sheets/detections_NN.png`` (images with their detections drawn). With ``--labels`` (a CSV of
images judged by eye: ``id,label,part,caliper,line,text,other``) it also writes
``evaluation.csv`` (per part and kind: true/false positives, false negatives, precision and recall
of "the image has this kind"), ``sheets/labelled_errors_NN.png`` (every image of the evaluated
part with a missed or a false kind, captioned) and ``sheets/labelled_hits_01.png`` (12 of its
marked images judged right).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageOps

from bench.core.atomic import write_atomic, write_csv
from bench.core.errors import BenchError
from bench.data.annotations import CODE, INPAINT, KINDS, clean, detect, read_array
from bench.data.images import BadImageError

log = logging.getLogger(__name__)

COLOURS = {"caliper": (255, 40, 40), "line": (255, 200, 0), "text": (40, 160, 255),
           "other": (40, 220, 80)}
TILE_W = 260


def _overlay(img: np.ndarray, kinds: np.ndarray) -> Image.Image:
    rgb = np.stack([img] * 3, -1) if img.ndim == 2 else img.copy()
    shown = cv2.dilate(kinds, np.ones((3, 3), np.uint8))  # thin strokes stay visible when shrunk
    for kind, colour in COLOURS.items():
        rgb[shown == CODE[kind]] = colour
    return Image.fromarray(rgb)


def draw_sheets(items: list[tuple[np.ndarray, np.ndarray, str]], out: Path, stem: str,
                per_sheet: int = 12, cols: int = 3) -> list[Path]:
    """Sheets of images side by side as they are and with their detected kinds coloured
    (caliper red, line yellow, text blue, other green), each captioned."""
    paths = []
    for start in range(0, len(items), per_sheet):
        chunk = items[start:start + per_sheet]
        tiles = []
        for img, kinds, caption in chunk:
            a = Image.fromarray(img).convert("RGB")
            b = _overlay(img, kinds)
            scale = TILE_W / a.width
            size = (TILE_W, max(1, round(a.height * scale)))
            pair = Image.new("RGB", (2 * TILE_W + 4, size[1] + 16), "white")
            pair.paste(a.resize(size), (0, 16))
            pair.paste(b.resize(size, Image.NEAREST), (TILE_W + 4, 16))
            ImageDraw.Draw(pair).text((2, 2), caption, fill=(0, 0, 0))
            tiles.append(pair)
        rows = (len(tiles) + cols - 1) // cols
        h = max(t.height for t in tiles)
        sheet = Image.new("RGB", (cols * (2 * TILE_W + 14), rows * (h + 8)), "white")
        for k, t in enumerate(tiles):
            sheet.paste(t, ((k % cols) * (2 * TILE_W + 14), (k // cols) * (h + 8)))
        path = out / f"{stem}_{start // per_sheet + 1:02d}.png"
        sheet = ImageOps.posterize(sheet, 4)  # 16 levels a channel: half the bytes, colours kept
        paths.append(write_atomic(path, lambda p, s=sheet: s.save(p, format="PNG", optimize=True)))
    return paths


def _mask_png(kinds: np.ndarray, path: Path) -> None:
    write_atomic(path, lambda p: Image.fromarray(kinds).save(p, format="PNG"))


def inpainting_error(images: list[np.ndarray], masks: list[np.ndarray], seed: int = 0) -> pd.DataFrame:
    """Each method's mean absolute error (grey levels) on the pixels of real annotation masks
    cut into images that have none, against the pixels that were there."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, img in enumerate(images):
        g = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        m = masks[int(rng.integers(len(masks)))]
        m = cv2.resize(m.astype(np.uint8), (g.shape[1], g.shape[0]),
                       interpolation=cv2.INTER_NEAREST).astype(bool)
        if not m.any():
            continue
        for method in INPAINT:
            filled = clean(g, m, method)
            rows.append({"image": k, "method": method, "pixels": int(m.sum()),
                         "mae": float(np.abs(filled[m].astype(float) - g[m]).mean())})
    per = pd.DataFrame(rows)
    if per.empty:
        return per
    return per.groupby("method").agg(images=("image", "nunique"), pixels=("pixels", "sum"),
                                     mae=("mae", "mean"), mae_sd=("mae", "std")).reset_index()


def evaluate(labels: pd.DataFrame, found: dict[str, set[str]]) -> pd.DataFrame:
    """Per part and kind: image-level counts, precision and recall of the detector."""
    rows = []
    for part in [*sorted(labels.part.unique()), "all"]:
        sub = labels if part == "all" else labels[labels.part == part]
        for kind in KINDS:
            truth = sub[kind].astype(int).to_numpy() == 1
            pred = np.array([kind in found[i] for i in sub.id])
            tp, fp, fn = int((truth & pred).sum()), int((~truth & pred).sum()), int((truth & ~pred).sum())
            rows.append({"part": part, "kind": kind, "images": len(sub), "labelled": int(truth.sum()),
                         "tp": tp, "fp": fp, "fn": fn,
                         "precision": tp / (tp + fp) if tp + fp else None,
                         "recall": tp / (tp + fn) if tp + fn else None})
    return pd.DataFrame(rows)


def read_labels(path: Path) -> pd.DataFrame:
    try:
        labels = pd.read_csv(path, dtype={"id": str})
    except (OSError, ValueError) as exc:
        raise BenchError(f"`labels` {path}: cannot read it ({exc}); give a CSV of judged images") from None
    missing = {"id", "label", "part", *KINDS} - set(labels.columns)
    if missing:
        raise BenchError(f"`labels` {path}: missing column(s) {', '.join(sorted(missing))}")
    return labels


@dataclass(frozen=True)
class Annotated:
    """What :func:`annotate_dataset` found: the detections table, the inpainting errors, the
    number of images with no mark and the images it could not read."""
    table: pd.DataFrame
    inpainting: pd.DataFrame
    without_marks: int
    skipped: list[str]


def annotate_dataset(index, out: Path, method: str = "telea", sheet_images: int = 24
                     ) -> Annotated:
    """Detect and inpaint every image of ``index``: masks, cleaned images, ``detections.csv``,
    the detections sheets and ``inpainting.csv`` under ``out``."""
    rows, with_marks, without, skipped = [], [], [], []
    found: dict[str, set[str]] = {}
    for s in index.samples:
        try:
            img = read_array(index.abspath(s))
        except BadImageError as exc:
            skipped.append(str(exc))
            continue
        det = detect(img)
        found[s.id] = {m.kind for m in det.marks}
        _write_cleaned(img, det, Path(s.path), out, method)
        rows.append(_detection_row(s, det, found[s.id]))
        (with_marks if det.marks else without).append((s.id, img, det.kinds))
    table = pd.DataFrame(rows)
    write_csv(out / "detections.csv", table)
    rng = np.random.default_rng(0)
    n = sheet_images // 2
    pick = [with_marks[k] for k in sorted(rng.permutation(len(with_marks))[:n])] + \
           [without[k] for k in sorted(rng.permutation(len(without))[:n])]
    draw_sheets([(img, kinds, f"{i}: {', '.join(sorted(found[i])) or 'nothing found'}")
                 for i, img, kinds in pick], out / "sheets", "detections")
    holes = [kinds > 0 for _, _, kinds in with_marks]
    clean_imgs = [img for _, img, _ in without]
    inpaint = inpainting_error(clean_imgs[:200], holes) if holes and clean_imgs else pd.DataFrame()
    write_csv(out / "inpainting.csv", inpaint)
    return Annotated(table, inpaint, len(without), skipped)


def _write_cleaned(img: np.ndarray, det, stem: Path, out: Path, method: str) -> None:
    _mask_png(det.kinds, out / "masks" / stem.with_suffix(".png"))
    cleaned = clean(img, det.mask, method)
    write_atomic(out / "cleaned" / stem.with_suffix(".png"),
                 lambda p, c=cleaned: Image.fromarray(c).save(p, format="PNG"))


def _detection_row(s, det, kinds_found: set[str]) -> dict:
    return {"id": s.id, "path": s.path, "label": s.label,
            **{k: int(k in kinds_found) for k in KINDS}, "marks": len(det.marks),
            "mask_fraction": round(float(det.mask.mean()), 5),
            "boxes": ";".join(f"{m.kind}:{','.join(map(str, m.box))}" for m in det.marks)}


def evaluate_labels(labels: pd.DataFrame, root: Path, out: Path, part: str) -> pd.DataFrame:
    """Detect on every labelled image (``<root>/<label>/<id>.png``, normal images included),
    write ``evaluation.csv`` and the labelled part's sheets."""
    found, items = {}, []
    for r in labels.itertuples():
        path = root / str(r.label) / f"{r.id}.png"
        if not path.is_file():
            raise BenchError(f"`labels`: {path} not found; label ids must name <label>/<id>.png "
                             "under `data`")
        img = read_array(path)
        det = detect(img)
        found[r.id] = {m.kind for m in det.marks}
        if r.part == part:
            truth = {k for k in KINDS if int(getattr(r, k)) == 1}
            miss = sorted(truth - found[r.id])
            extra = sorted(found[r.id] - truth)
            caption = f"#{r.number} {r.id}: " + ("ok" if not miss and not extra else
                                                  " ".join([*(f"miss {k}" for k in miss),
                                                            *(f"extra {k}" for k in extra)]))
            items.append((img, det.kinds, caption, bool(miss or extra), bool(truth)))
    ev = evaluate(labels, found)
    write_csv(out / "evaluation.csv", ev)
    errors = [(i, k, c) for i, k, c, wrong, _ in items if wrong]
    hits = [(i, k, c) for i, k, c, wrong, marked in items if not wrong and marked]
    draw_sheets(errors, out / "sheets", "labelled_errors")  # every miss and false alarm
    draw_sheets(hits[:12], out / "sheets", "labelled_hits")
    for r in ev[ev.part == part].itertuples():
        p = "n/a" if r.precision is None or pd.isna(r.precision) else f"{r.precision:.2f}"
        q = "n/a" if r.recall is None or pd.isna(r.recall) else f"{r.recall:.2f}"
        log.info(f"{part} {r.kind}: precision {p} recall {q} ({r.tp} tp, {r.fp} fp, {r.fn} fn of "
                 f"{r.labelled} labelled in {r.images} images)")
    return ev

