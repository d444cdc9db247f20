"""End-to-end ``python -m bench.run`` on small data: outputs, reproducibility, resume, errors."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.cli.run import main
from tests.helpers import BUSI, SMOKE, TINY, run_cli, run_main, write_image


@pytest.fixture(scope="module")
def smoke_run(small_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["--data", str(small_synthetic), "--out", str(out), *SMOKE]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


def own_copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of a module fixture's run, alone in a runs folder of this test: a test that changes
    a run changes its copy, so no other test depends on the order they run in."""
    dst = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, dst)
    return dst


@pytest.mark.slow
def test_run_writes_every_documented_output(smoke_run):
    for name in ("config.json", "predictions.csv", "metrics.json", "cv_metrics.csv",
                 "model.safetensors", "split.csv", "split_report.json"):
        assert (smoke_run / name).is_file(), name
    cfg = json.loads((smoke_run / "config.json").read_text())
    assert cfg["status"] == "complete"
    for key in ("settings", "versions", "git_revision", "device", "timings", "profile"):
        assert key in cfg
    assert cfg["settings"]["seed"] == 0 and cfg["settings"]["manifest_sha256"]
    assert cfg["weights"] == "random"
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"accuracy", "sensitivity", "specificity", "ppv", "npv", "f1",
                                    "auc", "tp", "fp", "tn", "fn", "n"}
    assert metrics["test"]["n"] == 40
    preds = pd.read_csv(smoke_run / "predictions.csv")
    assert list(preds.columns) == ["id", "path", "label", "prob_malignant", "split", "fold"]
    assert set(preds.split) == {"val", "test"}
    assert preds.prob_malignant.between(0, 1).all()
    cv = pd.read_csv(smoke_run / "cv_metrics.csv")
    assert list(cv.fold) == [0, 1]


@pytest.mark.slow
def test_same_seed_gives_byte_identical_predictions_on_cpu(small_synthetic, smoke_run, tmp_path):
    assert main(["--data", str(small_synthetic), "--out", str(tmp_path), *SMOKE]) == 0
    (again,) = tmp_path.iterdir()
    assert again.name == smoke_run.name
    assert (again / "predictions.csv").read_bytes() == (smoke_run / "predictions.csv").read_bytes()


