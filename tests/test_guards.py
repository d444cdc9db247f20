"""Guards against silent wrong or lost results, wrong behaviour and tracebacks (docs/faults.md, "When
things go wrong"): one section per class of fault, several variants each. Fast: fixture run
folders written here, one smoke training shared by the module."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bench.engine.device as device_mod
from bench.cli.explain import main as explain_main
from bench.cli.report import main as report_main
from bench.cli.speed import main as speed_main
from bench.cli.suite import main as suite_main
from bench.core.errors import BenchError, console_logging, plain
from bench.core.provenance import file_sha256
from bench.data.datasets import load_index
from bench.data.index import parse_label
from bench.data.manifest import read_manifest
from bench.engine.external import (
    ExternalSet,
    check_same_source,
    external_index,
    final_model,
    resolve_external,
)
from bench.engine.runfolder import InvalidRun, Run, RunFolder, load_run
from bench.engine.runner import check_not_own_images, write_errors_said
from bench.engine.spec import RunSpec
from bench.evaluation.explain import NotExplained, explain_run, explain_runs, run_index
from bench.jobs.cluster import JobOutcome, failed_count
from bench.jobs.plan import JobStatus
from bench.reporting.runs import load_runs
from bench.reporting.sections.external import external_table
from bench.reporting.tables import comparison_sets, set_aside
from tests.helpers import SMOKE, TINY, run_main, write_fixture_run, write_image


def exit_code(func, argv: list[str], capsys) -> tuple[int, str, str]:
    """A command's ``main`` as the shell sees it: exit code, stdout, stderr."""
    capsys.readouterr()
    try:
        code = func(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def class_folders(root: Path, n: int = 3, seed: int = 0) -> Path:
    """A tiny plain-folder data set (benign/, malignant/)."""
    for cls in ("benign", "malignant"):
        for i in range(n):
            write_image(root / cls / f"{cls}_{i}.png", seed=seed * 100 + i + (50 if cls == "benign" else 0))
    return root


def add_external(run_dir: Path, name: str, source: str, quality: float = 0.5, seed: int = 0,
                 checksum: bool = True) -> Path:
    """An external set's files as bench.engine.external writes them."""
    folder = run_dir / "external" / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    y = np.array([0] * 30 + [1] * 30)
    preds = pd.DataFrame({"id": [f"e{i:03d}" for i in range(60)], "path": "e.png", "label": y,
                          "prob_malignant": np.clip(0.5 + quality * (y - 0.5)
                                                    + rng.normal(0, 0.25, 60), 0.001, 0.999),
                          "split": "external", "fold": -1, "group": ""})
    preds.to_csv(folder / "predictions.csv", index=False)
    meta = {"external_set": name, "source": source, "excluded_training_duplicates": 0,
            "content_sha256": "c" * 64, "weights_sha256": "w" * 64}
    if checksum:
        meta["predictions_sha256"] = file_sha256(folder / "predictions.csv")
    (folder / "metrics.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def located(small_synthetic, tmp_path_factory) -> tuple[Path, Path]:
    """A finished smoke run (final fit only) whose data sit in a folder with a space, started from
    another working directory with ``--data=RELATIVE``: (run folder, data folder)."""
    base = tmp_path_factory.mktemp("located")
    data = base / "my data" / "phantom"
    shutil.copytree(small_synthetic, data)
    (base / "work").mkdir()
    old = os.getcwd()
    os.chdir(base / "work")
    try:
        from bench.cli.run import main
        code = main(["--data=../my data/phantom", "--out", str(base / "runs"), *SMOKE,
                     "--folds", "0"])
    finally:
        os.chdir(old)
    assert code == 0
    (run_dir,) = (base / "runs").iterdir()
    return run_dir, data


@pytest.fixture()
def run_copy(located, tmp_path) -> Path:
    """A writable copy of the located run, alone in its runs folder."""
    dst = tmp_path / "runs" / located[0].name
    shutil.copytree(located[0], dst)
    return dst


# --- a run's data are found from its record, one way, and checked -------------------------------

@pytest.mark.slow
def test_explain_finds_a_run_s_data_from_any_working_directory(located, run_copy, tmp_path,
                                                               monkeypatch, capsys):
    run_dir, data = located
    config = json.loads((run_dir / "config.json").read_text())
    assert Path(config["data"]["path"]).name == "phantom" and "my data" in config["data"]["path"]
    assert "'--data=../my data/phantom'" in config["command"]  # the command as a shell takes it
    monkeypatch.chdir(tmp_path)  # neither the project nor the folder the run was started from
    with console_logging():  # its lines as a command shows them
        assert explain_run(load_run(run_copy), device="cpu") is not None
    info = json.loads((run_copy / "explain" / "gradcam" / "info.json").read_text())
    assert info["files"]["cam_metrics.csv"] == file_sha256(
        run_copy / "explain" / "gradcam" / "cam_metrics.csv")
    assert "explained" in capsys.readouterr().out


@pytest.mark.slow
def test_older_records_are_read_as_the_shell_would(located):
    def data_arg(command: str) -> str | None:
        config = {"settings": {"model": "fus2net"}, "command": command}  # no data.path: older
        return Run(Path("x"), config, {}, pd.DataFrame(), pd.DataFrame()).data_arg

    assert data_arg("python -m bench.run --data=a/b --model fus2net") == "a/b"
    assert data_arg("python -m bench.run --data 'my data/x' --seed 1") == "my data/x"
    assert data_arg("python -m bench.run --model fus2net --data x") == "x"
    assert data_arg("python -m bench.run --model fus2net") is None
    assert data_arg("python -m bench.run --data") is None


@pytest.mark.slow
def test_data_that_are_not_the_run_s_are_refused_not_explained(located, run_copy, synthetic_copy):
    run = load_run(run_copy)
    victim = next((synthetic_copy / "benign").glob("*.png"))
    victim.write_bytes((synthetic_copy / "malignant" / "syn_malignant_0000.png").read_bytes())
    with pytest.raises(NotExplained, match="its images differ from the ones the run was trained"):
        run_index(run, synthetic_copy)  # same names, other pixels
    with pytest.raises(NotExplained, match="path does not exist"):
        run_index(run, synthetic_copy / "moved")
    cfg = json.loads((run_copy / "config.json").read_text())
    cfg["data"].pop("path")
    cfg["command"] = f"python -m bench.run --data={synthetic_copy}"  # an older record
    (run_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(NotExplained, match=f"its recorded data {synthetic_copy}: its images"):
        run_index(load_run(run_copy))
    assert run_index(load_run(run_copy), located[1]).kind == "synthetic"  # --data still works


def test_a_relative_external_source_is_recorded_from_where_it_was_given(tmp_path, monkeypatch):
    class_folders(tmp_path / "sets" / "other")
    monkeypatch.chdir(tmp_path / "sets")
    (ext,) = resolve_external(["other"])
    assert ext.name == "other" and ext.given == "other" and ext.source != "other"
    monkeypatch.chdir(tmp_path)  # read later from elsewhere: the same images
    again = external_index(ext.source)
    assert [s.path for s in again.samples] == [s.path for s in ext.index.samples]


# --- one row per configuration, and what is in no table is said ----------------------------------

@pytest.mark.slow
def test_every_configuration_of_a_model_is_a_row_with_its_external_sets(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_fixture_run(runs, "fus2net", 0.6, 1)
    a = write_fixture_run(runs, "resnet50", 0.5, 2)  # 96 px
    b = write_fixture_run(runs, "resnet50", 0.3, 3, img_size=64)
    write_fixture_run(runs, "resnet50", 0.3, 4, img_size=128)  # the latest: plain "resnet50"
    for k, folder in enumerate((a, b)):
        add_external(folder, "site-b", "data/site-b", seed=k)
    loaded = load_runs(runs)
    labels = [label for label, _ in comparison_sets(loaded)]
    assert labels == ["fus2net", "resnet50", "resnet50 (img_size 64)", "resnet50 (img_size 96)"]
    ext = external_table(loaded, n_boot=50)
    assert set(ext.model) == {"resnet50 (img_size 64)", "resnet50 (img_size 96)"}
    assert set_aside(loaded) == []
    assert report_main(["--runs", str(runs), "--out", str(tmp_path / "o"), "--n-boot", "50"]) == 0
    t = pd.read_csv(tmp_path / "o" / "tables" / "table3_comparison.csv")
    assert t.model.str.startswith("resnet50").sum() == 3
    assert "Runs**: 4; " in (tmp_path / "o" / "README.md").read_text()


@pytest.mark.slow
def test_runs_in_no_table_and_folders_without_a_run_are_listed(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_fixture_run(runs, "fus2net", 0.6, 1)
    write_fixture_run(runs, "resnet50", 0.5, 2, channels=1)  # not the paper recipe
    write_fixture_run(runs, "fus2net", 0.6, 3, model_kwargs={"in_chans": 3, "l2": 0.7})
    old = write_fixture_run(runs, "zeimarani_cnn", 0.4, 4)
    new = write_fixture_run(runs, "zeimarani_cnn", 0.5, 5)
    cfg = json.loads((old / "config.json").read_text())
    cfg["settings"] = json.loads((new / "config.json").read_text())["settings"]
    (old / "config.json").write_text(json.dumps(cfg))  # same configuration and seed, earlier
    (runs / "copied-by-hand").mkdir()  # no config.json
    running = write_fixture_run(runs, "googlenet_fujioka", 0.5, 6)
    cfg = json.loads((running / "config.json").read_text())
    (running / "config.json").write_text(json.dumps({**cfg, "status": "running"}))
    aside = dict(set_aside(load_runs(runs)))
    assert "not the paper recipe" in aside["resnet50-fixture-2-0"]
    assert "no experiment table lists" in aside["fus2net-fixture-3-0"]
    assert "a later run of the same configuration and seed 0" in aside[old.name]
    code, _, err = exit_code(report_main, ["--runs", str(runs), "--out", str(tmp_path / "o"),
                                           "--n-boot", "50"], capsys)
    assert code == 0
    assert "copied-by-hand: no config.json" in err and "not finished (status 'running'" in err
    assert "resnet50-fixture-2-0 is in no table: not the paper recipe" in err
    readme = (tmp_path / "o" / "README.md").read_text()
    assert "Runs**: 5 (3 of them in no table, listed below)" in readme
    assert "## Runs in no table" in readme and "copied-by-hand: no config.json" in readme


# --- external set names are unique and never the run's own splits --------------------------------

def test_external_sets_with_one_folder_name_or_a_split_name_are_refused(tmp_path, monkeypatch):
    class_folders(tmp_path / "a" / "ext")
    class_folders(tmp_path / "b" / "ext", seed=1)
    class_folders(tmp_path / "c" / "test", seed=2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchError, match=r"two sets are both called 'ext'; name one with "
                                         r"`external` NAME=b/ext"):
        resolve_external(["a/ext", "b/ext"])
    with pytest.raises(BenchError, match=r"`external` c/test: the name 'test' is one of the run's "
                                         r"own splits; name the set with `external` NAME=c/test"):
        resolve_external(["c/test"])
    named = resolve_external(["a/ext", "ext-b=b/ext", "busi-test=c/test"])
    assert [s.name for s in named] == ["ext", "ext-b", "busi-test"]
    with pytest.raises(BenchError, match="own splits"):
        resolve_external(["val=a/ext"])


def test_a_second_set_of_the_same_name_does_not_replace_the_first_one_s_scores(tmp_path,
                                                                                 monkeypatch):
    class_folders(tmp_path / "a" / "ext")
    class_folders(tmp_path / "b" / "ext", seed=1)
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    (first,) = resolve_external(["a/ext"])
    add_external(run_dir, "ext", first.source)
    (second,) = resolve_external(["b/ext"])
    with pytest.raises(BenchError, match=r"`external` b/ext: run already has an external set "
                                         r"named 'ext', scored from .*a/ext; name this one with "
                                         r"`external` NAME=b/ext"):
        check_same_source(RunFolder(run_dir), second, "d" * 64)
    check_same_source(RunFolder(run_dir), first, "d" * 64)  # the same set again: rescored, fine
    check_same_source(RunFolder(run_dir), ExternalSet("ext", "elsewhere/ext", first.index), "c" * 64)


# --- external predictions and explanation measures are verified ----------------------------------

def test_edited_external_predictions_are_refused(tmp_path, capsys):
    runs = tmp_path / "runs"
    folder = write_fixture_run(runs, "fus2net", 0.6, 1)
    ext = add_external(folder, "site-b", "data/site-b")
    assert "site-b" in load_run(folder).external
    preds = pd.read_csv(ext / "predictions.csv")
    preds["prob_malignant"] = preds.label.astype(float)  # a perfect "AUC" typed in
    preds.to_csv(ext / "predictions.csv", index=False)
    with pytest.raises(InvalidRun, match="external/site-b/predictions.csv does not match its "
                                         "checksum in metrics.json"):
        load_run(folder)
    code, _, err = exit_code(report_main, ["--runs", str(runs), "--out", str(tmp_path / "o"),
                                           "--n-boot", "50"], capsys)
    assert code == 2 and "does not match its checksum" in one_line_error(err)
    shutil.rmtree(ext)
    add_external(folder, "site-b", "data/site-b", checksum=False)  # an older, unverifiable record
    with pytest.raises(InvalidRun, match="has no recorded checksum"):
        load_run(folder)


def test_edited_explanation_measures_are_refused(tmp_path):
    runs = tmp_path / "runs"
    folder = write_fixture_run(runs, "fus2net", 0.6, 1)
    cam = folder / "explain" / "gradcam"
    cam.mkdir(parents=True)
    pd.DataFrame({"id": ["img000"], "lesion_energy_ratio": [0.4]}).to_csv(cam / "cam_metrics.csv",
                                                                          index=False)
    (cam / "info.json").write_text(json.dumps({"method": "gradcam", "files": {
        "cam_metrics.csv": file_sha256(cam / "cam_metrics.csv")}}))
    load_run(folder)
    (cam / "cam_metrics.csv").write_text("id,lesion_energy_ratio\nimg000,9.9\n")
    with pytest.raises(InvalidRun, match="explain/gradcam/cam_metrics.csv does not match its "
                                         "checksum in info.json"):
        load_run(folder)
    skipped: list[str] = []
    write_fixture_run(runs, "resnet50", 0.5, 2)
    assert [r.model for r in load_runs(runs, True, skipped)] == ["resnet50"] and skipped
    (cam / "cam_metrics.csv").unlink()
    with pytest.raises(InvalidRun, match="cam_metrics.csv is missing"):
        load_run(folder)


@pytest.mark.parametrize("column, value, message", [
    ("prob_malignant", np.nan, "prob_malignant nan is not a probability in [0, 1]"),
    ("prob_malignant", 1.5, "prob_malignant 1.5 is not a probability"),
    ("label", 2, "label 2 is not 0 or 1"),
])
def test_predictions_that_are_no_probabilities_are_refused_even_with_re_recorded_checksums(
        column, value, message, tmp_path, capsys):
    runs = tmp_path / "runs"
    folder = write_fixture_run(runs, "fus2net", 0.6, 1)
    preds = pd.read_csv(folder / "predictions.csv")
    preds.loc[7, column] = value
    preds.to_csv(folder / "predictions.csv", index=False)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["outputs"] = {"predictions.csv": file_sha256(folder / "predictions.csv")}  # re-recorded
    (folder / "config.json").write_text(json.dumps(cfg))
    code, _, err = exit_code(report_main, ["--runs", str(runs), "--out", str(tmp_path / "o"),
                                           "--n-boot", "50"], capsys)
    line = one_line_error(err)
    assert code == 2 and message in line and "predictions.csv line 9" in line
    assert "np." not in line


# --- explain: runs committed without weights, weights of another model ---------------------------

@pytest.mark.slow
def test_explain_skips_runs_without_weights_with_a_note_and_goes_on(run_copy, tmp_path, capsys):
    runs = run_copy.parent
    other = runs / "zz-copy"
    shutil.copytree(run_copy, other)
    (run_copy / "model.safetensors").unlink()  # committed without weights, never explained
    code, out, err = exit_code(explain_main, ["--runs", str(runs), "--device", "cpu"], capsys)
    assert code == 0, err
    assert f"note: {run_copy.name}: not explained: model.safetensors is not in the run folder" \
        in out and "zz-copy: explained" in out
    (other / "model.safetensors").unlink()  # explained before its weights went: up to date
    with console_logging():
        assert explain_run(load_run(other), device="cpu") is not None
    assert "zz-copy: explanations up to date" in capsys.readouterr().out


@pytest.mark.slow
def test_weights_of_another_model_are_one_line(run_copy, tmp_path, capsys):
    from safetensors.torch import save_file

    from models import create_model
    save_file(create_model("zeimarani_cnn", pretrained="none").state_dict(),
              str(tmp_path / "other.safetensors"))
    spec = RunSpec(**{k: v for k, v in load_run(run_copy).settings.items()
                      if k in RunSpec.__dataclass_fields__})
    with pytest.raises(BenchError, match="other.safetensors: these weights do not fit fus2net"):
        final_model(spec, tmp_path / "other.safetensors")
    shutil.copy(tmp_path / "other.safetensors", run_copy / "model.safetensors")
    cfg = json.loads((run_copy / "config.json").read_text())
    cfg["outputs"]["model.safetensors"] = file_sha256(run_copy / "model.safetensors")
    (run_copy / "config.json").write_text(json.dumps(cfg))  # checksums re-recorded
    problems = explain_runs(load_runs(run_copy.parent), device="cpu")
    assert len(problems) == 1 and "these weights do not fit fus2net" in problems[0]
    code, _, err = exit_code(explain_main, ["--runs", str(run_copy.parent), "--device", "cpu"],
                             capsys)
    assert code == 2 and "1 run(s) not explained" in one_line_error(err)


# --- the suite checks its settings before any training -------------------------------------------

def test_an_unknown_model_name_stops_the_suite_before_any_training(tiny_synthetic, tmp_path,
                                                                  capsys):
    for models, message in (("fus2net,fus2nett", "unknown model 'fus2nett'; did you mean fus2net"),
                            ("resnet50, nosuchnet", "unknown model 'nosuchnet'"),
                            (",", "give registered model names")):
        code, out, err = exit_code(suite_main, ["--models", models, "--data", str(tiny_synthetic),
                                                "--profile", "smoke", "--test-per-class", "4", "--out",
                                                str(tmp_path / "s")], capsys)
        assert code == 2 and message in one_line_error(err)
        assert not (tmp_path / "s" / "runs").exists() and "===" not in out


class Stop(Exception):
    """Raised by a stand-in to end the suite once its settings are read."""


@pytest.mark.parametrize("toml, expected", [
    ('slurm_extra = "qos=high"', {"slurm_extra": ["qos=high"]}),
    ('slurm_extra = ["qos=high", "account=lab"]', {"slurm_extra": ["qos=high", "account=lab"]}),
    ('slurm_extra = { qos = "high" }', {"slurm_extra": ["qos=high"]}),
    ("seeds = 1", {"seeds": "1"}),
    ("seeds = [0, 2]", {"seeds": "0,2"}),
    ('seeds = "0,1"', {"seeds": "0,1"}),
    ('models = ["fus2net", "resnet50"]', {"models": "fus2net,resnet50"}),
    ("mem_gb = 8", {"mem_gb": 8.0}),
])
def test_suite_config_values_are_read_by_their_type(toml, expected, tmp_path, monkeypatch):
    import bench.cli.suite as suite
    seen = {}

    def capture(args):
        seen.update(vars(args))
        raise Stop

    monkeypatch.setattr(suite, "cluster_config", capture)
    (tmp_path / "s.toml").write_text(toml + "\n")
    with pytest.raises(Stop):
        suite_main(["--config", str(tmp_path / "s.toml")])
    for key, value in expected.items():
        assert seen[key] == value


@pytest.mark.parametrize("toml, message", [
    ("seeds = 1.5", "seeds = 1.5 is not a list of seeds"),
    ('seeds = ["a"]', 'seeds = ["a"] is not a list of seeds'),
    ("models = 3", "models = 3 is not a list of names"),
    ("models = [1, 2]", "models = [1, 2] is not a list of names"),
    ('jobs = "four"', 'jobs = "four" is not an integer'),
    ("jobs = true", "jobs = true is not an integer"),
    ("slurm_extra = 5", "slurm_extra = 5 is not a table"),
    ('executor = "pbs"', 'executor = "pbs" is not one of inline'),
    ("data = 3", "data = 3 is not a path string or a list of paths (one per site)"),
])
def test_suite_config_values_of_the_wrong_type_are_one_line(toml, message, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(toml + "\n")
    code, _, err = exit_code(suite_main, ["--config", str(tmp_path / "s.toml")], capsys)
    line = one_line_error(err)
    assert code == 2 and f"--config {tmp_path / 's.toml'}: {message}" in line


def test_job_progress_counts_failed_jobs_and_follows_no_progress(tiny_synthetic, tmp_path,
                                                                 monkeypatch, capsys):
    outcomes = [JobOutcome("a", JobStatus.FAILED, attempts=1, ended=1.8e9),
                JobOutcome("b", JobStatus.FAILED, attempts=1, ended=1.8e9 + 5),
                JobOutcome("c", JobStatus.OK, attempts=1, ended=1.8e9),
                JobOutcome("d", JobStatus.FAILED)]
    assert failed_count(outcomes) == 2
    import bench.jobs.suite as suite
    seen = []

    def grid(jobs, cfg, log_dir, progress=True):
        seen.append(progress)
        return [JobOutcome(job.label, JobStatus.FAILED, message="stand-in") for job in jobs]

    monkeypatch.setattr(suite, "run_grid", grid)
    for flags, progress in (([], True), (["--no-progress"], False)):
        exit_code(suite_main, ["--executor", "debug", "--models", "fus2net", "--data",
                               str(tiny_synthetic), "--profile", "smoke", "--test-per-class", "4", "--out",
                               str(tmp_path / "s"), *flags], capsys)
        assert seen[-1] is progress


# --- manifests, options and messages -------------------------------------------------------------

def manifest_file(tmp_path: Path, folds: list[int], test_fold: int = -1) -> Path:
    rows = [f"t{i},benign/t{i}.png,{i % 2},g{i},train,{f}" for i, f in enumerate(folds)]
    rows.append(f"x0,benign/x0.png,0,gx,test,{test_fold}")
    path = tmp_path / "m.csv"
    path.write_text("id,path,label,group,split,fold\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("folds, line", [([0, 1, -3, 1], 4), ([0, -1, 1, 0], 3), ([-2] * 4, 2)])
def test_a_training_row_outside_the_cv_folds_is_refused(folds, line, tmp_path):
    with pytest.raises(BenchError, match=rf"m.csv line {line}: fold -\d of a training image is "
                                         r"not a CV fold"):
        read_manifest(manifest_file(tmp_path, folds))


def test_manifests_without_cv_folds_or_with_test_rows_at_minus_one_are_read(tmp_path):
    assert list(read_manifest(manifest_file(tmp_path, [-1, -1, -1])).fold) == [-1] * 4
    assert list(read_manifest(manifest_file(tmp_path, [0, 1, 0])).fold) == [0, 1, 0, -1]


@pytest.mark.parametrize("value, shown", [("1.5", "fold 1.5 is not an integer"),
                                          ("x", "fold 'x' is not an integer")])
def test_messages_show_plain_numbers(value, shown, tmp_path):
    path = manifest_file(tmp_path, [0, 1, 0])
    path.write_text(path.read_text().replace("train,1\n", f"train,{value}\n"))
    with pytest.raises(BenchError, match=shown) as exc:
        read_manifest(path)
    assert "np." not in str(exc.value)
    for label, text in ((np.int64(2), "unknown label 2;"), (np.float64(1.5), "unknown label 1.5;")):
        with pytest.raises(BenchError, match=text):
            parse_label(label, "m.csv line 3")
    assert plain(np.int64(2)) == 2 and plain(np.float64(1.5)) == 1.5 and plain(np.float64(3.0)) == 3


def test_data_paths_in_messages_are_as_typed(tmp_path, monkeypatch):
    (tmp_path / "d" / "benign").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchError) as exc:
        load_index(Path("d"), "folder")
    assert str(exc.value).startswith("d/benign: class 'benign' has no images")


@pytest.mark.parametrize("args, message", [
    (["--img-size", "0"], "--img-size must be an integer > 0, not '0'"),
    (["--steps", "0"], "--steps must be an integer > 0"),
    (["--warmup", "-1"], "--warmup must be an integer >= 0"),
])
def test_speed_options_are_checked(args, message, capsys):
    code, _, err = exit_code(speed_main, args, capsys)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.slow
def test_speed_without_warm_up_and_out_of_memory(small_synthetic, tmp_path, monkeypatch, capsys):
    base = ["--models", "zeimarani_cnn", "--data", str(small_synthetic), "--img-size", "32",
            "--steps", "1", "--members", "0", "--workers", "0", "--device", "cpu", "--out",
            str(tmp_path)]
    code, out, err = exit_code(speed_main, [*base, "--warmup", "0"], capsys)
    assert code == 0, err
    assert "after 0 warm-up" in out and len(pd.read_csv(tmp_path / "speed.csv")) == 2
    import bench.engine.speed as speed

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 68719476736 bytes")

    monkeypatch.setattr(speed, "time_naive", no_memory)
    code, _, err = exit_code(speed_main, [*base, "--warmup", "1"], capsys)
    assert code == 2 and "does not fit in cpu memory" in one_line_error(err)
    monkeypatch.setattr(device_mod, "available_bytes", lambda device: 2**20)
    code, _, err = exit_code(speed_main, [*base[:5], "4096", *base[6:]], capsys)
    assert code == 2 and "--img-size 4096: the image cache" in one_line_error(err)


def test_an_image_size_that_does_not_fit_is_refused_before_the_run_starts(
        tiny_synthetic, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(device_mod, "available_bytes", lambda device: 2**16)  # below the tiny set
    code, _, err = run_main(capsys, "--data", str(tiny_synthetic), "--out", str(tmp_path), *TINY,
                            "--model", "zeimarani_cnn", "--img-size", "96")
    assert code == 2 and "--img-size 96: the image cache of" in one_line_error(err)
    assert not list(tmp_path.glob("*/config.json"))  # nothing written


# --- report options, full disks and files where folders belong -----------------------------------

def test_report_options_are_checked(tmp_path, capsys):
    runs = tmp_path / "runs"
    write_fixture_run(runs, "fus2net", 0.6, 1)
    (tmp_path / "file").write_text("")
    for args, message in ((["--n-boot", "0"], "--n-boot must be an integer > 0"),
                          (["--out", str(tmp_path / "file")], "is a file, not a folder"),
                          (["--out", str(tmp_path / "file" / "sub")], "cannot write there")):
        code, _, err = exit_code(report_main, ["--runs", str(runs), *args], capsys)
        assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("error, message", [
    (OSError(errno.ENOSPC, "No space left on device", "x/stages/final/model.safetensors"),
     "no space left on the device (No space left on device); the run r is unfinished (status "
     "running in its config.json)"),
    (FileExistsError(errno.EEXIST, "File exists", "x/stages"), "x/stages: a file stands where"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "x/stages/fold_0"), "a file stands"),
    (PermissionError(errno.EACCES, "Permission denied", "x/cv.csv"), "x/cv.csv: cannot write it"),
])
def test_write_failures_during_a_run_are_one_line_that_says_how_to_resume(error, message):
    with pytest.raises(BenchError, match="rerun the same command") as exc, \
            write_errors_said(Path("r")):
        raise error
    assert message in str(exc.value)


def test_a_full_disk_mid_run_leaves_it_running_and_says_how_to_resume(tiny_synthetic, tmp_path,
                                                                      monkeypatch, capsys):
    import bench.engine.runner as run_mod

    def full(ctx):
        raise OSError(errno.ENOSPC, "No space left on device",
                      str(ctx.folder.path / "stages" / "final" / "model.safetensors"))

    monkeypatch.setattr(run_mod, "run_protocol", full)
    code, _, err = run_main(capsys, "--data", str(tiny_synthetic), "--out", str(tmp_path), *TINY,
                            "--folds", "0")
    assert code == 2 and "rerun the same command" in one_line_error(err)
    (cfg,) = tmp_path.glob("*/config.json")
    assert json.loads(cfg.read_text())["status"] == "running"


@pytest.mark.slow
def test_stages_replaced_by_a_file_is_one_line(run_copy, located, tmp_path, capsys):
    shutil.rmtree(run_copy / "stages")
    (run_copy / "stages").write_text("not a folder")
    code, _, err = run_main(capsys, "--data", str(located[1]), "--out", str(run_copy.parent),
                            *SMOKE, "--folds", "0")
    assert code == 2 and "a file stands where the run keeps a folder" in one_line_error(err)


# --- the training data are no external set --------------------------------------------------------

@pytest.mark.slow
def test_the_run_s_own_images_are_refused_as_an_external_set(small_synthetic, synthetic_copy,
                                                             busi_tree, tmp_path):
    index = load_index(small_synthetic)
    manifest = pd.DataFrame({"path": [s.path for s in index.samples],
                             "split": ["test" if k % 5 == 0 else "train"
                                       for k in range(len(index.samples))]})
    for given in (str(small_synthetic), str(synthetic_copy)):  # the same files; a byte copy
        (ext,) = resolve_external([given])
        with pytest.raises(BenchError, match=rf"`external`={given}: 120 of its 120 images are the "
                                             "run's own training or test images"):
            check_not_own_images(ext, index, manifest)
    half = tmp_path / "half"
    for cls in ("benign", "malignant"):
        (half / cls).mkdir(parents=True)
        for p in sorted((synthetic_copy / cls).glob("*.png"))[:10]:
            shutil.copy(p, half / cls / p.name)
    class_folders(half, n=12, seed=3)
    (ext,) = resolve_external([str(half)])
    check_not_own_images(ext, index, manifest)  # 20 of 44 own images: not most, allowed
    (ext,) = resolve_external([str(busi_tree)])
    check_not_own_images(ext, index, manifest)


@pytest.mark.slow
def test_a_run_the_suite_cannot_explain_is_said_and_the_report_is_still_built(
        small_synthetic, tmp_path, monkeypatch, capsys):
    import bench.jobs.suite as suite
    from bench.engine.runner import RunResult
    out = tmp_path / "s"
    folder = write_fixture_run(out / "runs", "fus2net", 0.6, 1)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["profile"]["name"] = "smoke"
    (folder / "config.json").write_text(json.dumps(cfg))
    metrics = json.loads((folder / "metrics.json").read_text())
    monkeypatch.setattr(suite, "run", lambda options: RunResult(folder, "complete", metrics, 0.0))

    def cannot(run, **kwargs):
        raise NotExplained(f"{run.path.name}: its recorded data x: path does not exist; pass "
                           "--data with the data set the run was trained on")

    monkeypatch.setattr(suite, "explain_run", cannot)
    code, _, err = exit_code(suite_main, ["--models", "fus2net", "--data", str(small_synthetic),
                                          "--profile", "smoke", "--out", str(out)], capsys)
    assert code == 1 and "path does not exist; pass --data" in err
    assert f"failed: explain {folder.name}" in err
    assert (out / "README.md").is_file()  # the report was built all the same


@pytest.mark.slow
def test_external_sets_explain_cannot_find_or_that_take_a_split_name_are_said(run_copy):
    add_external(run_copy, "site-b", "nowhere/site-b")
    (problem,) = explain_runs(load_runs(run_copy.parent), device="cpu")
    assert "external set nowhere/site-b: `data`" in problem and "path does not exist" in problem
    shutil.rmtree(run_copy / "external" / "site-b")
    add_external(run_copy, "test", "data/test")  # scored by an older version under a split name
    (problem,) = explain_runs(load_runs(run_copy.parent), device="cpu")
    assert "its external set is named 'test', as one of the run's own splits" in problem
    assert not (run_copy / "explain").exists()
