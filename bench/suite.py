"""``python -m bench.suite`` (what ``./run_all.sh`` runs): every default model and the paper's
experiments on one data set and profile, then the report (issues 3 and 4).

Finished runs with the same configuration are reused, so rerunning only trains what is missing. A
model that fails is reported and the others go on. Prints the wall time of every run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench import report, run
from bench.errors import BenchError, cli_main
from bench.experiments import COMPARISON_MODELS, CPU_HEAVY, default_models, experiment_commands
from bench.profiles import resolve_profile

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_name(data: Path | None) -> str:
    return "synthetic" if data is None else (data.stem if data.is_file() else data.resolve().name).lower()


@cli_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--profile", default="auto")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--models", default="default",
                   help="comma-separated registered models for the comparison; 'default': all of "
                        "them on CUDA, all but " + ", ".join(CPU_HEAVY) + " on CPU; 'all': all")
    p.add_argument("--no-experiments", action="store_true", help="skip Table 1, Fig. 1, Table 2")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default: results/<data>-<profile>/, runs in its runs/)")
    args, passthrough = p.parse_known_args(argv)
    device = run.resolve_device(args.device)
    profile = resolve_profile(args.profile, device).name
    out = args.out or PROJECT_ROOT / "results" / f"{data_name(args.data)}-{profile}"
    runs_dir = out / "runs"
    common = ["--profile", profile, "--device", device, "--out", str(runs_dir), *passthrough]
    if args.data is not None:
        common += ["--data", str(args.data)]
    if args.models == "default":
        models = default_models(device)
        for name in COMPARISON_MODELS:
            if name not in models:
                print(f"note: {name} is left out on CPU ({CPU_HEAVY[name]}); "
                      "add it with --models all or --models NAME,...")
    elif args.models == "all":
        models = list(COMPARISON_MODELS)
    else:
        models = [m for m in args.models.split(",") if m]
    variants = [list(a) for a in ([()] if args.no_experiments else experiment_commands())]
    jobs = [("fus2net", variants[0])]  # the paper recipe, then the comparison, then the ablations
    jobs += [(m, []) for m in models if m != "fus2net"]
    jobs += [("fus2net", v) for v in variants[1:]]
    timings, failures = [], []
    t_all = time.perf_counter()
    for model, extra in jobs:
        label = " ".join([model, *extra])
        print(f"\n=== {label} ({profile}) ===", flush=True)
        t0 = time.perf_counter()
        try:
            code = run.main(["--model", model, *common, *extra])
        except SystemExit as exc:  # a BenchError inside run.main: already printed
            code = exc.code if isinstance(exc.code, int) else 1
        timings.append((label, time.perf_counter() - t0, code))
        if code:
            failures.append(label)
    print(f"\n{'run':<48} {'seconds':>9}  status")
    for label, seconds, code in timings:
        print(f"{label:<48} {seconds:>9.1f}  {'ok' if code == 0 else 'FAILED'}")
    print(f"{'total':<48} {time.perf_counter() - t_all:>9.1f}")
    try:
        report.main(["--runs", str(runs_dir), "--out", str(out), "--profile", profile])
    except SystemExit as exc:
        if exc.code:
            raise BenchError(f"the report could not be built from {runs_dir}") from None
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
