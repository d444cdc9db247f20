"""``python -m bench.run --model fus2net``: one model through the benchmark protocol (docs/protocol.md, Held-out test and cross-validation).

Resolves the profile, reads the data and its split manifest (refusing leaky ones), trains the CV
folds and the final fit, evaluates once on the held-out test set and writes, in
``<out>/<model>-<data>-<config hash>/``: ``config.json``, ``predictions.csv``, ``metrics.json``,
``cv_metrics.csv``, ``model.safetensors`` and per-stage folders that make reruns resume
(:mod:`bench.engine.runfolder`). The command line only: the library call is
:func:`bench.engine.runner.run`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.cli import number
from bench.core.errors import INTERRUPTED_RUN, cli_main, in_flag_words
from bench.core.paths import RESULTS_DIR
from bench.core.provenance import portable
from bench.data.augment import AUGMENT_POLICIES
from bench.data.datasets import KINDS
from bench.engine.allimage import check_evaluation
from bench.engine.profiles import PROFILES
from bench.engine.runfolder import RunFolder
from bench.engine.runner import run
from bench.engine.spec import REFERENCE, SEED_RULE, RunOptions, check_seed
from bench.stats.registry import Metric, View, listed
from models import list_models
from models.plugins import resolve_model

DEFAULT_OUT = RESULTS_DIR / "runs"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=REFERENCE,
                   help=f"registered model ({', '.join(list_models())}), or a model from a local "
                        "file or module: path/to/file.py:NAME, package.module:NAME")
    p.add_argument("--data", type=Path, default=None,
                   help="data root or CSV manifest; default: the embedded synthetic phantom")
    p.add_argument("--dataset", default="auto", choices=KINDS, help="data layout")
    p.add_argument("--split", type=Path, default=None,
                   help="split manifest CSV (default: datasets/splits/busi.csv for BUSI, else built "
                        "on the fly and saved in the run folder)")
    p.add_argument("--profile", default="auto", choices=["auto", *PROFILES],
                   help="auto = paper on CUDA, cpu on CPU")
    p.add_argument("--folds", type=number("--folds"), default=None,
                   help="CV folds (0 = no CV, only the final fit)")
    p.add_argument("--epochs", type=number("--epochs", above=True), default=None,
                   help="training epochs (default: the profile's: 20 cpu, 1 smoke; paper: the "
                        "model recipe's, 53 for Fus2Net)")
    p.add_argument("--img-size", type=number("--img-size", above=True), default=None,
                   help="input side in pixels (default: the profile's: 64 cpu and smoke, 75 "
                        "for InceptionV3 models; paper: the model's own, 299 for Fus2Net)")
    p.add_argument("--batch-size", type=number("--batch-size", above=True), default=None,
                   help="training batch size (default: the profile's, 16)")
    p.add_argument("--optimizer", choices=["adam", "rmsprop", "sgd"], default=None,
                   help="default: the model recipe's (Adam for Fus2Net)")
    p.add_argument("--lr", type=number("--lr", float), default=None, help="default: Keras default of the optimizer")
    p.add_argument("--channels", type=int, choices=[3, 1], default=3,
                   help="input channels: 3 = the grey image replicated, 1 = single channel "
                        "(Table 1)")
    p.add_argument("--no-augment", action="store_true", help="disable augmentation (Table 2)")
    p.add_argument("--augment", default="paper", choices=list(AUGMENT_POLICIES),
                   help="augmentation policy: paper (rotation, shift, shear, flip, brightness; "
                        "the default) or ultrasound (the paper's plus speckle, gain/TGC, gamma, "
                        "blur, down-up sampling, depth zoom, sector/border masks; "
                        "docs/protocol.md, Ultrasound-aware augmentation)")
    p.add_argument("--bn-stats", default="recalibrated", choices=["recalibrated", "running"],
                   help="BatchNorm statistics of the trained model: re-estimated on the training "
                        "images after the last epoch (default; docs/splits.md, Protocol) or the running "
                        "averages of training as they are")
    p.add_argument("--l2", type=number("--l2", float), default=None, help="Fus2Net FC L2 factor (0 disables)")
    p.add_argument("--dropout", type=number("--dropout", float, below=1), default=None, help="Fus2Net dropout rate (0 disables)")
    p.add_argument("--pretrained", default="auto",
                   help="auto | require | hub | none | PATH: where ImageNet weights come from "
                        "(recorded); require = auto, but stop if they are unavailable")
    p.add_argument("--seed", default=0,
                   help=f"training seed (weights, data order, augmentation): {SEED_RULE}; the "
                        "split is its manifest's (seed 2021), whatever this seed")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto = cuda when available, else cpu")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="folder of run folders; the run is <out>/<model>-<data>-<config hash>/")
    p.add_argument("--test-per-class", type=number("--test-per-class", above=True), default=50,
                   help="held-out test images per class when the split is built on the fly")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="exclude unreadable/too-small images (listed in the split report)")
    p.add_argument("--concurrent-folds", default="auto",
                   help="train up to N stages (CV folds + final fit) at once with the stacked "
                        "engine (bench.engine.stacked); 1 = one at a time with the reference engine; "
                        "auto = all at once on CUDA, 1 on CPU")
    p.add_argument("--save-fold-weights", action="store_true",
                   help="also keep each CV fold's weights (the final fit's are always kept)")
    p.add_argument("--threads", type=number("--threads", above=True), default=None,
                   help="CPU threads (torch intra- and inter-op, OpenMP, MKL); default: the "
                        "CPUs given to this process (a suite job's --cpus-per-job, SLURM's "
                        "SLURM_CPUS_PER_TASK, else the affinity mask); recorded in config.json")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--annotations", default="keep", choices=["keep", "clean"],
                   help="keep the images as they are, or train and score on copies with the "
                        "burnt-in annotations (calipers, measuring lines, text, overlays) detected "
                        "and inpainted (bench.data.annotate; part of the run hash)")
    p.add_argument("--evaluation", default="heldout",
                   help="heldout: CV folds + final fit, scored once on the held-out test (the "
                        "paper's protocol, Table 3); allcv: every usable image scored once, test "
                        "images included, by grouped K-fold (--allcv-folds) over same-lesion "
                        "groups, each image by the fold model that never saw its lesion (no "
                        "final model; its own table beside Table 3)")
    p.add_argument("--allcv-folds", type=number("--allcv-folds", above=True), default=5,
                   help="K of --evaluation allcv (at least 2)")
    p.add_argument("--external", default="",
                   help="comma-separated external data sets (paths, or synthetic:B for the "
                        "phantom's second site) to score the final model on, unchanged; a "
                        "finished run only scores them")
    p.add_argument("--adapt-bn", default="none",
                   help="comma-separated BatchNorm adaptations for scoring the --external sets, "
                        "each scored and written separately: none (as trained), target "
                        "(statistics re-estimated on the unlabelled external images), source "
                        "(the control: on the training images); not part of the run hash")
    return p


def passed_on_help(own: argparse.ArgumentParser, replaced: tuple[str, ...] = ("--model",)) -> str:
    """The epilog of a command that passes the flags it does not know to ``bench.run``
    (``bench.suite``, ``bench.sweep``): those ``bench.run`` options, as ``bench.run --help`` shows
    them. ``own`` is that command's parser with its own options added; ``replaced`` are the
    ``bench.run`` flags it sets itself for every run (``--model`` from its ``--models``)."""
    mine = {s for a in own._actions for s in a.option_strings} | set(replaced)
    run_parser = build_parser()
    fmt = run_parser._get_formatter()
    fmt.start_section("options passed on to python -m bench.run (every run gets them)")
    fmt.add_arguments([a for a in run_parser._actions
                       if a.option_strings and not mine & set(a.option_strings)])
    fmt.end_section()
    return fmt.format_help()


def summary_values(test: dict, shown: list[Metric], run_dir: Path) -> dict:
    """The test metrics of ``metrics.json``; a registered metric it does not record (registered
    after the run) computed from the run's saved test predictions."""
    values = {m.name: test.get(m.name) for m in shown}
    missing = [m for m in shown if m.name not in test]
    folder = RunFolder(run_dir)
    if missing and folder.predictions_file.is_file():
        p = folder.read_predictions()
        p = p[p.split == "test"]
        for m in missing:
            values[m.name] = float(m.function(p.label.to_numpy(), p.prob_malignant.to_numpy()))
    return values


