"""How to reproduce the report: one ``run_all.sh`` command per group of models that ran with the
same seeds (with the experiments when their variant runs are here), then ``bench.report``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bench.core.paths import PROJECT_ROOT
from bench.reporting.runs import Run
from bench.reporting.sections.context import ReportContext
from bench.reporting.tables import comparison_sets


def _seeds_of(rs: list[Run]) -> str:
    return ",".join(map(str, sorted({int(r.settings.get("seed", 0)) for r in rs})))


def _rel(p: Path) -> str:
    """``p`` relative to the project root when that is shorter (e.g. ``../shared/data/BUSI``)."""
    rel = os.path.relpath(p.resolve(), PROJECT_ROOT)
    return rel if len(rel) < len(str(p)) else str(p)


def commands(runs: list[Run], out: Path) -> list[str]:
    """The shell commands that remake ``runs`` and this report in ``out``."""
    sets = comparison_sets(runs)
    used = [r for _, rs in sets for r in rs]
    ref = used[0] if used else runs[0]
    runs_dir = _rel(ref.path.parent)
    others = [line for label, rs in sets if label != rs[0].model  # another configuration of a model
              for line in (f"# {label}", *recorded_commands(rs))]
    if others:  # their explanations and reliance measures (finished ones are reused)
        data_arg = f" --data {ref.data_arg}" if ref.data_arg else ""
        others += [f"python -m bench.explain --runs {runs_dir}{data_arg}",
                   f"python -m bench.reliance --runs {runs_dir}"]
    main_rows = [(label, rs) for label, rs in sets if label == rs[0].model]
    return [*main_commands(runs, used, main_rows, ref), *others,
            f"python -m bench.report --runs {runs_dir} --out {_rel(out)}"]


def main_commands(runs: list[Run], used: list[Run], rows: list[tuple[str, list[Run]]],
                  ref: Run) -> list[str]:
    """The command that made the models' main rows: the suite's as recorded when one made them
    all, else one ``run_all.sh`` per group of models that ran with the same seeds."""
    suite = {str(r.config.get("command", "")) for _, rs in rows for r in rs}
    if len(suite) == 1 and next(iter(suite)).startswith("python -m bench.suite"):
        return list(suite)
    data_arg = f" --data {ref.data_arg}" if ref.data_arg else ""
    compared = {id(r) for r in used}
    variants = [r for r in runs if id(r) not in compared]
    exp_arg = ""
    if variants:  # the experiments ran (their variant runs are not comparison runs)
        exp_arg = f" --experiments on --experiment-seeds {_seeds_of(variants)}"
    sources = sorted({str(meta.get("source")) for r in used for _, meta in r.external.values()
                      if meta.get("source")})
    ext_arg = f" --external {','.join(sources)}" if sources else ""
    groups: dict[str, list[str]] = {}  # models by the seeds they ran with: one command per group
    for label, rs in rows:
        groups.setdefault(_seeds_of(rs), []).append(label)
    return [f"./run_all.sh{data_arg} --profile {ref.config['profile']['name']} --seeds {s_}"
            f"{exp_arg}{ext_arg} --models {','.join(ms)}" for s_, ms in groups.items()]


def recorded_commands(rs: list[Run]) -> list[str]:
    """The distinct commands the runs ``rs`` recorded, one seed loop where they differ only in
    ``--seed``."""
    seeds = " ".join(str(int(r.settings.get("seed", 0))) for r in
                     sorted(rs, key=lambda r: int(r.settings.get("seed", 0))))
    out = []
    for command in sorted({re.sub(r"--seed \d+", "--seed $seed", str(r.config.get("command", "")))
                           for r in rs}):
        out.append(f"for seed in {seeds}; do {command}; done" if "$seed" in command else command)
    return out


def write_tables(ctx: ReportContext) -> None:
    pass


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    return []


def readme(ctx: ReportContext) -> list[str]:
    return ["## Reproduce", "",
            "Each command trains what is missing (finished runs are reused), then reports:", "",
            "```bash", *commands(ctx.runs, ctx.out), "```", ""]
