"""``python -m bench.suite`` (what ``./run_all.sh`` runs): every default model and the paper's
experiments on one data set and profile, then the report.

Finished runs with the same configuration are reused, so rerunning only trains what is missing. A
model that fails is reported and the others go on. Prints the wall time of every run.

This module is the command line only: it reads the flags (and a ``--config`` TOML file), builds
the typed :class:`bench.jobs.suite.SuiteSettings` and calls :func:`bench.jobs.suite.run_suite`;
the library's errors name settings, and this module names their flags. Flags it does not know are
``python -m bench.run`` flags, read once into the options every run shares.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from bench.cli.run import options_from_argv, passed_on_help, print_summary
from bench.core.errors import INTERRUPTED_RUN, BenchError, cli_main, in_flag_words
from bench.core.paths import RESULTS_DIR
from bench.core.provenance import portable
from bench.data.multisite import site_name, site_paths
from bench.engine.device import resolve_device
from bench.engine.experiments import (
    BASE,
    COMPARISON_MODELS,
    CPU_LEFT_OUT,
    default_models,
    experiment_variants,
)
from bench.engine.profiles import Profile, resolve_profile
from bench.engine.runner import RunResult
from bench.engine.sites import resolve_external_option
from bench.engine.spec import SEED_RULE, RunOptions, check_seed
from bench.engine.threads import apply_threads, resolve_threads
from bench.jobs.cluster import EXECUTORS, ClusterConfig
from bench.jobs.plan import Job, check_evaluations
from bench.jobs.suite import (
    SuiteObserver,
    SuiteSettings,
    frozen_without_weights,
    leave_one_site_out,
    run_suite,
)
from models import get_model_config
from models.errors import UserError
from models.plugins import resolve_model

DESCRIPTION = __doc__.split("\n\n")[0]


def data_name(data: Path | None) -> str:
    if data is not None and site_paths(data) is not None:  # several sites: busi+breast
        return "+".join(site_name(p) for p in site_paths(data))
    return "synthetic" if data is None else (data.stem if data.is_file() else data.resolve().name).lower()


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """``--seeds`` (or ``--experiment-seeds``): distinct seeds, each :data:`SEED_RULE`."""
    items = [x for x in text.split(",") if x.strip()]
    try:
        seeds = [check_seed(x) for x in items]
    except BenchError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise BenchError(f"{option} {text!r}: give distinct seeds, each {SEED_RULE}, e.g. 0,1,2")
    return seeds


def flag(setting: str) -> str:
    """The flag of a suite or executor setting (``gpus_per_job`` → ``--gpus-per-job``)."""
    return "--" + setting.replace("_", "-")


def cluster_config(args: argparse.Namespace) -> ClusterConfig:
    extra = []
    for item in args.slurm_extra:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise BenchError(f"--slurm-extra {item!r}: give KEY=VALUE, e.g. qos=high")
        extra.append((key.strip(), value.strip()))
    for name in ("jobs", "gpus_per_job", "cpus_per_job", "timeout_min", "retries",
                 "signal_delay_s"):
        if getattr(args, name) < 0:
            raise BenchError(f"{flag(name)} must be >= 0")
    if args.mem_gb < 0:
        raise BenchError(f"--mem-gb must be >= 0, not {args.mem_gb:g}")
    if args.threads is not None and args.threads < 1:
        raise BenchError(f"--threads must be >= 1, not {args.threads}")
    return ClusterConfig(executor=args.executor, jobs=args.jobs, gpus_per_job=args.gpus_per_job,
                         cpus_per_job=args.cpus_per_job, threads=args.threads, mem_gb=args.mem_gb,
                         timeout_min=args.timeout_min, signal_delay_s=args.signal_delay_s,
                         partition=args.partition,
                         slurm_extra=tuple(extra), retries=args.retries)


# --- the --config TOML file --------------------------------------------------------------------

# TOML settings that are comma-separated lists on the command line: a TOML list (or, for seeds,
# one integer) is accepted and joined
LIST_SETTINGS = ("models", "seeds", "experiment_seeds", "external", "data")  # data: sites
SEEDS_EXPECTED = f"a list of seeds, each {SEED_RULE} (e.g. [0, 1, 2]), or a string \"0,1,2\""


def read_config(path: Path) -> dict:
    """A TOML file of suite settings: keys are the flags' names without dashes
    (``executor = "slurm"``, ``partition = "gpu"``, ``slurm_extra = {qos = "high"}``, ...)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise BenchError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 (tomllib decodes before it parses)
        raise BenchError(f"--config {path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                         f"offset {exc.start}); a TOML file is UTF-8: save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"--config {path}: not valid TOML ({exc})") from None
    return {k.replace("-", "_"): v for k, v in data.items()}


