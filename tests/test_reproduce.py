"""The report's "Reproduce" commands (bench/reporting/sections/reproduce.py) remake the runs they
describe: every setting that differs from its default, paths as typed, models from files by file."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from bench.core.paths import PROJECT_ROOT
from bench.core.provenance import portable, recorded_location
from bench.reporting.runs import load_runs
from bench.reporting.sections.reproduce import commands, run_command, run_flags, shown_path
from tests.helpers import SMOKE, write_fixture_run


def _record(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def _linked_data(tmp_path: Path) -> tuple[str, str]:
    """A data folder reached through a symbolic link: the path as typed (through the link,
    portable) and as a run records its location (resolved)."""
    real = tmp_path / "elsewhere" / "BUSI"
    real.mkdir(parents=True)
    (tmp_path / "shared").symlink_to(tmp_path / "elsewhere")
    typed = portable(tmp_path / "shared" / "BUSI")
    return typed, recorded_location(tmp_path / "shared" / "BUSI")


def test_commands_give_non_default_settings_typed_paths_and_models_from_files(tmp_path):
    typed, resolved = _linked_data(tmp_path)
    assert "elsewhere" in resolved and "elsewhere" not in typed
    runs = tmp_path / "runs"
    data = {"name": "BUSI", "path": resolved, "split_source": "datasets/splits/busi.csv"}
    common = {"img_size": 64, "folds": 0, "data_kind": "busi"}
    ref = write_fixture_run(runs, "fus2net", 0.6, 1, epochs=20, **common)
    _record(ref, overrides={}, data=data, profile={"name": "cpu"},
            command=f"python -m bench.run --model fus2net --data {typed} --profile cpu")
    mine = write_fixture_run(runs, "mycnn", 0.5, 2, epochs=2, **common)
    _record(mine, overrides={"epochs": 2}, data=data, profile={"name": "cpu"},
            model_origin={"kind": "file", "where": "plugins/mycnn.py", "source": "plugins/mycnn.py"},
            command=f"python -m bench.run --model plugins/mycnn.py:mycnn --data {typed} "
                    "--profile cpu --epochs 2")
    lines = commands(load_runs(runs), tmp_path / "out")
    assert lines[0] == (f"./run_all.sh --data {typed} --profile cpu --seeds 0 --out "
                        f"{shown_path(tmp_path)} --models fus2net")
    assert lines[1] == (f"./run_all.sh --data {typed} --profile cpu --seeds 0 --epochs 2 --out "
                        f"{shown_path(tmp_path)} --models plugins/mycnn.py:mycnn")
    assert not any("elsewhere" in line for line in lines)
    _record(mine, model_origin={"kind": "plugin", "where": "mypkg 1.0 (mycnn = mypkg.models)",
                                "source": "site-packages/mypkg/models.py"})
    lines = commands(load_runs(runs), tmp_path / "out")
    assert lines[0] == "# mycnn: from the plugin package mypkg 1.0; install it first (pip install)"
    assert lines[2].endswith("--epochs 2 --out " f"{shown_path(tmp_path)} --models mycnn")


def test_settings_of_a_run_that_recorded_no_overrides_are_compared_with_its_profile(tmp_path):
    folder = write_fixture_run(tmp_path / "runs", "fus2net", 0.6, 1, epochs=2, folds=0,
                               img_size=64, batch_size=8, skip_bad_images=True)
    _record(folder, profile={"name": "cpu"})
    assert "overrides" not in json.loads((folder / "config.json").read_text())
    run = load_runs(tmp_path / "runs")[0]
    assert run_flags(run) == ["--epochs", "2", "--batch-size", "8", "--skip-bad-images"]
    # its recorded command ("python -m bench.run") says none of them: the section builds one
    line = commands([run], tmp_path / "out")
    assert line[0].endswith("--seeds 0 --epochs 2 --batch-size 8 --skip-bad-images --out "
                            f"{shown_path(tmp_path)} --models fus2net")


@pytest.mark.slow
def test_a_run_rebuilt_from_its_printed_commands_has_the_same_folder_name(small_synthetic,
                                                                          tmp_path, monkeypatch):
    from bench.cli.run import options_from_argv
    from bench.cli.suite import base_options, parse_args
    from bench.engine.profiles import resolve_profile
    from bench.engine.runner import prepare, run

    monkeypatch.chdir(PROJECT_ROOT)  # where run_all.sh runs its commands
    (tmp_path / "link").symlink_to(small_synthetic.parent)
    data = tmp_path / "link" / small_synthetic.name
    first = options_from_argv(["--model", "fus2net", "--data", str(data), *SMOKE, "--folds", "0",
                               "--img-size", "32", "--seed", "1", "--out",
                               str(tmp_path / "first" / "runs")])
    made = run(first)
    assert made.ok
    runs = load_runs(tmp_path / "first" / "runs")
    main_line = commands(runs, tmp_path / "first")[0]
    assert str(small_synthetic) not in main_line and portable(data) in main_line

    # the run_all.sh line, as bench.suite reads it and passes its flags on to bench.run
    args, passthrough = parse_args(shlex.split(main_line)[1:])
    profile = resolve_profile(args.profile, "cpu")
    base = base_options(args, passthrough, profile, "cpu", tmp_path / "second" / "runs", True, "")
    (model,), (seed,) = args.models.split(","), args.seeds.split(",")
    suite_run = prepare(replace(base, model=model, seed=int(seed), progress=False))
    assert suite_run.run_dir.name == made.run_dir.name

    # the bench.run line, parsed by bench.run's parser and trained into another folder
    line = run_command(runs[0], str(tmp_path / "third" / "runs"))
    words = shlex.split(line)
    assert words[:3] == ["python", "-m", "bench.run"]
    rebuilt = run(replace(options_from_argv(words[3:]), progress=False))
    assert rebuilt.ok and rebuilt.run_dir.parent == tmp_path / "third" / "runs"
    assert rebuilt.run_dir.name == made.run_dir.name