@pytest.mark.slow
def test_rerun_resumes_finished_stages(small_synthetic, smoke_run, tmp_path, capsys):
    run = own_copy(smoke_run, tmp_path)
    before = (run / "predictions.csv").read_bytes()
    (run / "metrics.json").unlink()  # an interrupted run: stages done, summary not written
    assert main(["--data", str(small_synthetic), "--out", str(run.parent), *SMOKE]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert {s["status"] for s in cfg["timings"]["stages"].values()} == {"reused"}
    assert (run / "predictions.csv").read_bytes() == before


@pytest.mark.slow
def test_different_config_gets_a_different_run_folder(small_synthetic, smoke_run, tmp_path):
    run = own_copy(smoke_run, tmp_path)
    assert main(["--data", str(small_synthetic), "--out", str(run.parent), *SMOKE,
                 "--folds", "0", "--seed", "3"]) == 0
    assert len(list(run.parent.iterdir())) == 2


@pytest.mark.slow
def test_bad_input_from_the_shell_exits_2_without_traceback(tmp_path):
    proc = run_cli("--data", "/nonexistent/data", "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: --data /nonexistent/data: path does not exist"


@pytest.mark.parametrize("args, message", [
    (["--model", "fus2nett"], "did you mean fus2net"),
    (["--device", "cuda"], "no CUDA GPU"),
    (["--epochs", "0"], "--epochs must be an integer > 0"),
    (["--optimizer", "adagrad"], "invalid choice: 'adagrad'"),
    (["--folds", "1"], "--folds 1 is not cross-validation"),
    (["--model", "resnet50", "--l2", "0.1"], "--l2 applies to fus2net"),
    (["--pretrained", "/no/such/weights.pth"], "weights file does not exist"),
    (["--model", "zeimarani_cnn", "--pretrained", "/no/such/weights.pth"], "does not exist"),
    (["--model", "zeimarani_cnn", "--pretrained", "pyproject.toml"], "has no pretrained weights"),
    (["--model", "resnet50", "--pretrained", "require"], "--pretrained require: no ImageNet"),
    (["--model", "fus2net", "--pretrained", "require"], "has no ImageNet weights"),
])
def test_bad_input_exits_2_with_one_clear_line(args, message, tmp_path, capsys, tiny_synthetic):
    if "--device" in args:
        import torch
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    code, _, err = run_main(capsys, *args, "--data", str(tiny_synthetic), "--out", str(tmp_path),
                            "--no-progress", "--test-per-class", "4")
    assert code == 2, err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_transfer_model_without_weights_warns_at_start_and_in_the_summary(small_synthetic,
                                                                         tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["--model", "zeimarani_cnn", "--data", str(small_synthetic), "--out",
                 str(tmp_path), *SMOKE, "--folds", "0"]) == 0
    assert "warning" not in capsys.readouterr().err  # trained from scratch by design
    code = main(["--model", "googlenet_fujioka", "--data", str(small_synthetic), "--out",
                 str(tmp_path), *SMOKE, "--folds", "0"])
    captured = capsys.readouterr()
    assert code == 0
    assert "no ImageNet weights are available here" in captured.err
    assert "not the published method" in captured.out.split("held-out test set")[1]


def test_unknown_layout_and_too_few_images_exit_2(tmp_path, busi_tree, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(capsys, "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert code == 2 and "unknown layout" in err
    code, _, err = run_main(capsys, "--data", str(busi_tree), "--out", str(tmp_path / "o"))
    assert code == 2 and "is --data the data set this manifest was built from" in err
    for cls in ("benign", "malignant"):
        for i in range(3):
            write_image(tmp_path / "few" / cls / f"{i}.png", seed=i)
    code, _, err = run_main(capsys, "--data", str(tmp_path / "few"), "--out", str(tmp_path / "o"))
    assert code == 2 and "too few usable" in err


@pytest.mark.slow
@pytest.mark.skipif(not BUSI.is_dir(), reason="BUSI not present in ../shared/data")
def test_integration_on_real_busi_uses_committed_split(tmp_path):
    assert main(["--data", str(BUSI), "--out", str(tmp_path), "--profile", "smoke",
                 "--no-progress", "--folds", "0"]) == 0
    (run_dir,) = tmp_path.iterdir()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["data"]["split_source"].endswith("datasets/splits/busi.csv")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["n"] == 100
    assert metrics["test"]["tp"] + metrics["test"]["fn"] == 50


@pytest.mark.slow
def test_finished_run_is_reused_without_training(small_synthetic, smoke_run, tmp_path, capsys):
    run = own_copy(smoke_run, tmp_path)
    assert main(["--data", str(small_synthetic), "--out", str(run.parent), *SMOKE]) == 0
    assert "reusing the finished run" in capsys.readouterr().out


@pytest.mark.slow
def test_config_records_model_size_and_cost(smoke_run):
    stats = json.loads((smoke_run / "config.json").read_text())["model_stats"]
    assert 0.9e6 < stats["params"] < 1.1e6 and stats["at_img_size"] == 64 and stats["gflops"] > 0


@pytest.fixture(scope="module")
def stacked_run(small_synthetic, tmp_path_factory):
    """The smoke run trained with the stacked engine (3 stages at once)."""
    out = tmp_path_factory.mktemp("stacked")
    assert main(["--data", str(small_synthetic), "--out", str(out), *SMOKE,
                 "--concurrent-folds", "3"]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


@pytest.mark.slow
def test_stacked_engine_run_trains_folds_together_in_its_own_run_folder(smoke_run, stacked_run):
    stacked = stacked_run
    assert stacked.name != smoke_run.name
    cfg = json.loads((stacked / "config.json").read_text())
    assert cfg["settings"]["engine"] == "stacked" and cfg["settings"]["concurrent"] == 3
    done = json.loads((stacked / "stages" / "fold_0" / "done.json").read_text())
    assert sorted(done["trained_concurrently_with"]) == ["final", "fold_1"]
    assert not (stacked / "stages" / "fold_0" / "model.safetensors").exists()
    cv = pd.read_csv(stacked / "cv_metrics.csv")
    assert list(cv.status) == ["ok", "ok"] and cv.auc.between(0, 1).all()
    metrics = json.loads((stacked / "metrics.json").read_text())
    assert metrics["test_status"] == "ok" and (stacked / "model.safetensors").is_file()


@pytest.mark.slow
def test_stacked_run_resumes_only_the_unfinished_stage(small_synthetic, stacked_run, tmp_path,
                                                       capsys):
    stacked = own_copy(stacked_run, tmp_path)
    args = ["--data", str(small_synthetic), "--out", str(stacked.parent), *SMOKE,
            "--concurrent-folds", "3"]
    fold0 = (stacked / "stages" / "fold_0" / "predictions.csv").read_bytes()
    (stacked / "stages" / "fold_1" / "done.json").unlink()  # interrupted before fold_1 finished
    (stacked / "metrics.json").unlink()
    assert main(args) == 0
    cfg = json.loads((stacked / "config.json").read_text())
    assert [cfg["timings"]["stages"][s]["status"] for s in ("fold_0", "fold_1", "final")] == [
        "reused", "done", "reused"]
    assert (stacked / "stages" / "fold_0" / "predictions.csv").read_bytes() == fold0


def test_concurrent_folds_must_be_a_positive_integer(tiny_synthetic, tmp_path, capsys):
    code, _, err = run_main(capsys, "--data", str(tiny_synthetic), "--out", str(tmp_path), *TINY,
                              "--concurrent-folds", "0")
    assert code == 2 and "--concurrent-folds" in err


def run_with_stacked_failing(exc: Exception, data, out, capsys, monkeypatch) -> tuple[int, str]:
    """A 2-stages-at-once smoke run whose stacked engine always raises ``exc``."""
    from bench.engine import protocol

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(protocol, "train_stacked", fail)
    code, _, err = run_main(capsys, "--data", str(data), "--out", str(out), *SMOKE,
                            "--concurrent-folds", "2")
    return code, err


@pytest.mark.slow
def test_stacked_engine_failure_is_one_clear_line(small_synthetic, tmp_path, capsys, monkeypatch):
    code, err = run_with_stacked_failing(
        NotImplementedError("no batching rule for aten::strange_op\nmore detail"),
        small_synthetic, tmp_path, capsys, monkeypatch)
    assert code == 2 and "strange_op" in err and "--concurrent-folds 1" in err
    assert "Traceback" not in err and "more detail" not in err


@pytest.mark.slow
def test_stacked_stages_that_run_out_of_memory_are_retried_in_smaller_groups(
        small_synthetic, tmp_path, capsys, monkeypatch):
    from bench.engine import protocol

    real = protocol.train_stacked

    def fits_two(members, *args, **kwargs):
        if len(members) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB\ndetail")
        return real(members, *args, **kwargs)

    monkeypatch.setattr(protocol, "train_stacked", fits_two)
    capsys.readouterr()
    assert main(["--data", str(small_synthetic), "--out", str(tmp_path), *SMOKE,
                 "--concurrent-folds", "3"]) == 0
    assert "3 fus2net stages at once ran out of cpu memory" in capsys.readouterr().out
    (run,) = tmp_path.iterdir()
    together = {s: json.loads((run / "stages" / s / "done.json").read_text())
                .get("trained_concurrently_with", []) for s in ("fold_0", "fold_1", "final")}
    assert together == {"fold_0": ["fold_1"], "fold_1": ["fold_0"], "final": []}
    assert json.loads((run / "metrics.json").read_text())["test_status"] == "ok"


@pytest.mark.slow
def test_a_stage_that_does_not_fit_alone_stops_with_one_clear_line(
        small_synthetic, tmp_path, capsys, monkeypatch):
    code, err = run_with_stacked_failing(
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail"),
        small_synthetic, tmp_path, capsys, monkeypatch)
    assert code == 2 and "does not fit" in err and "--batch-size" in err
    assert "Traceback" not in err and "more detail" not in err


def _strict(text: str) -> dict:
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_run_outputs_are_strict_json(smoke_run):
    for name in ("config.json", "metrics.json"):
        _strict((smoke_run / name).read_text())


@pytest.mark.slow
def test_report_refuses_a_run_whose_predictions_were_truncated(smoke_run, tmp_path, capsys):
    import shutil

    from bench.cli.report import main as report_main
    runs = tmp_path / "runs"
    copy = runs / smoke_run.name
    shutil.copytree(smoke_run, copy)
    preds = pd.read_csv(copy / "predictions.csv")
    preds.iloc[:-5].to_csv(copy / "predictions.csv", index=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        report_main(["--runs", str(runs), "--out", str(tmp_path / "out"), "--n-boot", "50"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"{smoke_run.name}/predictions.csv does not match its checksum" in err
    shutil.copytree(smoke_run, runs / "intact")
    assert report_main(["--runs", str(runs), "--out", str(tmp_path / "out"), "--n-boot", "50",
                        "--skip-invalid-runs"]) == 0
    assert "left out (--skip-invalid-runs)" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("part", ["test", "train"])
def test_manifest_without_test_or_training_rows_is_an_error_before_training(
        part, smoke_run, tmp_path, capsys, small_synthetic):
    manifest = pd.read_csv(smoke_run / "split.csv")
    manifest.loc[manifest.split == part, "split"] = "excluded"
    manifest.to_csv(tmp_path / "m.csv", index=False)
    code, _, err = run_main(capsys, "--data", str(small_synthetic), "--out", str(tmp_path / "o"),
                              "--split", str(tmp_path / "m.csv"), *SMOKE)
    assert code == 2 and f"the {part} set has no images" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.slow
def test_a_run_made_by_other_training_code_is_not_reused_and_the_run_says_why(
        smoke_run, small_synthetic, tmp_path, capsys):
    old = tmp_path / "fus2net-synthetic-0000000000"
    shutil.copytree(smoke_run, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["settings"]["code_version"] = "000000000000"
    (old / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    assert main(["--data", str(small_synthetic), "--out", str(tmp_path), *SMOKE]) == 0
    out = capsys.readouterr().out
    assert "note: fus2net-synthetic-0000000000 is a finished run of this configuration made by " \
           "other training code" in out
    assert (tmp_path / smoke_run.name / "config.json").is_file()


@pytest.mark.slow
def test_runs_with_and_without_cv_share_one_generated_split(small_synthetic, tmp_path):
    """A suite mixes final-fit-only runs with CV runs of the experiments: one manifest for all,
    or the report could not compare them."""
    for folds in ("0", "5", "2"):
        assert main(["--data", str(small_synthetic), "--out", str(tmp_path), *SMOKE,
                     "--folds", folds]) == 0
    splits = {(d / "split.csv").read_bytes() for d in tmp_path.iterdir()}
    assert len(list(tmp_path.iterdir())) == 3 and len(splits) == 1
