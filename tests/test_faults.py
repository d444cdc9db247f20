"""Bad input and faults: never a silent wrong, stale or lost result, never a traceback (docs/faults.md,
"When things go wrong"). One test per class of fault, each on small data built here."""

import errno
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from bench.cli.report import main as report_main
from bench.core.atomic import UMASK, exclusive, write_json
from bench.core.errors import BenchError, console_logging
from bench.data.datasets import load_index
from bench.data.images import BadImageError, read_image
from tests.helpers import SMOKE, TINY, run_main, write_fixture_run, write_image


@pytest.fixture(scope="module")
def finished_once(small_synthetic, tmp_path_factory) -> Path:
    """A finished smoke run, trained once for the tests of this module."""
    from bench.cli.run import main

    out = tmp_path_factory.mktemp("finished") / "runs"
    assert main(["--data", str(small_synthetic), "--out", str(out), *SMOKE]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


@pytest.fixture()
def finished(finished_once, tmp_path) -> Path:
    """A copy of the finished smoke run in this test's own --out folder, to damage at will."""
    run_dir = tmp_path / "runs" / finished_once.name
    shutil.copytree(finished_once, run_dir)
    return run_dir


def rerun(capsys, small_synthetic, run_dir: Path) -> tuple[int, str]:
    code, out, err = run_main(capsys, "--data", str(small_synthetic), "--out", str(run_dir.parent),
                         *SMOKE)
    assert code == 0, err
    return code, out


# --- silent wrong, stale or lost results ---------------------------------------------------------

@pytest.mark.slow
def test_corrupted_top_level_weights_are_not_reused(finished, small_synthetic, capsys):
    good = (finished / "model.safetensors").read_bytes()
    (finished / "model.safetensors").write_bytes(good[: len(good) // 2])
    _, out = rerun(capsys, small_synthetic, finished)
    assert "model.safetensors does not match its recorded checksum" in out
    assert "reusing the finished run" not in out
    assert (finished / "model.safetensors").read_bytes() == good  # restored from the final stage


@pytest.mark.slow
def test_truncated_stage_file_is_noticed_and_only_that_stage_retrains(finished, small_synthetic,
                                                                      capsys):
    path = finished / "stages" / "fold_0" / "predictions.csv"
    before = path.read_bytes()
    path.write_bytes(before[: len(before) // 2])
    _, out = rerun(capsys, small_synthetic, finished)
    assert "stage fold_0's files are missing or do not match" in out
    assert "resumed: reused fold_1, final (checksums verified); trained fold_0" in out
    assert path.read_bytes() == before  # same seed: the same predictions again


def test_two_images_with_one_name_are_an_error_naming_both(tiny_copy):
    src = tiny_copy / "benign" / "syn_benign_0005.png"
    Image.open(src).save(tiny_copy / "benign" / "syn_benign_0005.jpg")
    with pytest.raises(BenchError, match=r"'benign/syn_benign_0005.jpg' and "
                                         r"'benign/syn_benign_0005.png' share the name|"
                                         r"'benign/syn_benign_0005.png' and "
                                         r"'benign/syn_benign_0005.jpg' share the name"):
        load_index(tiny_copy)


@pytest.mark.slow
def test_images_replaced_under_the_same_names_get_a_new_run(synthetic_copy, tmp_path, capsys):
    out = tmp_path / "runs"
    assert run_main(capsys, "--data", str(synthetic_copy), "--out", str(out), *SMOKE)[0] == 0
    victim = synthetic_copy / "benign" / "syn_benign_0001.png"
    arr = np.asarray(Image.open(victim)).copy()
    Image.fromarray(255 - arr).save(victim)  # same name, other pixels
    code, stdout, _ = run_main(capsys, "--data", str(synthetic_copy), "--out", str(out), *SMOKE)
    assert code == 0 and "reusing the finished run" not in stdout
    configs = [json.loads((d / "config.json").read_text()) for d in out.iterdir()]
    assert len({c["settings"]["data_sha256"] for c in configs}) == 2


def test_json_outputs_are_strict(tmp_path):
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [float("inf"), 1.5]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.5]}


@pytest.mark.slow
def test_report_refuses_runs_with_missing_files_or_a_one_class_test_set(finished, tmp_path,
                                                                         capsys):
    for case in ("missing", "one_class"):
        runs = tmp_path / case
        copy = runs / finished.name
        shutil.copytree(finished, copy)
        if case == "missing":
            (copy / "metrics.json").unlink()
            expected = "metrics.json is missing"
        else:
            cfg = json.loads((copy / "config.json").read_text())
            cfg.pop("outputs")  # a foreign run folder that recorded no checksums
            (copy / "config.json").write_text(json.dumps(cfg))
            preds = pd.read_csv(copy / "predictions.csv")
            preds[(preds.split != "test") | (preds.label == 0)].to_csv(copy / "predictions.csv",
                                                                       index=False)
            expected = "its test set has only benign images"
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            report_main(["--runs", str(runs), "--out", str(tmp_path / "o"), "--n-boot", "50"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and expected in err and "Traceback" not in err


# --- one line and exit 2 instead of a traceback ---------------------------------------------------

@pytest.mark.slow
def test_decompression_bomb_is_a_bad_image_and_skippable(synthetic_copy, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)  # a 320×240 phantom is a "bomb" now
    with pytest.raises(BadImageError, match="too large to decode safely"):
        read_image(synthetic_copy / "benign" / "syn_benign_0000.png")
    big = synthetic_copy / "benign" / "bomb.png"
    Image.new("L", (500, 500)).save(big)  # 250,000 px: above twice the limit
    code, _, err = run_main(capsys, "--data", str(synthetic_copy), "--out", str(tmp_path / "o"), *SMOKE)
    assert code == 2 and "too large to decode safely" in err and "Traceback" not in err


def test_file_name_that_is_not_utf8_is_named_in_one_line(tiny_copy, tmp_path, capsys):
    name = os.path.join(os.fsencode(tiny_copy / "benign"), b"bad\xff.png")
    shutil.copy(tiny_copy / "benign" / "syn_benign_0000.png", name)
    code, _, err = run_main(capsys, "--data", str(tiny_copy), "--out", str(tmp_path / "o"), *TINY)
    assert code == 2 and "file name is not valid UTF-8" in err and "rename the file" in err


@pytest.mark.slow
@pytest.mark.parametrize("column, value, message", [
    ("fold", "two", "fold 'two' is not an integer"),
    ("label", "malignant", "label 'malignant' is not 0 (benign) or 1 (malignant)"),
])
def test_manifest_with_wrong_values_is_refused(column, value, message, finished, small_synthetic,
                                               tmp_path, capsys):
    manifest = pd.read_csv(finished / "split.csv").astype({column: object})
    manifest.loc[3, column] = value
    manifest.to_csv(tmp_path / "m.csv", index=False)
    code, _, err = run_main(capsys, "--data", str(small_synthetic), "--out", str(tmp_path / "o"),
                       "--split", str(tmp_path / "m.csv"), *SMOKE)
    assert code == 2 and message in err and "line 5" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_non_finite_learning_rate_is_refused(value, tiny_synthetic, tmp_path, capsys):
    code, _, err = run_main(capsys, "--data", str(tiny_synthetic), "--out", str(tmp_path), "--lr",
                            value, *TINY)
    assert code == 2 and "must be a finite number >= 0" in err


@pytest.mark.slow
def test_weights_that_turn_non_finite_on_the_last_step_mark_the_stage_failed(
        small_synthetic, tmp_path, capsys, monkeypatch):
    import bench.engine.protocol as protocol
    real = protocol.train_model

    def overflowing(model, *args, **kwargs):  # what an overflowing last update leaves behind
        history = real(model, *args, **kwargs)
        with torch.no_grad():
            next(model.parameters()).fill_(float("inf"))
        return history

    monkeypatch.setattr(protocol, "train_model", overflowing)
    code, out, _ = run_main(capsys, "--data", str(small_synthetic), "--out", str(tmp_path), *SMOKE,
                       "--folds", "0")
    assert code == 1 and "FAILED" in out and "weights became non-finite" in out
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "stages" / "final" / "failed.json").read_text())["stage"] == "final"


def test_out_path_longer_than_the_file_system_allows(tiny_synthetic, tmp_path, capsys):
    code, _, err = run_main(capsys, "--data", str(tiny_synthetic), "--out", str(tmp_path / ("x" * 300)),
                            *TINY)
    assert code == 2 and "cannot write there (File name too long)" in err


@pytest.mark.parametrize("model", ["fus2net", "resnet50"])
def test_weights_file_with_wrong_keys_is_refused(model, tiny_synthetic, tmp_path, capsys):
    path = tmp_path / "wrong.safetensors"
    save_file({"not.a.layer": torch.zeros(3)}, str(path))
    code, _, err = run_main(capsys, "--model", model, "--data", str(tiny_synthetic), "--out",
                            str(tmp_path / "o"), "--pretrained", str(path), *TINY)
    assert code == 2 and "the weights do not fit" in err and "Traceback" not in err


# --- smaller ones ------------------------------------------------------------------------------

@pytest.mark.slow
def test_outputs_get_the_permissions_of_plain_new_files(finished):
    expected = 0o666 & ~UMASK
    for name in ("config.json", "predictions.csv", "model.safetensors"):
        assert (finished / name).stat().st_mode & 0o777 == expected, name


def test_links_that_lead_nowhere_are_listed_as_ignored(tiny_copy):
    loop = tiny_copy / "benign" / "loop.png"
    os.symlink(loop, loop)
    index = load_index(tiny_copy)
    assert ("benign/loop.png", "link that leads to no file (broken, or a link loop)") in index.ignored


def test_a_second_process_on_the_same_run_waits_for_the_first(tmp_path, capsys):
    order = []

    def second():
        with exclusive(tmp_path / ".lock", "waiting for the first"):
            order.append("second")

    with console_logging(), exclusive(tmp_path / ".lock", "unused"):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]
    assert "waiting for the first" in capsys.readouterr().out


def test_a_subset_of_busi_is_told_how_to_build_its_own_split(busi_tree, tmp_path, capsys):
    for i in range(1, 4):
        write_image(busi_tree / "benign" / f"benign ({i}).png", seed=i)
    code, _, err = run_main(capsys, "--data", str(busi_tree), "--out", str(tmp_path / "o"), *SMOKE)
    assert code == 2 and "python -m bench.split --data DIR --out my_split.csv" in err


def test_a_folder_where_the_lock_file_goes_is_one_line_naming_it(tmp_path):
    (tmp_path / ".lock").mkdir()
    with pytest.raises(BenchError, match=f"^{tmp_path / '.lock'}: a folder is where the lock "
                                         "file goes; remove it$"):
        with exclusive(tmp_path / ".lock", "unused"):
            pass


def test_a_folder_where_an_output_s_lock_goes_stops_the_command_in_one_line(tmp_path, capsys):
    from bench.cli.report import main as report

    write_fixture_run(tmp_path / "runs", "fus2net", 0.6, 1)
    (tmp_path / ".out.lock").mkdir()
    with pytest.raises(SystemExit) as exc:
        report(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--n-boot", "20"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err == f"error: {tmp_path / '.out.lock'}: a folder is where " \
                                          "the lock file goes; remove it\n"
    assert not (tmp_path / "out").exists()


BAD_CONFIGS = {
    "a list": ("[]", "config.json: a JSON array, not a run's record"),
    "null": ("null", "config.json: a JSON null, not a run's record"),
    "no settings": ('{"status": "complete"}', "config.json: no settings"),
    "settings a list": ('{"status": "complete", "settings": []}',
                        "config.json: settings is a JSON array, not an object"),
    "no model": ('{"status": "complete", "settings": {"seed": 0}}',
                 "config.json: settings has no model name"),
    "outputs a list": (None, "config.json: outputs is not an object"),
    "truncated": (None, "config.json: not valid JSON (truncated?)"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_run_whose_config_is_no_record_is_one_line_and_skippable(case, tmp_path, capsys):
    from bench.cli.report import main as report

    runs = tmp_path / "runs"
    write_fixture_run(runs, "fus2net", 0.6, 1)
    bad = write_fixture_run(runs, "resnet50", 0.5, 2)
    text, message = BAD_CONFIGS[case]
    config = (bad / "config.json").read_text()
    if case == "outputs a list":
        text = json.dumps({**json.loads(config), "outputs": ["predictions.csv"]})
    elif case == "truncated":
        text = config[: len(config) // 2]
    (bad / "config.json").write_text(text)
    args = ["--runs", str(runs), "--out", str(tmp_path / "out"), "--n-boot", "20"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        report(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"error: {bad.name}/{message}" in err and "--skip-invalid-runs" in err
    assert not (tmp_path / "out").exists()
    if case in ("no settings", "truncated"):  # one report each way a record fails (~1.5 s each)
        assert report([*args, "--skip-invalid-runs"]) == 0
        err = capsys.readouterr().err
        assert f"warning: left out: {bad.name}/{message}" in err
        assert bad.name in (tmp_path / "out" / "README.md").read_text()


# --- a full disk, a quota, a read-only file system; Ctrl-C -------------------------------------

def full_disk(code: int = errno.ENOSPC):
    """``os.replace`` (every atomic write's last step, bench/core/atomic.py) failing as on a full
    disk: the error names the temporary file, as the system does."""
    def replace(src, dst, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(src))
    return replace


def only_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_full_disk_is_one_line_naming_the_file_in_every_command(tiny_synthetic, tmp_path,
                                                                   monkeypatch, capsys):
    """bench.run (inpainting annotations into the cache, before the run starts), bench.report and
    bench.evaluate: exit 2 and one line naming the file the write was to make, never the atomic
    write's temporary file, never a traceback; what was written before stays."""
    import bench.data.annotations as annotations_mod
    from bench.cli.evaluate import main as evaluate_main
    from tests.helpers import call_main
    from tests.test_evaluate import fixture_set

    def clean_file(src, dst, method):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setenv("FUS2BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(annotations_mod, "clean_file", clean_file)
    code, _, err = run_main(capsys, "--data", str(tiny_synthetic), "--out", str(tmp_path / "runs"),
                            *TINY, "--annotations", "clean")
    line = only_line(err)
    assert code == 2 and "annotations-clean" in line, line
    assert "no space left on the device; free some space and rerun the same command" in line

    runs = fixture_set(tmp_path / "fixture-runs", {"fus2net": 0.6}, seeds=(0,))
    monkeypatch.setattr(os, "replace", full_disk())
    code, _, err = call_main(capsys, report_main, "--runs", str(runs), "--out",
                             str(tmp_path / "report"), "--n-boot", "20")
    line = only_line(err)
    assert code == 2 and line.startswith(f"error: {tmp_path / 'report'}") and ".tmp" not in line
    preds = tmp_path / "mine.csv"
    pd.read_csv(next(runs.iterdir()) / "predictions.csv").query("split == 'test'")[
        ["id", "prob_malignant"]].to_csv(preds, index=False)
    code, _, err = call_main(capsys, evaluate_main, "--predictions", str(preds), "--name", "mine",
                             "--runs", str(runs), "--out", str(tmp_path / "ev"), "--n-boot", "20")
    line = only_line(err)
    assert code == 2 and line.startswith(f"error: {tmp_path / 'ev'}") and ".tmp" not in line
    monkeypatch.setattr(os, "replace", full_disk(errno.EROFS))
    code, _, err = call_main(capsys, report_main, "--runs", str(runs), "--out",
                             str(tmp_path / "report"), "--n-boot", "20")
    assert code == 2 and "the file system is read-only; choose a writable folder" in only_line(err)


def test_a_write_error_of_any_library_is_recognised_by_the_system_s_words(capsys):
    """A library that writes outside Python's file objects (safetensors, torch) raises no
    OSError; its message carries the system's words, and that is one line too. Any other error
    stays a traceback (a bug, not the disk)."""
    from bench.core.errors import cli_main, disk_error

    @cli_main
    def main(error: Exception) -> int:
        raise error

    full = RuntimeError("Error while serializing: IoError(No space left on device (os error 28))")
    assert disk_error(full) == errno.ENOSPC
    assert disk_error(OSError(errno.EDQUOT, "Disk quota exceeded")) == errno.EDQUOT
    assert disk_error(OSError(errno.EACCES, "Permission denied")) is None
    with pytest.raises(SystemExit) as exc:
        main(full)
    assert exc.value.code == 2
    assert only_line(capsys.readouterr().err) == (
        "error: a file: cannot write it, no space left on the device; free some space and rerun "
        "the same command (the work already finished is kept: every file is written whole or not "
        "at all)")
    with pytest.raises(ValueError):
        main(ValueError("a bug"))


def test_ctrl_c_says_what_the_interrupted_command_keeps(tmp_path, monkeypatch, capsys):
    """Only the commands that train and resume (bench.run, bench.suite) speak of folds; a report,
    an evaluation or a scoring says its own line. Exit code 130."""
    import bench.cli.report as report_cli
    import bench.cli.run as run_cli_mod
    import bench.cli.score as score_cli
    from tests.helpers import call_main

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_cli, "build_report", interrupt)
    monkeypatch.setattr(run_cli_mod, "run", interrupt)
    monkeypatch.setattr(score_cli, "run_folders", interrupt)
    code, _, err = call_main(capsys, report_cli.main, "--runs", str(tmp_path), "--out",
                             str(tmp_path / "r"))
    assert code == 130 and "folds" not in only_line(err) and "interrupted" in err
    code, _, err = call_main(capsys, score_cli.main, "--runs", str(tmp_path), "--external", "x")
    assert code == 130 and "folds" not in only_line(err)
    code, _, err = call_main(capsys, run_cli_mod.main, "--out", str(tmp_path))
    assert code == 130 and only_line(err) == ("interrupted: finished folds are saved; rerun the "
                                              "same command to resume")