def _config_list(key: str, value: object, action: argparse.Action, wrong) -> object:
    """A TOML list setting (models, seeds, data, ...) as its comma-separated flag value."""
    ints = key.endswith("seeds")
    items = value if isinstance(value, list) else [value]
    kinds = (int,) if ints else (str,)
    if not items or not all(isinstance(v, kinds) and not isinstance(v, bool) for v in items):
        raise wrong(SEEDS_EXPECTED if ints
                    else "a path string or a list of paths (one per site)"
                    if action.type is Path
                    else "a list of names or a comma-separated string")
    joined = ",".join(map(str, items))
    return Path(joined) if action.type is Path else joined  # data = ["../a/BUSI", "../a/BrEaST"]


def _config_slurm_extra(value: object, wrong) -> list[str]:
    if isinstance(value, dict):
        value = [f"{k}={v}" for k, v in value.items()]
    elif isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise wrong('a table (slurm_extra = { qos = "high" }) or a list of "KEY=VALUE" strings')
    return value


def _config_scalar(value: object, action: argparse.Action, wrong) -> object:
    """A TOML value checked against its flag's type: a switch, an integer, a number, a path or
    a string."""
    if action.nargs == 0:  # a switch (store_true / store_const)
        if not isinstance(value, bool) and value != action.const:
            raise wrong("true or false" if action.const is True else repr(action.const))
        if isinstance(value, bool) and action.const is not True:
            raise wrong(f"{action.const!r}")
        return value
    if action.type is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong("an integer")
        return value
    if action.type is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise wrong("a number")
        return float(value)
    if action.type is Path:
        if not isinstance(value, str):
            raise wrong("a path string")
        return Path(value)
    if not isinstance(value, str):
        raise wrong("a string")
    return value


def config_defaults(path: Path, values: dict, parser: argparse.ArgumentParser) -> dict:
    """A ``--config`` TOML file's settings as the parser's defaults, each checked against its
    flag's type (``seeds = 1.5`` or ``models = 3`` is one line naming the file and the key, not a
    traceback later): strings where the flag takes text, integers or numbers where it takes them,
    true/false for switches; ``slurm_extra`` as a table, a list of ``KEY=VALUE`` or one string."""
    actions: dict = {}
    for a in parser._actions:  # the first flag of a destination (--experiments, not --no-...)
        actions.setdefault(a.dest, a)
    out: dict = {}
    for key, value in values.items():
        action = actions[key]

        def wrong(expected: str, key: str = key, value: object = value) -> BenchError:
            shown = json.dumps(value, default=str)
            return BenchError(f"--config {path}: {key} = {shown} is not {expected}")

        if key == "slurm_extra":
            value = _config_slurm_extra(value, wrong)
        elif key in LIST_SETTINGS and not isinstance(value, str):
            value = _config_list(key, value, action, wrong)
        else:
            value = _config_scalar(value, action, wrong)
        if key.endswith("seeds"):  # each seed in range and distinct, said with the file's key
            try:
                parse_seeds(value)
            except BenchError:
                raise wrong(SEEDS_EXPECTED) from None
        if action.choices is not None and value not in action.choices:
            raise wrong(f"one of {', '.join(map(str, action.choices))}")
        out[key] = value
    return out


