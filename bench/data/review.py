"""Contact sheets for judging pairs by eye (docs/protocol.md, "Same lesion"): the candidate pairs
either side of the same-lesion rule's threshold, and numbered pair sheets without scores for the
reviewed set the rule is fitted on."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from bench.core.atomic import write_atomic
from bench.data.images import BadImageError, read_image
from bench.data.index import DataIndex, Sample

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
    draw.text((x + 4, 40), f"p {pair['p']:.2f}\nNCC z {pair['nccz']:.2f}\nemb z {pair['embz']:.2f}",
              fill=0)
    return row


def review_sheet(index: DataIndex, above: list[dict], below: list[dict], path: Path,
                 threshold: float) -> Path:
    """Two columns: pairs just above the threshold (grouped) and just below it (not grouped)."""
    width = int(ROW_H * 1.6) * 2 + 90
    rows = max(len(above), len(below))
    sheet = Image.new("L", (2 * width + 20, rows * (ROW_H + 18) + 30), 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 6), f"linked: p >= {threshold:g} (lowest shown)", fill=0)
    draw.text((width + 24, 6), f"not linked: p < {threshold:g} (highest shown)", fill=0)
    for col, pairs in enumerate((above, below)):
        for k, pair in enumerate(pairs):
            sheet.paste(_pair_row(index, pair, width), (col * (width + 20), 30 + k * (ROW_H + 18)))
    return write_atomic(path, lambda p: sheet.save(p, format="PNG", optimize=True))


PAIR_H = 200


def _lesion_box(index: DataIndex, sample, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Bounding box of the union of a sample's masks in a tile of ``size`` (or ``None``)."""
    box = None
    for rel in sample.masks:
        try:
            m = Image.open(index.root / rel).convert("L").resize(size, Image.NEAREST)
        except OSError:
            continue
        b = m.point(lambda v: 255 if v > 127 else 0).getbbox()
        if b is not None:
            box = b if box is None else (min(box[0], b[0]), min(box[1], b[1]),
                                         max(box[2], b[2]), max(box[3], b[3]))
    return box


def _pair_tile(index: DataIndex, sample) -> Image.Image:
    """One image at ``PAIR_H`` px height, its lesion mask's box drawn 4 px outside the lesion."""
    try:
        img = read_image(index.abspath(sample)).convert("L")
    except BadImageError:
        img = Image.new("L", (PAIR_H, PAIR_H), 128)
    img = ImageOps.contain(img, (int(PAIR_H * 1.7), PAIR_H))
    box = _lesion_box(index, sample, img.size)
    if box is not None:
        draw = ImageDraw.Draw(img)
        x0, y0, x1, y1 = box
        for k, shade in ((4, 255), (5, 0)):
            draw.rectangle((x0 - k, y0 - k, x1 + k, y1 + k), outline=shade)
    return img


Side = tuple[DataIndex, Sample, str]  # an image of a data set and its caption


def tile_pairs(rows: list[tuple[Side, Side]], out_dir: Path, per_sheet: int = 6,
               stem: str = "pairs") -> list[Path]:
    """Contact sheets of image pairs, one pair a row (``<stem>_NN.png``). Each image shows its
    lesion mask's bounding box, drawn just outside the lesion."""
    width = 2 * int(PAIR_H * 1.7) + 30
    paths = []
    for start in range(0, len(rows), per_sheet):
        chunk = rows[start:start + per_sheet]
        sheet = Image.new("L", (width, len(chunk) * (PAIR_H + 30) + 6), 255)
        draw = ImageDraw.Draw(sheet)
        for k, pair in enumerate(chunk):
            y = 6 + k * (PAIR_H + 30)
            draw.line((0, y - 3, width, y - 3), fill=0)
            x = 4
            for index, sample, caption in pair:
                draw.text((x, y), caption, fill=0)
                sheet.paste(_pair_tile(index, sample), (x, y + 18))
                x += int(PAIR_H * 1.7) + 22
        sheet = ImageOps.posterize(sheet, 6)  # 64 grey levels: a third smaller, looks the same
        path = out_dir / f"{stem}_{start // per_sheet + 1:02d}.png"
        paths.append(write_atomic(path, lambda p, s=sheet: s.save(p, format="PNG", optimize=True)))
    return paths


def pair_sheets(index: DataIndex, pairs: list[tuple[int, str, str]], out_dir: Path,
                per_sheet: int = 6, stem: str = "pairs", hide_names: bool = False) -> list[Path]:
    """Sheets of numbered pairs (``(number, id_a, id_b)``) of one data set for judging by eye
    whether two images show the same lesion; no score is printed, so the judge is blind to the
    measures. ``hide_names``: captions ``pair N: A`` / ``pair N: B`` instead of the file names
    (whose numbers would say which pairs are consecutive shots)."""
    by_id = {s.id: s for s in index.samples}

    def caption(n: int, side: str, sample_id: str) -> str:
        return f"pair {n}: {side if hide_names else sample_id}"

    rows = [((index, by_id[a], caption(n, "A", a)), (index, by_id[b], caption(n, "B", b)))
            for n, a, b in pairs]
    return tile_pairs(rows, out_dir, per_sheet, stem)
