"""``python -m bench.suite`` (what ``./run_all.sh`` runs): every default model and the paper's
experiments on one data set and profile, then the report.

Finished runs with the same configuration are reused, so rerunning only trains what is missing. A
model that fails is reported and the others go on. Prints the wall time of every run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.cli import run as run_cli  # argv pass-through (until typed plans)
from bench.core.errors import BenchError, cli_main
from bench.core.paths import PROJECT_ROOT
from bench.data.multisite import site_name, site_paths
from bench.engine import runner as run
from bench.engine.device import resolve_device
from bench.engine.profiles import resolve_profile
from bench.engine.threads import apply_threads, resolve_threads
from bench.evaluation.explain import explain_run
from bench.evaluation.illustrate import illustrate_run
from bench.evaluation.reliance import reliance_run
from bench.evaluation.sites import leave_one_site_out, resolve_external_option
from bench.jobs.cluster import EXECUTORS, ClusterConfig, read_config, run_grid
from bench.jobs.experiments import (
    COMPARISON_MODELS,
    CPU_LEFT_OUT,
    default_models,
    experiment_commands,
)
from bench.reporting.report import ReportOptions, build_report
from bench.reporting.runs import load_run
from models import get_model_config
from models.errors import UserError
from models.registry import resolve_weights


def data_name(data: Path | None) -> str:
    if data is not None and site_paths(data) is not None:  # several sites: busi+breast
        return "+".join(site_name(p) for p in site_paths(data))
    return "synthetic" if data is None else (data.stem if data.is_file() else data.resolve().name).lower()


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
            raise BenchError(f"--{name.replace('_', '-')} must be >= 0")
    if args.mem_gb < 0:
        raise BenchError(f"--mem-gb must be >= 0, not {args.mem_gb:g}")
    if args.threads is not None and args.threads < 1:
        raise BenchError(f"--threads must be >= 1, not {args.threads}")
    return ClusterConfig(executor=args.executor, jobs=args.jobs, gpus_per_job=args.gpus_per_job,
                         cpus_per_job=args.cpus_per_job, threads=args.threads, mem_gb=args.mem_gb,
                         timeout_min=args.timeout_min, signal_delay_s=args.signal_delay_s,
                         partition=args.partition,
                         slurm_extra=tuple(extra), retries=args.retries)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise BenchError(f"--seeds {text!r}: give distinct non-negative integers, e.g. 0,1,2")
    return seeds


def frozen_without_weights(name: str) -> bool:
    """A frozen-backbone baseline with no ImageNet weights here is no baseline: the suite leaves it
    out (with a note) unless it is asked for by name."""
    cfg = get_model_config(name)
    if cfg.recipe.frozen == "none" or cfg.pretrained != "imagenet":
        return False
    if resolve_weights(name, "auto").provenance != "random":
        return False
    print(f"note: {name} is left out: its backbone is frozen and no ImageNet weights are "
          "available here, so it would train a classifier on random features; ask for it with "
          f"--models {name} (or provide weights) to run it anyway")
    return True


# TOML settings that are comma-separated lists on the command line: a TOML list (or, for seeds,
# one integer) is accepted and joined
LIST_SETTINGS = ("models", "seeds", "experiment_seeds", "external", "data")  # data: sites


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
            if isinstance(value, dict):
                value = [f"{k}={v}" for k, v in value.items()]
            elif isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise wrong('a table (slurm_extra = { qos = "high" }) or a list of "KEY=VALUE" '
                            "strings")
        elif key in LIST_SETTINGS and not isinstance(value, str):
            ints = key.endswith("seeds")
            items = value if isinstance(value, list) else [value]
            kinds = (int,) if ints else (str,)
            if not items or not all(isinstance(v, kinds) and not isinstance(v, bool)
                                    for v in items):
                raise wrong("a list of seeds (e.g. [0, 1, 2]) or a string \"0,1,2\"" if ints
                            else "a path string or a list of paths (one per site)"
                            if action.type is Path
                            else "a list of names or a comma-separated string")
            value = ",".join(map(str, items))
            if action.type is Path:  # data = ["../shared/data/BUSI", "../shared/data/BrEaST"]
                value = Path(value)
        elif action.nargs == 0:  # a switch (store_true / store_const)
            if not isinstance(value, bool) and value != action.const:
                raise wrong("true or false" if action.const is True else repr(action.const))
            if isinstance(value, bool) and action.const is not True:
                raise wrong(f"{action.const!r}")
        elif action.type is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise wrong("an integer")
        elif action.type is float:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise wrong("a number")
            value = float(value)
        elif action.type is Path:
            if not isinstance(value, str):
                raise wrong("a path string")
            value = Path(value)
        elif not isinstance(value, str):
            raise wrong("a string")
        if action.choices is not None and value not in action.choices:
            raise wrong(f"one of {', '.join(map(str, action.choices))}")
        out[key] = value
    return out


@cli_main
def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=None)
    known, _ = pre.parse_known_args(argv)
    p = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file of these settings (keys: the flags without dashes); flags "
                        "override it")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--profile", default="auto")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
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
    p.add_argument("--leave-one-site-out", action="store_true",
                   help="with --data A,B[,C]: train on all sites but one and score the left-out "
                        "site whole, for each site in turn; writes the matrix (rows trained on, "
                        "columns scored on) to <out>/tables/site_matrix.*")
    p.add_argument("--no-leave-one-site-out", dest="leave_one_site_out", action="store_false",
                   help=argparse.SUPPRESS)
    g = p.add_argument_group("where the runs execute (bench.jobs.cluster)")
    g.add_argument("--executor", default="inline", choices=EXECUTORS,
                   help="inline: one after another in this process; local: subprocesses; slurm: "
                        "sbatch jobs; debug: submitit in this process")
    g.add_argument("--jobs", type=int, default=0, help="at most N jobs at once (0: automatic)")
    g.add_argument("--gpus-per-job", type=int, default=0)
    g.add_argument("--cpus-per-job", type=int, default=0,
                   help="CPUs per job, and so its threads (0: local = the cores shared by the "
                        "jobs at once, e.g. 2 cores and --jobs 2 give 1 each; slurm = 2)")
    g.add_argument("--threads", type=int, default=None,
                   help="CPU threads of every run (default: a job's --cpus-per-job; inline: the "
                        "CPUs of this process's affinity mask or SLURM allocation)")
    g.add_argument("--mem-gb", type=float, default=0.0,
                   help="host memory per job (slurm; 0: from the model's size, 5 GB for "
                        "Fus2Net, 9 GB for VGG19)")
    g.add_argument("--timeout-min", type=int, default=240)
    g.add_argument("--signal-delay-s", type=int, default=90,
                   help="slurm: USR2 this many seconds before the time limit; the job is "
                        "checkpointed and requeued and resumes from its finished stages")
    g.add_argument("--partition", default="")
    g.add_argument("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra #SBATCH parameter (repeatable), e.g. qos=high")
    g.add_argument("--retries", type=int, default=2,
                   help="resubmit a job that died up to K times (it resumes); bad input is "
                        "never retried")
    g.add_argument("--log-dir", type=Path, default=None,
                   help="job logs (default: <results folder>/logs)")
    if known.config is not None:
        defaults = read_config(known.config)
        unknown = sorted(set(defaults) - {a.dest for a in p._actions})
        if unknown:
            raise BenchError(f"--config {known.config}: unknown setting(s) {', '.join(unknown)}")
        p.set_defaults(**config_defaults(known.config, defaults, p))
    args, passthrough = p.parse_known_args(argv)
    cluster = cluster_config(args)
    # this process's pools first (the report and explanations run here), before parallel work
    apply_threads(resolve_threads(args.threads))
    device = resolve_device(args.device)
    prof = resolve_profile(args.profile, device)
    profile = prof.name
    seeds = parse_seeds(args.seeds) if args.seeds is not None else list(prof.seeds)
    exp_seeds = parse_seeds(args.experiment_seeds) if args.experiment_seeds is not None else seeds
    out = args.out or PROJECT_ROOT / "results" / f"{data_name(args.data)}-{profile}"
    if args.leave_one_site_out:  # one suite per left-out site, then the matrix (bench/evaluation/sites.py)
        return leave_one_site_out(main, list(argv if argv is not None else sys.argv[1:]),
                                  args.data, args.out or out.with_name(out.name + "-loso"))
    runs_dir = out / "runs"
    common = ["--profile", profile, "--device", device, "--out", str(runs_dir), *passthrough]
    if args.threads is not None and cluster.executor == "inline":
        common += ["--threads", str(args.threads)]
    if args.data is not None:
        common += ["--data", str(args.data)]
    if args.models == "default":
        models = default_models(device)
        for name in COMPARISON_MODELS:
            if name not in models:
                print(f"note: {name} is left out on CPU ({CPU_LEFT_OUT[name]}); "
                      "add it with --models all or --models NAME,...")
    elif args.models == "all":
        models = list(COMPARISON_MODELS)
    else:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        if not models:
            raise BenchError(f"--models {args.models!r}: give registered model names, default or "
                             "all (python -m bench.list)")
        for m in models:  # every name before any training, not when its job comes up
            try:
                get_model_config(m)
            except UserError as exc:
                raise BenchError(f"--models: {exc}") from None
    if args.models in ("default", "all"):
        models = [m for m in models if not frozen_without_weights(m)]

    with_experiments = args.experiments == "on" or (args.experiments == "auto" and device == "cuda")
    if args.experiments == "auto" and not with_experiments:
        print("note: the paper's Fus2Net experiments are off on a CPU by default (about 8 Fus2Net "
              "runs with CV per seed); add them with --experiments on")
    variants = [list(a) for a in (experiment_commands() if with_experiments else [()])]
    cv = []  # the experiments are compared on CV folds only; the base run serves both tables
    if with_experiments and prof.folds == 0 and prof.experiment_folds and \
            "--folds" not in passthrough:
        cv = ["--folds", str(prof.experiment_folds)]
    # (model, arguments, in the comparison): the paper recipe, the comparison, then the ablations;
    # comparison runs are scored on the external sets and explained
    external = resolve_external_option(
        args.external, None if args.data is None else site_paths(args.data) or [args.data])
    if args.external == "auto" and external:
        print(f"external sets (--external auto; none: --external none): {', '.join(external)}")
    ext = ["--external", ",".join(external)] if external else []
    planned = [("fus2net", cv + variants[0] + ext, True)]
    planned += [(m, ext, True) for m in models if m != "fus2net"]
    planned += [("fus2net", cv + v, False) for v in variants[1:]]
    # every seed of the comparison first, then the experiments: a long CPU run yields the main
    # table early, and stopping it part-way leaves whole comparison rows
    jobs = [(m, [*extra, "--seed", str(seed)], True) for seed in seeds
            for m, extra, compared in planned if compared]
    jobs += [(m, [*extra, "--seed", str(seed)], False) for seed in exp_seeds
             for m, extra, compared in planned if not compared]
    run_cli.options_from_argv(common)  # a bad pass-through option stops the suite before any run
    timings, failures, explain, job_logs = [], [], [], []
    t_all = time.perf_counter()
    if cluster.executor != "inline":
        log_dir = args.log_dir or out / "logs"
        grid = [(" ".join([model, *extra]), ["--model", model, *common, *extra, "--no-progress"])
                for model, extra, _ in jobs]
        print(f"{len(grid)} jobs on the {cluster.executor} executor; logs in {log_dir}")
        progress = "--no-progress" not in passthrough
        for (_, _, compared), res in zip(jobs, run_grid(grid, cluster, log_dir, progress),
                                         strict=True):
            timings.append((res.label, res.seconds, res.status))
            job_logs.append((res.label, res.job_id, res.stdout, res.log))
            if res.status != "ok":
                failures.append(res.label)
                print(f"FAILED {res.label}: {res.message or 'see the log'} (log: {res.log}; "
                      f"{res.attempts} attempt(s))", file=sys.stderr)
            elif compared and res.run_dir is not None:
                explain.append(res.run_dir)
        jobs = []
    for model, extra, compared in jobs:
        label = " ".join([model, *extra])
        print(f"\n=== {label} ({profile}) ===", flush=True)
        t0 = time.perf_counter()
        options = run_cli.options_from_argv(["--model", model, *common, *extra])
        try:
            result = run.run(options)
            run_cli.print_summary(model, result.metrics, result.run_dir, result.seconds, result.note,
                              result.external)
            status = "ok" if result.ok else "FAILED"
            if result.ok and compared:
                explain.append(result.run_dir)
        except UserError as exc:  # bad input for this run: said, and the others go on
            print(f"error: {exc}", file=sys.stderr)
            status = "FAILED"
        timings.append((label, time.perf_counter() - t0, status))
        if status != "ok":
            failures.append(label)
    print(f"\n{'run':<48} {'seconds':>9}  status")
    for label, seconds, status in timings:
        print(f"{label:<48} {seconds:>9.1f}  {status}")
    print(f"{'total':<48} {time.perf_counter() - t_all:>9.1f}")
    for label, job_id, stdout, stderr in job_logs:
        print(f"job {job_id} ({label}): stdout {stdout}" +
              (f", stderr {stderr}" if stderr and stderr != stdout else ""))
    for run_dir in explain:  # where each comparison model looks (Grad-CAM vs lesion masks)
        try:  # a run that cannot be explained is said; the others and the report go on
            loaded = load_run(run_dir)
            if loaded is not None:
                explain_run(loaded, device=device, data=args.data)
                reliance_run(loaded, device=device, data=args.data)  # bench/evaluation/reliance.py
                if loaded.model == "fus2net":  # the report's Fig. 5 and Fig. 6 analogues
                    illustrate_run(loaded, args.data)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures.append(f"explain {run_dir.name}")
    result = build_report(runs_dir, out, ReportOptions(profile=profile))
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