# --- the flags ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.suite", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file of these settings (keys: the flags without dashes); flags "
                        "override it")
    p.add_argument("--data", type=Path, default=None,
                   help="data root or CSV manifest, or several sites A,B[,C] (default: the "
                        "embedded synthetic phantom)")
    p.add_argument("--profile", default="auto",
                   help="auto (paper on CUDA, cpu on a CPU), paper, cpu or smoke "
                        "(docs/profiles.md)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto = cuda when available, else cpu")
    p.add_argument("--models", default="default",
                   help="comma-separated registered models for the comparison; 'default': all of "
                        "them on CUDA, all but " + ", ".join(CPU_LEFT_OUT) + " on CPU; 'all': all")
    p.add_argument("--experiments", default="auto", choices=["auto", "on", "off"],
                   help="the paper's Fus2Net experiments (Table 1, Fig. 1, Table 2): auto = on "
                        "with CUDA; off on a CPU, where they would take the default run past 15 "
                        "min (about 8 Fus2Net runs with CV per seed)")
    p.add_argument("--no-experiments", dest="experiments", action="store_const", const="off",
                   help="same as --experiments off")
    p.add_argument("--external", default="auto",
                   help="comma-separated external data sets to score every comparison model on "
                        "(paths, or synthetic:B; see python -m bench.run --help); auto: the "
                        "phantom's site B for the built-in phantom, the other real data sets "
                        "found in ../shared/data (BUSI, BrEaST) for real data; none: no set")
    p.add_argument("--seeds", default=None,
                   help="comma-separated training seeds, each its own run (default: the "
                        "profile's: 0,1,2 for paper, 0 for cpu and smoke)")
    p.add_argument("--experiment-seeds", default=None,
                   help="seeds of the experiment variants (default: --seeds), e.g. fewer than the "
                        "comparison's when CPU time is short")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default: results/<data>-<profile>/, runs in its runs/)")
    p.add_argument("--evaluation", default="heldout",
                   help="comma-separated: heldout (the held-out test, Table 3) and allcv (also "
                        "score every usable image once by grouped K-fold over same-lesion groups, "
                        "--allcv-folds K, default 5: its own table beside Table 3); e.g. "
                        "heldout,allcv")
    p.add_argument("--leave-one-site-out", action="store_true",
                   help="with --data A,B[,C]: train on all sites but one and score the left-out "
                        "site whole, for each site in turn; writes the matrix (rows trained on, "
                        "columns scored on) to <out>/tables/site_matrix.*")
    p.add_argument("--no-leave-one-site-out", dest="leave_one_site_out", action="store_false",
                   help=argparse.SUPPRESS)
    add_executor_flags(p)
    p.epilog = passed_on_help(p)
    return p


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the runs execute (bench/jobs/cluster.py)")
    g.add_argument("--executor", default="inline", choices=EXECUTORS,
                   help="inline: one after another in this process; local: subprocesses; slurm: "
                        "sbatch jobs; debug: submitit in this process")
    g.add_argument("--jobs", type=int, default=0, help="at most N jobs at once (0: automatic)")
    g.add_argument("--gpus-per-job", type=int, default=0,
                   help="GPUs per job (local: each job gets its own via CUDA_VISIBLE_DEVICES)")
    g.add_argument("--cpus-per-job", type=int, default=0,
                   help="CPUs per job, and so its threads (0: local = the cores shared by the "
                        "jobs at once, e.g. 2 cores and --jobs 2 give 1 each; slurm = 2)")
    g.add_argument("--threads", type=int, default=None,
                   help="CPU threads of every run (default: a job's --cpus-per-job; inline: the "
                        "CPUs of this process's affinity mask or SLURM allocation)")
    g.add_argument("--mem-gb", type=float, default=0.0,
                   help="host memory per job (slurm; 0: from the model's size, 5 GB for "
                        "Fus2Net, 9 GB for VGG19)")
    g.add_argument("--timeout-min", type=int, default=240,
                   help="a job's time limit in minutes")
    g.add_argument("--signal-delay-s", type=int, default=90,
                   help="slurm: USR2 this many seconds before the time limit; the job is "
                        "checkpointed and requeued and resumes from its finished stages")
    g.add_argument("--partition", default="",
                   help="slurm partition (default: the cluster's default)")
    g.add_argument("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra #SBATCH parameter (repeatable), e.g. qos=high")
    g.add_argument("--retries", type=int, default=2,
                   help="resubmit a job that died up to K times (it resumes); bad input is "
                        "never retried")
    g.add_argument("--log-dir", type=Path, default=None,
                   help="job logs (default: <results folder>/logs)")


# flags that are no setting a config file can hold: --help prints, --config names the file
NOT_SETTINGS = {"help", "config"}


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The suite's flags (defaults from ``--config``) and the ``bench.run`` flags it passes on."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=None)
    known, _ = pre.parse_known_args(argv)
    p = build_parser()
    if known.config is not None:
        defaults = read_config(known.config)
        settings = {a.dest for a in p._actions} - NOT_SETTINGS
        unknown = sorted(set(defaults) - settings)
        if unknown:
            raise BenchError(f"--config {known.config}: {', '.join(unknown)} "
                             f"{'is not a setting' if len(unknown) == 1 else 'are not settings'} of "
                             "the config file; its keys are the suite's flags without dashes, e.g. executor, "
                             "models, seeds (python -m bench.suite --help)")
        p.set_defaults(**config_defaults(known.config, defaults, p))
    return p.parse_known_args(argv)


# --- from flags to the typed suite -------------------------------------------------------------


def select_models(value: str, device: str) -> list[str]:
    """``--models``: default (this device's comparison set), all, or names (each checked before
    any training); the defaults leave out frozen baselines without weights, with a note."""
    if value in ("default", "all"):
        models = default_models(device) if value == "default" else list(COMPARISON_MODELS)
        for name in COMPARISON_MODELS:
            if name not in models:
                print(f"note: {name} is left out on CPU ({CPU_LEFT_OUT[name]}); "
                      "add it with --models all or --models NAME,...")
        kept = [m for m in models if not frozen_without_weights(m)]
        for name in (m for m in models if m not in kept):
            print(f"note: {name} is left out: its backbone is frozen and no ImageNet weights are "
                  "available here, so it would train a classifier on random features; ask for it "
                  f"with --models {name} (or provide weights) to run it anyway")
        return kept
    models = [m.strip() for m in value.split(",") if m.strip()]
    if not models:
        raise BenchError(f"--models {value!r}: give registered model names, default or all "
                         "(python -m bench.list)")
    try:  # every name before any training, not when its job comes up
        names = [resolve_model(m) for m in models]
        for name in names:
            get_model_config(name)
    except UserError as exc:
        raise BenchError(f"--models: {exc}") from None
    return names


