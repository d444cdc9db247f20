"""Contact sheet of the same-scene pairs either side of the threshold (SPEC §3: "calibrated on
known pairs"), so the measure's threshold can be checked by eye."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from bench.atomic import write_atomic
from bench.data.images import BadImageError, read_image
from bench.data.index import DataIndex

ROW_H = 120


def _tile(index: DataIndex, sample_id: str) -> Image.Image:
    by_id = {s.id: s for s in index.samples}
    try:
        img = read_image(index.abspath(by_id[sample_id])).convert("L")
    except (KeyError, BadImageError):
        img = Image.new("L", (ROW_H, ROW_H), 128)
    return ImageOps.contain(img, (int(ROW_H * 1.6), ROW_H))


def _pair_row(index: DataIndex, pair: dict, width: int) -> Image.Image:
    row = Image.new("L", (width, ROW_H + 16), 255)
    draw = ImageDraw.Draw(row)
    x = 0
    for key in ("a", "b"):
        tile = _tile(index, pair[key])
        row.paste(tile, (x, 16))
        draw.text((x + 2, 2), pair[key], fill=0)
        x += tile.width + 6
    draw.text((x + 4, 40), f"z {pair['z']:.2f}\nNCC {pair['ncc']:.2f}", fill=0)
    return row


def review_sheet(index: DataIndex, above: list[dict], below: list[dict], path: Path,
                 threshold: float) -> Path:
    """Two columns: pairs just above the threshold (grouped) and just below it (not grouped)."""
    width = int(ROW_H * 1.6) * 2 + 90
    rows = max(len(above), len(below))
    sheet = Image.new("L", (2 * width + 20, rows * (ROW_H + 18) + 30), 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 6), f"grouped: z >= {threshold:g} (lowest shown)", fill=0)
    draw.text((width + 24, 6), f"not grouped: z < {threshold:g} (highest shown)", fill=0)
    for col, pairs in enumerate((above, below)):
        for k, pair in enumerate(pairs):
            sheet.paste(_pair_row(index, pair, width), (col * (width + 20), 30 + k * (ROW_H + 18)))
    return write_atomic(path, lambda p: sheet.save(p, format="PNG", optimize=True))