def print_allcv_summary(model: str, metrics: dict, run_dir: Path, seconds: float) -> None:
    """An all-image run's pooled metrics over every image and its folds."""
    t, folds = metrics.get("allcv"), metrics.get("allcv_folds", {})
    print(f"\n{model}: every usable image scored once (n={folds.get('images', '?')}, "
          f"{folds.get('folds', '?')} folds by same-lesion groups) — {run_dir}")
    if t is None:
        print(f"  FAILED: {metrics.get('allcv_message')}")
    else:
        names = ("accuracy", "sensitivity", "specificity", "auc")
        print("  " + "  ".join(f"{n:>11}" for n in names))
        print("  " + "  ".join(f"{t[n]:>11.3f}" if t[n] is not None else f"{'undefined':>11}"
                               for n in names))
    print(f"  wall time {seconds:.1f} s")


def print_summary(model: str, metrics: dict, run_dir: Path, seconds: float,
                  note: str | None = None, external: dict | None = None) -> None:
    if "allcv_status" in metrics:
        print_allcv_summary(model, metrics, run_dir, seconds)
        return
    t = metrics.get("test")
    print(f"\n{model}: held-out test set (n={t['n'] if t else '?'}) — {run_dir}")
    if t is None:
        print(f"  FAILED: {in_flag_words(str(metrics.get('test_message')))}")
    else:
        shown = listed(View.SUMMARY)
        values = summary_values(t, shown, run_dir)
        print("  " + "  ".join(f"{m.name:>11}" for m in shown))
        print("  " + "  ".join(f"{values[m.name]:>11.{m.digits}f}"
                               if values[m.name] is not None else f"{'undefined':>11}"
                               for m in shown))
        print(f"  confusion: TP={t['tp']} FN={t['fn']} TN={t['tn']} FP={t['fp']}")
    cv = metrics.get("cv")
    if cv and cv["mean"]:
        print(f"  {cv['folds']}-fold CV (mean ± sd): " + ", ".join(
            f"{k} {cv['mean'][k]:.3f} ± " + (f"{cv['sd'][k]:.3f}" if cv["sd"][k] is not None
                                             else "undefined") for k in ("accuracy", "auc")) +
            (f"; {cv['failed_folds']} failed" if cv["failed_folds"] else ""))
    for name, ext in (external or {}).items():
        e = ext["test"]
        print(f"  external {name} (n={e['n']}, {ext.get('training_copies', 0)} of them copies of "
              f"training images): accuracy {e['accuracy']:.3f}, sensitivity "
              f"{e['sensitivity']:.3f}, specificity {e['specificity']:.3f}, AUC {e['auc']:.3f}")
    if note:
        print(f"  {in_flag_words(note)}")
    print(f"  wall time {seconds:.1f} s")