def with_experiments(value: str, device: str) -> bool:
    """``--experiments``: on, off, or auto (on with CUDA; off on a CPU, said)."""
    if value == "auto" and device != "cuda":
        print("note: the paper's Fus2Net experiments are off on a CPU by default (about 8 Fus2Net "
              "runs with CV per seed); add them with --experiments on")
    return value == "on" or (value == "auto" and device == "cuda")


def base_options(args: argparse.Namespace, passthrough: list[str], prof: Profile, device: str,
                 runs_dir: Path, inline: bool, command: str) -> RunOptions:
    """The options every run shares: the ``bench.run`` flags passed on (a bad one stops the suite
    before any run), then the suite's data, profile, device, folder and threads."""
    given = options_from_argv(passthrough)
    return replace(given, data=args.data, profile=prof.name, device=device, out=runs_dir,
                   threads=args.threads if inline else None, command=command)


def settings_from_args(args: argparse.Namespace, passthrough: list[str], command: str,
                       out: Path, cluster: ClusterConfig) -> SuiteSettings:
    device = resolve_device(args.device)
    prof = resolve_profile(args.profile, device)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else list(prof.seeds)
    exp_seeds = parse_seeds(args.experiment_seeds, "--experiment-seeds") if args.experiment_seeds is not None else seeds
    base = base_options(args, passthrough, prof, device, out / "runs",
                        cluster.executor == "inline", command)
    models = select_models(args.models, device)
    experiments = with_experiments(args.experiments, device)
    external = resolve_external_option(
        args.external, None if args.data is None else site_paths(args.data) or [args.data])
    if set(base.adapt_bn) != {"none"} and not external:
        raise BenchError(f"--adapt-bn {','.join(base.adapt_bn)} adapts the scoring of external "
                         "sets, and this suite scores none: give them with --external")
    if args.external == "auto" and external:
        print(f"external sets (--external auto; none: --external none): {', '.join(external)}")
    cv = None  # the experiments are compared on CV folds only; the base run serves both tables
    if experiments and prof.folds == 0 and prof.experiment_folds and base.folds is None:
        cv = prof.experiment_folds
    return SuiteSettings(
        base=base, out=out, models=tuple(models), seeds=tuple(seeds),
        experiment_seeds=tuple(exp_seeds) if experiments else (),
        variants=tuple(experiment_variants()) if experiments else (BASE,),
        external=tuple(external), experiment_folds=cv, cluster=cluster, log_dir=args.log_dir,
        evaluations=check_evaluations([x.strip() for x in args.evaluation.split(",")
                                       if x.strip()]))


class CommandLine(SuiteObserver):
    """The suite as the command line shows it: each run's summary as ``python -m bench.run``
    prints it."""

    def words(self, message: str) -> str:
        return in_flag_words(message)

    def finished(self, job: Job, result: RunResult) -> None:
        print_summary(job.options.model, result.metrics, result.run_dir, result.seconds,
                      result.note, result.external)


def default_out(args: argparse.Namespace) -> Path:
    """``results/<data>-<profile>/`` (``-loso`` added for --leave-one-site-out)."""
    prof = resolve_profile(args.profile, resolve_device(args.device))
    out = RESULTS_DIR / f"{data_name(args.data)}-{prof.name}"
    return out.with_name(out.name + "-loso") if args.leave_one_site_out else out


@cli_main(interrupted=INTERRUPTED_RUN)
def main(argv: list[str] | None = None) -> int:
    args, passthrough = parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python -m bench.suite", shlex.join(map(portable, given))]).strip()
    cluster = cluster_config(args)  # checked first: --threads 0 is said, not set
    # this process's pools first (the report and explanations run here), before parallel work
    apply_threads(resolve_threads(args.threads))
    sites = site_paths(args.data)
    if args.leave_one_site_out and sites is None:
        raise BenchError("--leave-one-site-out needs two or more sites: --data A,B[,C]")
    settings = settings_from_args(args, passthrough, command, args.out or default_out(args),
                                  cluster)
    if args.leave_one_site_out:  # one suite per left-out site, then the matrix
        results = leave_one_site_out(settings, sites, CommandLine())
    else:
        results = [run_suite(settings, CommandLine())]
    for result in results:
        for note in result.warnings:
            print(f"warning: {in_flag_words(note)}", file=sys.stderr)
        if result.failures:
            print(f"failed: {', '.join(result.failures)}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1
