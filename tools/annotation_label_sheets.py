"""Draw the BUSI images to be labelled by eye for burnt-in annotations (docs/protocol.md,
"Burnt-in annotations"): a stratified random sample with a fixed seed, numbered tiles at the
images' own resolution with a ruler every 50 px on the tile border, and no detector output.

    python tools/annotation_label_sheets.py --data ../shared/data/BUSI --out /tmp/label_sheets

Writes ``sample.csv`` (number, id, label, part) and ``sheet_NN.png``. The first 50 numbers are the
tuning part (the detector may be tuned on them), the rest the held-out part it is measured on.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.data.images import read_image

PER_CLASS = {"benign": 70, "malignant": 50, "normal": 40}
SEED = 27
N_TUNE = 50
COLS, ROWS, TILE = 3, 3, 360


def sample(root: Path) -> list[tuple[str, str, str]]:
    """(id, label, relative path) of the drawn images, shuffled, stratified by class."""
    rng = np.random.default_rng(SEED)
    out = []
    for label, n in PER_CLASS.items():
        pool = sorted((p.stem, label, f"{label}/{p.name}") for p in (root / label).glob("*.png")
                      if "_mask" not in p.name)
        out += [pool[k] for k in rng.choice(len(pool), n, replace=False)]
    return [out[k] for k in rng.permutation(len(out))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = sample(a.data)
    with open(a.out / "sample.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "id", "label", "part"])
        for k, (sid, label, _) in enumerate(rows, 1):
            w.writerow([k, sid, label, "tune" if k <= N_TUNE else "held_out"])
    per = COLS * ROWS
    for s in range(0, len(rows), per):
        sheet = Image.new("L", (COLS * (TILE + 30), ROWS * (TILE + 40)), 255)
        d = ImageDraw.Draw(sheet)
        for k, (_, _, rel) in enumerate(rows[s:s + per]):
            x, y = (k % COLS) * (TILE + 30) + 20, (k // COLS) * (TILE + 40) + 18
            img = read_image(a.data / rel).convert("L")
            sheet.paste(img, (x, y))
            d.text((x, y - 14), f"#{s + k + 1}", fill=0)
            for t in range(0, TILE + 1, 50):  # rulers outside the image
                d.line((x + t, y - 4, x + t, y - 1), fill=0)
                d.line((x - 4, y + t, x - 1, y + t), fill=0)
        sheet.save(a.out / f"sheet_{s // per + 1:02d}.png")


if __name__ == "__main__":
    main()