def options_from_argv(argv: list[str] | None) -> RunOptions:
    """The command line as :class:`RunOptions` (paths in the recorded command made portable)."""
    args = build_parser().parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    return RunOptions(
        model=resolve_model(args.model), data=args.data, dataset=args.dataset, split=args.split,
        profile=args.profile, folds=args.folds, epochs=args.epochs, img_size=args.img_size,
        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, channels=args.channels,
        augment=not args.no_augment, augment_policy=args.augment, bn_recalibration=args.bn_stats == "recalibrated", l2=args.l2, dropout=args.dropout, pretrained=args.pretrained,
        seed=check_seed(args.seed), device=args.device, out=args.out, test_per_class=args.test_per_class,
        skip_bad_images=args.skip_bad_images, concurrent_folds=args.concurrent_folds,
        save_fold_weights=args.save_fold_weights, progress=not args.no_progress,
        external=tuple(x for x in args.external.split(",") if x), threads=args.threads,
        adapt_bn=tuple(x for x in args.adapt_bn.split(",") if x),
        annotations=args.annotations,
        evaluation=check_evaluation(args.evaluation),
        allcv_folds=args.allcv_folds, command=" ".join(["python -m bench.run", shlex.join(map(portable, given))]).strip())


@cli_main(interrupted=INTERRUPTED_RUN)
def main(argv: list[str] | None = None) -> int:
    options = options_from_argv(argv)
    result = run(options)
    print_summary(options.model, result.metrics, result.run_dir, result.seconds, result.note,
                  result.external)
    return 0 if result.ok else 1
