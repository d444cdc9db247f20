"""How to reproduce the report (docs/protocol.md, "Runs and profiles"): one ``run_all.sh`` command
per group of models that ran with the same seeds and settings (with the experiments when their
variant runs are here), one ``bench.run`` seed loop per other configuration, then ``bench.report``.

Every command gives each setting of its runs that differs from its default (the profile's value
or the model recipe's, :func:`run_flags`), paths as the user typed them (relative to the project,
never resolved through symbolic links) and models from a file or module by that file or module
(``--model path/to/file.py:NAME``), so that running it makes run folders of the same names."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from bench.core.paths import PROJECT_ROOT, RESULTS_DIR
from bench.core.provenance import from_portable, portable
from bench.data.datasets import default_split
from bench.engine.profiles import PROFILES
from bench.engine.runfolder import Run
from bench.engine.spec import cleaned
from bench.reporting.sections.context import ReportContext
from bench.reporting.tables import REFERENCE, comparison_sets

# RunOptions.overrides(): the profile and recipe settings a request overrides, and their flags
OVERRIDES = ("folds", "epochs", "img_size", "batch_size", "optimizer", "lr", "l2", "dropout")


def _seeds_of(rs: list[Run]) -> str:
    return ",".join(map(str, sorted({r.seed for r in rs})))


def shown_path(p: Path) -> str:
    """``p`` as the commands give it: as typed when relative, else relative to the project root
    when that is shorter (e.g. ``../shared/data/BUSI``); never resolved through symbolic links."""
    if not p.is_absolute():
        return p.as_posix()
    rel = os.path.relpath(os.path.abspath(p), PROJECT_ROOT)
    return rel if len(rel) < len(str(p)) else str(p)


def _words(r: Run) -> list[str]:
    """The run's recorded command as the shell would split it."""
    try:
        return shlex.split(str(r.record.command))
    except ValueError:
        return str(r.record.command).split()


def typed_value(words: list[str], flag: str) -> str | None:
    """The value of ``flag`` in a command's words (``--flag V`` or ``--flag=V``), if given."""
    for k, word in enumerate(words):
        if word == flag and k + 1 < len(words):
            return words[k + 1]
        if word.startswith(f"{flag}="):
            return word.split("=", 1)[1]
    return None


def _same_place(typed: str, recorded: str) -> bool:
    try:
        return (PROJECT_ROOT / typed).resolve() == from_portable(recorded).resolve()
    except (OSError, RuntimeError):
        return False


def typed_data(r: Run) -> str | None:
    """The run's ``--data`` as the user typed it (relative to the project, e.g. ``../shared/data/BUSI``
    through a symbolic link) when it, read from the project root, is the recorded location; else
    the recorded location (``config.json``'s ``data.path``, resolved); ``None``: the phantom."""
    recorded = r.data_arg
    if recorded is None:
        return None
    typed = typed_value(_words(r), "--data")
    if typed is not None and typed != recorded and "," not in typed and _same_place(typed, recorded):
        return typed
    return recorded


def model_spec(r: Run) -> str:
    """The ``--model`` value that finds the run's model: its name for the models in ``models/`` and
    for an installed plugin package's; ``path/to/file.py:NAME`` or ``package.module:NAME`` for a
    model from a file or module (``config.json``'s ``model_origin``, as typed when the recorded
    command gives it)."""
    origin = r.record.model_origin or {}
    if origin.get("kind") not in ("file", "module"):
        return r.model
    typed = typed_value(_words(r), "--model") or typed_value(_words(r), "--models") or ""
    for spec in typed.split(","):
        where, _, name = spec.rpartition(":")
        if name == r.model and where and (origin["kind"] == "module" or _same_place(where, origin["where"])):
            return spec
    return f"{origin['where']}:{r.model}"


def _profile_default(r: Run, key: str) -> object:
    """What the run's profile (as defined now) and its model's recipe give ``key`` unasked."""
    prof = PROFILES.get(str(r.record.profile_name))
    mc = r.record.model_config
    recipe = mc.get("recipe", {})
    if prof is None:
        return None
    if key == "img_size":
        return max(prof.img_size, mc.get("min_input_size", 0)) if prof.img_size else mc.get("input_size")
    if key == "epochs":
        return prof.epochs or recipe.get("epochs")
    if key in ("optimizer", "lr"):
        return recipe.get(key)
    if key in ("l2", "dropout"):
        return None
    return getattr(prof, key)


def _overrides(r: Run) -> dict:
    """The profile and recipe settings the run's request overrode: as recorded, or for a run that
    recorded none, its settings that differ from what the profile and the recipe give."""
    if r.record.overrides is not None:
        return dict(r.record.overrides)
    s, out = r.record.settings, {}
    for key in OVERRIDES:
        value = s.model_kwargs.get(key) if key in ("l2", "dropout") else getattr(s, key)
        default = _profile_default(r, key)
        if value is not None and default is not None and value != default:
            out[key] = value
    return out


