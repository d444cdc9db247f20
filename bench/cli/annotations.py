"""``python -m bench.annotations --data DIR --out OUT``: detect, remove and review the burnt-in
annotations of a data set (:mod:`bench.data.annotate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.core.errors import cli_main, in_flag_words
from bench.data.annotate import annotate_dataset, evaluate_labels, read_labels
from bench.data.annotations import INPAINT, KINDS
from bench.data.datasets import KINDS as DATASET_KINDS
from bench.data.datasets import load_index


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.annotations",
                                 description="detect, remove and review burnt-in annotations")
    ap.add_argument("--data", type=Path, required=True, help="data set (any supported layout)")
    ap.add_argument("--dataset", default="auto", choices=DATASET_KINDS,
                    help="data layout (auto-detected by default)")
    ap.add_argument("--out", type=Path, required=True,
                    help="folder for masks/, cleaned/, detections.csv, inpainting.csv and the "
                         "contact sheets")
    ap.add_argument("--method", default="telea", choices=sorted(INPAINT), help="inpainting method of the cleaned/ images written here (--annotations clean "
                         "runs always use ns)")
    ap.add_argument("--labels", type=Path, help="images judged by eye, for precision and recall")
    ap.add_argument("--part", default="held_out",
                    help="the labelled part whose sheets are drawn (default held_out)")
    ap.add_argument("--sheet-images", type=int, default=24,
                    help="images with detections and without on the detections sheets")
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    labels = read_labels(a.labels) if a.labels else None
    index = load_index(a.data, a.dataset)
    done = annotate_dataset(index, a.out, a.method, a.sheet_images)
    for line in done.skipped:
        print(f"skipped: {in_flag_words(line)}")
    table = done.table
    print(f"{len(table)} images: " + ", ".join(f"{k} in {int(table[k].sum())}" for k in KINDS)
          + f"; nothing found in {done.without_marks}")
    if not done.inpainting.empty:
        print("inpainting MAE on real annotation shapes: " + ", ".join(
            f"{r.method} {r.mae:.2f}" for r in done.inpainting.itertuples()))
    if labels is not None:
        evaluate_labels(labels, index.root, a.out, a.part)
    print(f"wrote {a.out}")
    return 0
