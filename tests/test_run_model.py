"""A run's model built again by every reader of the run (bench.explain, bench.reliance, bench.score,
the suite's add-on steps) from where ``config.json`` says it came from: a local file, a module or
an installed plugin (docs/protocol.md, "Models from other packages")."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from bench.cli.explain import main as explain_main
from bench.core.errors import BenchError
from bench.engine.runfolder import load_run
from bench.engine.runner import outside_model_record, run_model
from bench.evaluation.reliance import reliance_run
from bench.evaluation.score import score_run
from models import list_models
from models.plugins import forget_outside_models, model_origin, resolve_model
from tests.helpers import SMOKE, call_main, run_main
from tests.test_plugins import TINY


@pytest.fixture()
def local_model(tmp_path):
    """A tiny model in a local file, registered as ``--model FILE:NAME`` registers it, and the
    ``config.json`` a run of it records; every outside model is forgotten afterwards."""
    forget_outside_models()
    path = tmp_path / "my_plugin.py"
    path.write_text(TINY.format(model="run_model_cnn", origin="local file"))
    name = resolve_model(f"{path}:run_model_cnn")
    config = {"settings": {"model": name}, **outside_model_record(name)}
    forget_outside_models()  # a later process: nothing registered but the built-in models
    yield path, config
    forget_outside_models()


def test_a_run_s_local_file_model_is_registered_again_from_its_record(local_model):
    path, config = local_model
    assert config["model_origin"]["kind"] == "file"
    assert "run_model_cnn" not in list_models()
    assert run_model(config, "run-1") == "run_model_cnn"
    assert model_origin("run_model_cnn").sha256 == config["model_origin"]["sha256"]
    assert run_model(config, "run-1") == "run_model_cnn"  # once registered, again is a no-op


def test_a_moved_or_changed_model_file_is_one_line_naming_the_run_and_the_file(local_model):
    path, config = local_model
    moved = path.with_name("elsewhere.py")
    path.rename(moved)
    with pytest.raises(BenchError) as gone:
        run_model(config, "run-1")
    said = str(gone.value)
    assert said == (f"run-1: its model run_model_cnn came from file {path.resolve()}, which is "
                    "not there any more; put the file back where the run found it")
    assert "run_model_cnn" not in list_models()
    moved.write_text(moved.read_text().replace("nn.Linear(8, num_classes)",
                                               "nn.Linear(8, num_classes, bias=False)"))
    moved.rename(path)
    with pytest.raises(BenchError, match=r"^run-1: .*my_plugin.py: it changed since the run "
                                         r"\(SHA-256 "):
        run_model(config, "run-1")
    assert "run_model_cnn" not in list_models()  # the changed file was never imported


def test_a_module_or_plugin_that_is_not_there_is_one_line(local_model):
    _, config = local_model
    module = {**config, "model_origin": {**config["model_origin"], "kind": "module",
                                         "where": "no_such_package.models"}}
    with pytest.raises(BenchError, match=r"^run-2: its model run_model_cnn came from module "
                                         r"no_such_package.models: importing module"):
        run_model(module, "run-2")
    plugin = {**config, "model_origin": {**config["model_origin"], "kind": "plugin",
                                         "where": "tinyplug 0.1 (tinyplug = tinyplug)"}}
    with pytest.raises(BenchError, match="not installed here; pip install tinyplug==0.1"):
        run_model(plugin, "run-3")


def test_a_built_in_model_needs_no_record_and_an_unknown_one_is_one_line():
    assert run_model({"settings": {"model": "fus2net"}}, "run-4") == "fus2net"
    with pytest.raises(BenchError, match="unknown model 'no_such_net'"):
        run_model({"settings": {"model": "no_such_net"}}, "run-4")


@pytest.mark.slow
def test_a_run_of_a_local_file_model_is_explained_and_a_moved_file_is_one_line(
        small_synthetic, tmp_path, capsys):
    forget_outside_models()
    plugin = tmp_path / "tiny_plugin.py"
    plugin.write_text(TINY.format(model="explained_cnn", origin="local file"))
    runs = tmp_path / "runs"
    try:
        code, _, err = run_main(capsys, "--model", f"{plugin}:explained_cnn", "--data",
                                str(small_synthetic), "--out", str(runs), *SMOKE, "--folds", "0")
        assert code == 0, err
        (run_dir,) = runs.iterdir()
        forget_outside_models()  # as a new process would start: the model is not registered
        code, out, err = call_main(capsys, explain_main, "--runs", str(runs))
        assert code == 0, err
        cam = pd.read_csv(run_dir / "explain" / "gradcam" / "cam_metrics.csv")
        assert (cam.set == "test").sum() == 40
        forget_outside_models()
        shutil.move(plugin, tmp_path / "moved.py")
        shutil.rmtree(run_dir / "explain")
        code, out, err = call_main(capsys, explain_main, "--runs", str(runs))
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert f"{run_dir.name}: its model explained_cnn came from file" in err
        assert f"{plugin.resolve()}, which is not there any more" in err
        # bench.score and bench.reliance read the same record, before any scoring
        for read in (lambda: score_run(run_dir, ["synthetic:B"], "cpu"),
                     lambda: reliance_run(load_run(run_dir), "cpu")):
            with pytest.raises(BenchError, match=f"{run_dir.name}: .* is not there any more"):
                read()
        shutil.move(tmp_path / "moved.py", plugin)  # back where the run found it
        assert reliance_run(load_run(run_dir), "cpu")["model"] == "explained_cnn"
        record = json.loads((run_dir / "config.json").read_text())["model_origin"]
        assert not record["where"].startswith("/")  # portable: relative to the project
    finally:
        forget_outside_models()


def test_the_report_says_which_runs_the_grad_cam_section_leaves_out_and_why(tmp_path):
    from bench.reporting.runs import load_runs
    from bench.reporting.sections import explanations
    from bench.reporting.sections.context import ReportContext
    from tests.helpers import write_fixture_run

    runs_dir = tmp_path / "runs"
    explained = write_fixture_run(runs_dir, "fus2net", 0.5, 1)
    cam = explained / "explain" / "gradcam"
    cam.mkdir(parents=True)
    pd.DataFrame({"id": ["img050"], "label": [1], "prob_malignant": [0.9], "set": ["test"],
                  "status": ["measured"]}).to_csv(cam / "cam_metrics.csv", index=False)
    no_weights = write_fixture_run(runs_dir, "resnet50", 0.5, 2)
    waiting = write_fixture_run(runs_dir, "zeimarani_cnn", 0.5, 3)
    (waiting / "model.safetensors").write_bytes(b"")
    lines = explanations.left_out(load_runs(runs_dir, skip_invalid=True))
    assert len(lines) == 2 and not any(explained.name in line for line in lines)
    assert f"{no_weights.name} (resnet50): its folder has no model.safetensors" in lines[0]
    assert f"{waiting.name} (zeimarani_cnn): not explained: python -m bench.explain" in lines[1]
    ctx = ReportContext(load_runs(runs_dir, skip_invalid=True), tmp_path / "report")
    ctx.tables["explanations"] = pd.DataFrame({"model": [], "images": [], "n_measured": [],
                                               "n_measured_some": []})
    (ctx.tdir).mkdir(parents=True)
    (ctx.tdir / "explanations_all.md").write_text("| table |\n")
    text = "\n".join(explanations.readme(ctx))
    assert all(line in text for line in lines)