def _split_flags(r: Run) -> list[str]:
    data = r.record.data
    source = str(data.get("split_source", "generated"))
    if source == "generated":
        try:
            per_class = (r.folder.read_split_report() or {})["config"]["test_per_class"]
        except (KeyError, TypeError):
            per_class = typed_value(_words(r), "--test-per-class")
        return [] if per_class in (None, 50, "50") else ["--test-per-class", str(per_class)]
    committed = default_split(str(r.record.settings.data_kind))
    if committed is not None and source == portable(committed):
        return []  # the data set's committed split, the default
    return ["--split", source]


def run_flags(r: Run, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The ``bench.run`` flags, beyond ``--model``, ``--data``, ``--profile``, ``--seed``,
    ``--external`` and ``--out``, that remake run ``r``: every recorded setting that differs from
    its default (the profile's value, the model recipe's or ``bench.run``'s), in ``bench.run
    --help``'s order; ``leave_out`` names overrides another flag gives (the suite's experiment
    folds)."""
    s = r.record.settings
    over = _overrides(r)
    flags = []
    dataset = typed_value(_words(r), "--dataset")
    if dataset not in (None, "auto"):
        flags += ["--dataset", dataset]
    flags += _split_flags(r)
    for key in OVERRIDES:
        if key in over and key not in leave_out:
            flags += [f"--{key.replace('_', '-')}", str(over[key])]
    if int(s.channels) != 3:
        flags += ["--channels", str(s.channels)]
    if s.augment is False:
        flags.append("--no-augment")
    if s.augment_policy != "paper":
        flags += ["--augment", s.augment_policy]
    if s.bn_recalibration is False:
        flags += ["--bn-stats", "running"]
    pretrained = str(s.model_kwargs.get("pretrained", "auto"))
    if pretrained != "auto":
        flags += ["--pretrained", pretrained if pretrained in ("hub", "none") else portable(pretrained)]
    if s.skip_bad_images:
        flags.append("--skip-bad-images")
    stages = int(s.folds or 0) + 1
    concurrent = int(s.concurrent)
    auto = stages if s.device == "cuda" else 1
    if concurrent != auto:
        flags += ["--concurrent-folds", str(concurrent)]
    if cleaned(s.annotations):
        flags += ["--annotations", "clean"]
    return flags


def _external_sources(rs: list[Run]) -> list[str]:
    return sorted({str(meta.get("source")) for r in rs for _, meta in r.external.values()
                   if meta.get("source")})


def run_command(r: Run, runs_dir: str, seed: str | None = None) -> str:
    """The ``python -m bench.run`` command that remakes run ``r`` in ``runs_dir`` (its seed, or
    ``seed``, e.g. ``$seed`` in a loop): a run folder of the same name."""
    data = typed_data(r)
    words = ["python -m bench.run --model", shlex.quote(model_spec(r))]
    if data is not None:
        words += ["--data", shlex.quote(data)]
    words += ["--profile", str(r.record.profile_name or "auto"),
              *map(shlex.quote, run_flags(r)),
              "--seed", seed if seed is not None else str(r.seed)]
    sources = _external_sources([r])
    if sources:
        words += ["--external", shlex.quote(",".join(sources))]
    words += ["--out", shlex.quote(runs_dir)]
    return " ".join(words)


def _default_out(data: str | None, profile: str) -> Path | None:
    """Where ``run_all.sh`` writes by default (bench.suite: ``results/<data>-<profile>``)."""
    if data is None:
        return RESULTS_DIR / f"synthetic-{profile}"
    if "," in data:
        return None
    path = from_portable(data)
    return RESULTS_DIR / f"{(path.stem if path.is_file() else path.resolve().name).lower()}-{profile}"


def commands(runs: list[Run], out: Path) -> list[str]:
    """The shell commands that remake ``runs`` and this report in ``out``."""
    sets = comparison_sets(runs)
    used = [r for _, rs in sets for r in rs]
    ref = used[0] if used else runs[0]
    runs_dir = shown_path(ref.path.parent)
    others = [line for label, rs in sets if label != rs[0].model  # another configuration of a model
              for line in (f"# {label}", *recorded_commands(rs, runs_dir))]
    if others:  # their explanations and reliance measures (finished ones are reused)
        data = typed_data(ref)
        data_arg = f" --data {shlex.quote(data)}" if data else ""
        others += [f"python -m bench.explain --runs {runs_dir}{data_arg}",
                   f"python -m bench.reliance --runs {runs_dir}"]
    if any(r.folder.insertion_record() is not None for r in used):  # the insertion controls
        others.append(f"python -m bench.reliance --runs {runs_dir} --controls")
    main_rows = [(label, rs) for label, rs in sets if label == rs[0].model]
    return [*plugin_notes(used), *main_commands(runs, used, main_rows, ref), *others,
            f"python -m bench.report --runs {runs_dir} --out {shown_path(out)}"]


def plugin_notes(runs: list[Run]) -> list[str]:
    """A comment per installed plugin package whose models the commands name (their
    ``model_origin``): the commands find them only where it is installed."""
    packages: dict[str, set[str]] = {}
    for r in runs:
        origin = r.record.model_origin or {}
        if origin.get("kind") == "plugin":
            package = " ".join(str(origin.get("where", "")).split()[:2])  # "<package> <version>"
            packages.setdefault(package, set()).add(r.model)
    return [f"# {', '.join(sorted(models))}: from the plugin package {package}; install it "
            "first (pip install)" for package, models in sorted(packages.items())]


def main_commands(runs: list[Run], used: list[Run], rows: list[tuple[str, list[Run]]],
                  ref: Run) -> list[str]:
    """The command that made the models' main rows: the suite's as recorded when one made them
    all, else one ``run_all.sh`` per group of models that ran with the same seeds and the same
    settings (:func:`run_flags`; the suite passes them on to every run it makes)."""
    suite = {str(r.record.command) for _, rs in rows for r in rs}
    if len(suite) == 1 and next(iter(suite)).startswith("python -m bench.suite"):
        return list(suite)
    data = typed_data(ref)
    data_arg = f" --data {shlex.quote(data)}" if data else ""
    profile = str(ref.record.profile_name or "auto")
    compared = {id(r) for r in used}
    variants = [r for r in runs if id(r) not in compared]
    exp_arg = ""
    if variants:  # the experiments ran (their variant runs are not comparison runs)
        exp_arg = f" --experiments on --experiment-seeds {_seeds_of(variants)}"
    sources = _external_sources(used)
    ext_arg = f" --external {shlex.quote(','.join(sources))}" if sources else ""
    runs_dir = ref.path.parent
    default = _default_out(data, profile)
    out_arg = ""
    if runs_dir.name != "runs" or default is None or runs_dir.parent.resolve() != default.resolve():
        out_arg = f" --out {shlex.quote(shown_path(runs_dir.parent))}"  # bench.suite: <out>/runs
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # one command per seeds and flags
    for _, rs in rows:
        groups.setdefault((_seeds_of(rs), tuple(_main_flags(rs[0], bool(variants)))), []
                          ).append(shlex.quote(model_spec(rs[0])))
    return [f"./run_all.sh{data_arg} --profile {profile} --seeds {seeds}{exp_arg}{ext_arg}"
            + "".join(f" {shlex.quote(f)}" for f in flags) + f"{out_arg} --models {','.join(ms)}"
            for (seeds, flags), ms in groups.items()]


def _main_flags(r: Run, experiments: bool) -> list[str]:
    """:func:`run_flags` of a main row's run, without the CV folds the suite gives Fus2Net for
    its experiments (``--experiments on`` with a profile of ``experiment_folds``)."""
    prof = PROFILES.get(str(r.record.profile_name))
    by_suite = (experiments and r.model == REFERENCE and prof is not None and prof.folds == 0
                and r.record.settings.folds == prof.experiment_folds)
    return run_flags(r, ("folds",) if by_suite else ())


def _remakes(r: Run, command: str) -> bool:
    """The recorded ``command`` is a ``bench.run`` command that gives every setting of ``r`` that
    differs from its default, its profile and its data as recorded (a run made from Python, or
    by a suite, records no such command)."""
    if not command.startswith("python -m bench.run "):
        return False
    words = _words(r)
    typed = set(words) | {w.split("=", 1)[0] for w in words}
    if not {f for f in run_flags(r) if f.startswith("--")} <= typed:
        return False
    if typed_value(words, "--profile") != r.record.profile_name:
        return False
    data = typed_value(words, "--data")
    if (data is None) != (r.data_arg is None):
        return False
    return data is None or data == r.data_arg or _same_place(data, r.data_arg)


def recorded_commands(rs: list[Run], runs_dir: str = "") -> list[str]:
    """The distinct commands that remake the runs ``rs``, one seed loop where they differ only in
    ``--seed``: each run's recorded command when it remakes the run, else the one
    :func:`run_command` builds from its settings."""
    seeds = " ".join(str(r.seed) for r in
                     sorted(rs, key=lambda r: r.seed))
    lines = set()
    for r in rs:
        command = str(r.record.command)
        if not _remakes(r, command):
            command = run_command(r, runs_dir or shown_path(r.path.parent))
        lines.add(re.sub(r"--seed \d+", "--seed $seed", command))
    return [f"for seed in {seeds}; do {c}; done" if "$seed" in c else c for c in sorted(lines)]


def write_tables(ctx: ReportContext) -> None:
    pass


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    return []


def readme(ctx: ReportContext) -> list[str]:
    return ["## Reproduce", "",
            "Each command trains what is missing (finished runs are reused), then reports:", "",
            "```bash", *commands(ctx.runs, ctx.out), "```", ""]
