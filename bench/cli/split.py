"""``python -m bench.split``: build a split manifest and its report (docs/protocol.md, Held-out test and cross-validation).

Writes ``<out>.csv`` (``id,path,label,group,split,fold``; paths relative to the data root),
``<out>_report.json`` (counts, duplicate and same-lesion groups, the rule and its validation,
excluded label conflicts, skipped/ignored files; with ``--force``, how many same-lesion groups the
replaced manifest split and how many test images changed) and ``<out>_review.png`` (the candidate
pairs just above and just below the rule's threshold, to check it by eye). An existing manifest is
never overwritten unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli import number
from bench.core.atomic import write_json
from bench.core.errors import BenchError, cli_main, ensure_writable
from bench.core.paths import SPLITS_DIR
from bench.data.datasets import KINDS, load_index
from bench.data.manifest import (
    HASH_SIDE,
    SplitConfig,
    check_leakage,
    group_images,
    lesion_leaks,
    make_split,
    manifest_fingerprints,
    read_manifest,
    write_manifest,
)
from bench.data.multisite import site_of, site_paths
from bench.data.review import review_sheet

HASH_BITS = HASH_SIDE * HASH_SIDE  # the dHash's length


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.split", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="data root (default: synthetic phantom)")
    p.add_argument("--dataset", default="auto", choices=KINDS,
                   help="data layout (auto-detected by default)")
    p.add_argument("--out", type=Path, default=None,
                   help="manifest path (default: datasets/splits/<kind>.csv)")
    p.add_argument("--test-per-class", type=number("--test-per-class", above=True),
                   default=SplitConfig.test_per_class,
                   help="held-out test images per class, drawn by group (default 50)")
    p.add_argument("--folds", type=number("--folds", minimum=2), default=SplitConfig.folds,
                   help="group-aware stratified CV folds of the rest (default 10)")
    p.add_argument("--seed", type=number("--seed"), default=SplitConfig.seed,
                   help="seed of the test draw and the folds (default 2021)")
    p.add_argument("--hash-threshold", type=number("--hash-threshold", below=HASH_BITS + 1),
                   default=SplitConfig.hash_threshold,
                   help=f"max differing bits of the {HASH_BITS}-bit dHash for near-duplicates "
                        f"(0 to {HASH_BITS})")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="leave out unreadable or tiny images (listed in the report) instead "
                        "of stopping")
    p.add_argument("--force", action="store_true", help="overwrite an existing manifest")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is not None:  # checked before the data is read and the split computed
        check_out(args.out, args.force)
    index = load_index(args.data, args.dataset)
    out = args.out or SPLITS_DIR / f"{index.kind}.csv"
    if args.out is None:  # the default path is known once the data set's kind is
        check_out(out, args.force)
    cfg = SplitConfig(test_per_class=args.test_per_class, folds=args.folds, seed=args.seed,
                      hash_threshold=args.hash_threshold)
    manifest, report = make_split(index, cfg, skip_bad=args.skip_bad_images)
    check_leakage(manifest, "generated split")
    if site_paths(args.data) is not None:  # several sites split as one: one picture, one group
        report["cross_site_groups"] = cross_site_groups(manifest)
    if out.exists():
        report["replaced_manifest"] = replaced(out, manifest, index, cfg)
    write_manifest(manifest, out)
    report_path = out.with_name(out.stem + "_report.json")
    write_json(report_path, report)
    lesion = report["same_lesion"]
    review_sheet(index, lesion["just_above_threshold"], lesion["just_below_threshold"],
                 out.with_name(out.stem + "_review.png"), cfg.rule.threshold)
    c = report["counts"]
    print(f"wrote {out} and {report_path.name}: train {c['train']}, test {c['test']}, "
          f"excluded {c['excluded']}; {len(report['duplicate_groups'])} duplicate groups, "
          f"{len(report['excluded_label_conflicts'])} label conflicts, largest group "
          f"{lesion['average_linkage']['largest_group']} images, "
          f"{len(report['skipped_bad_images'])} bad images skipped, "
          f"{len(report['ignored_files'])} files ignored"
          + (f"; {len(report['cross_site_groups'])} groups span two or more sites (copies of one "
             "picture or the same lesion, grouped as within a site)"
             if "cross_site_groups" in report else ""))
    return 0


def cross_site_groups(manifest) -> list[list[str]]:
    """The groups of a several-site split with images of more than one site (their IDs)."""
    sites = site_of(manifest.id)
    return [sorted(rows.id) for _, rows in manifest.groupby("group", sort=True)
            if sites[rows.index].nunique() > 1]


def check_out(out: Path, force: bool) -> None:
    """``--out`` names a manifest file that may be written: not a folder, not an existing
    manifest without ``--force``, in a folder that takes a new file (before any work is done)."""
    if out.is_dir():
        raise BenchError(f"--out {out}: is a folder; give the manifest's file name, e.g. "
                         f"--out {out / 'my_split.csv'}")
    if out.exists() and not force:
        raise BenchError(f"--out {out}: manifest exists; pass --force to replace it or choose "
                         "another --out")
    ensure_writable(out.parent, "--out")


def replaced(path: Path, new, index, cfg: SplitConfig) -> dict:
    """What the new rule finds wrong with the manifest it replaces, and how the test set moved."""
    try:
        old = read_manifest(path)
    except BenchError as exc:  # --force replaces whatever stands there
        return {"note": f"the replaced file is not a readable manifest ({exc})"}
    fp = manifest_fingerprints(old, index, cfg)
    if fp is None:
        return {"note": "the replaced manifest lists images that are not in the data"}
    leaks = lesion_leaks(old, group_images(fp, cfg))
    cross = [(i, j) for i, j, where in leaks if where == "in train and test"]
    old_test, new_test = set(old.id[old.split == "test"]), set(new.id[new.split == "test"])
    return {"groups_split_train_test": len(cross),
            "test_images_with_a_training_image_of_their_group": sorted(
                {old.id.iloc[i] if old.split.iloc[i] == "test" else old.id.iloc[j]
                 for i, j in cross}),
            "groups_split_across_folds": len(leaks) - len(cross),
            "test_images_changed": len(new_test - old_test),
            "test_images_kept": len(new_test & old_test)}
