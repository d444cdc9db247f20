"""Models from other packages (entry points ``fus2bench.models``) and from local files."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli.list import main as list_main
from models import create_model, list_models
from models.plugins import forget_outside_models, model_origin, resolve_model
from tests.helpers import SMOKE, call_main, run_main
from tests.helpers import TINY as TINY_OPTIONS

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1"

[project.entry-points."fus2bench.models"]
{name} = "{name}"

[tool.setuptools]
packages = ["{name}"]
"""

TINY = """\
from torch import nn

from models import ModelConfig, register_model


@register_model(ModelConfig(name="{model}", family="tiny CNN ({origin})", input_size=64,
                            cam_layer="0"))
def {model}(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.0,
            pretrained: str = "none") -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_chans, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(8, num_classes))
"""

# registers a model, then fails: the registration must be taken back
BROKEN = TINY.format(model="half_registered", origin="broken plugin") + \
    "\nimport a_module_that_is_not_installed  # noqa: E402,F401\n"


def _pip(*args: str, env: dict | None = None) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def installed_plugins(tmp_path_factory):
    """Two plugin packages built and pip-installed (editable) into a temporary folder that this
    process then uses as a site directory: ``tinyplug`` (model ``tiny_plug``) and ``badplug``,
    whose import fails. Uninstalled afterwards, with every trace removed from this process."""
    root = tmp_path_factory.mktemp("plugins")
    for name, code in (("tinyplug", TINY.format(model="tiny_plug", origin="plugin")),
                       ("badplug", BROKEN)):
        (root / name / name).mkdir(parents=True)
        (root / name / name / "__init__.py").write_text(code)
        (root / name / "pyproject.toml").write_text(PYPROJECT.format(name=name))
    target = root / "site"
    built = importlib.util.find_spec("setuptools") is not None
    if built:  # the way a user installs a plugin
        _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-q", "--target",
             str(target), "-e", str(root / "tinyplug"), "-e", str(root / "badplug"))
    else:  # no build backend here (a bare Python 3.12 venv): what the install would leave
        for name in ("tinyplug", "badplug"):
            info = target / f"{name}-0.1.dist-info"
            info.mkdir(parents=True)
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
            (info / "entry_points.txt").write_text(f"[fus2bench.models]\n{name} = {name}\n")
            (target / f"{name}.pth").write_text(f"{root / name}\n")
    forget_outside_models()
    site.addsitedir(str(target))  # runs the editable installs' .pth files, as site-packages would
    yield root
    if built:
        _pip("uninstall", "-y", "-q", "tinyplug", "badplug",
             env={**os.environ, "PYTHONPATH": str(target)})
    shutil.rmtree(target, ignore_errors=True)
    sys.path[:] = [p for p in sys.path if p not in (str(target), str(root / "tinyplug"),
                                                     str(root / "badplug"))]
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not str(getattr(f, "__module__", "")).startswith("__editable__")]
    for name in [m for m in sys.modules if m.startswith("__editable__")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    forget_outside_models()
    assert "tiny_plug" not in list_models()  # nothing leaks into other tests


def test_a_local_file_or_module_registers_its_model(tmp_path, monkeypatch, capsys):
    local = tmp_path / "cnn_file.py"
    local.write_text(TINY.format(model="cnn_from_file", origin="local file"))
    (tmp_path / "mymods").mkdir()
    (tmp_path / "mymods" / "__init__.py").write_text("")
    (tmp_path / "mymods" / "cnn.py").write_text(TINY.format(model="cnn_from_module", origin="module"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code, out, err = call_main(capsys, list_main, "--models",
                                   f"{local}:cnn_from_file,mymods.cnn:cnn_from_module")
        assert code == 0, err
        assert f"file {local}" in out and "module mymods.cnn" in out
        first = model_origin("cnn_from_file").sha256
        # a changed file is a changed model: its run hash changes with it (bench.engine.runner)
        forget_outside_models()
        local.write_text(local.read_text().replace("8, 3, stride=2", "4, 3, stride=2")
                         .replace("nn.BatchNorm2d(8)", "nn.BatchNorm2d(4)").replace("(8, num", "(4, num"))
        assert resolve_model(f"{local}:cnn_from_file") == "cnn_from_file"
        assert model_origin("cnn_from_file").sha256 != first
    finally:
        forget_outside_models()
    assert "cnn_from_file" not in list_models() and "cnn_from_module" not in list_models()


def test_a_bad_local_model_is_one_line_with_exit_2(tmp_path, capsys):
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('no GPU found\\nsecond line')\n")
    other = tmp_path / "other.py"
    other.write_text(TINY.format(model="some_cnn", origin="local file"))
    try:
        for spec, message in (
                (f"{tmp_path / 'nothere.py'}:x", "nothere.py does not exist"),
                (f"{raising}:x", "failed (RuntimeError: no GPU found); fix the file"),
                (f"{other}:wanted", f"{other} registers some_cnn; not wanted (decorate its "
                                    "factory with @register_model(ModelConfig(name='wanted', ...)))"),
                ("no_such_module_xyz:x", "importing module 'no_such_module_xyz' failed"),
                (f"{tmp_path}/:", "give NAME, path/to/file.py:NAME")):
            code, _, err = run_main(capsys, "--model", spec)
            assert code == 2 and err.count("\n") == 1 and message in err, (spec, err)
    finally:
        forget_outside_models()


def test_the_readme_example_model_registers_and_builds(tmp_path, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("# mybusnet/models.py\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 15
    (tmp_path / "mybusnet_models.py").write_text(code)
    try:
        done, out, err = call_main(capsys, list_main, "--models",
                                   f"{tmp_path / 'mybusnet_models.py'}:mybusnet")
        assert done == 0, err
        row = next(line for line in out.splitlines() if line.startswith("| mybusnet |"))
        assert "| 0.02 |" in row and "| 224 px |" in row  # it builds and runs a 224 px image
        model = create_model("mybusnet", in_chans=1, pretrained="none")
        assert model.get_submodule("5").__class__.__name__ == "ReLU"  # its cam_layer exists
    finally:
        forget_outside_models()


def test_a_file_that_does_not_register_the_name_never_trains_a_built_in_model_instead(
        tmp_path, capsys):
    """``other.py:zeimarani_cnn``, where other.py registers other names, once trained the
    built-in zeimarani_cnn: a file or module must register the name itself, whatever else is
    registered under it."""
    other = tmp_path / "other.py"
    other.write_text(TINY.format(model="some_cnn", origin="local file") +
                     TINY.format(model="more_cnn", origin="local file").split("\n\n\n", 1)[1])
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    try:
        for spec, line in (
                (f"{other}:zeimarani_cnn", f"{other} registers more_cnn, some_cnn; not "
                 "zeimarani_cnn (zeimarani_cnn is a built-in model: --model zeimarani_cnn trains "
                 "it; a model of yours needs a name of its own)"),
                (f"{empty}:fus2net", f"{empty} registers no model; not fus2net"),
                ("models.fus2net:zeimarani_cnn", "models.fus2net registers fus2net; not "
                 "zeimarani_cnn")):
            code, _, err = run_main(capsys, "--model", spec, "--out", str(tmp_path / "o"))
            lines = err.strip().splitlines()
            assert code == 2 and len(lines) == 1 and line in lines[0], (spec, err)
        # a module that does register the name (here a built-in one) is what it says
        assert resolve_model("models.fus2net:fus2net") == "fus2net"
        assert resolve_model(f"{other}:more_cnn") == "more_cnn"
    finally:
        forget_outside_models()
    assert "more_cnn" not in list_models()


def test_a_file_or_plugin_never_replaces_a_registered_model_and_says_whose_name_it_is(
        tmp_path, capsys):
    shadow = tmp_path / "shadow.py"
    shadow.write_text(TINY.format(model="zeimarani_cnn", origin="local file"))
    first = tmp_path / "first.py"
    first.write_text(TINY.format(model="mine_cnn", origin="local file"))
    second = tmp_path / "second.py"
    second.write_text(TINY.format(model="mine_cnn", origin="another file"))
    try:
        code, _, err = run_main(capsys, "--model", f"{shadow}:zeimarani_cnn")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1
        assert "it registers 'zeimarani_cnn', a name a built-in model (models/) already has; a " \
            "model is never replaced — give yours another name" in lines[0]
        assert create_model("zeimarani_cnn").__class__.__name__ != "Sequential"  # unchanged
        assert resolve_model(f"{first}:mine_cnn") == "mine_cnn"
        code, _, err = run_main(capsys, "--model", f"{second}:mine_cnn")
        assert code == 2 and f"a name the model from file {first} already has" in err
        assert model_origin("mine_cnn").where == str(first)
    finally:
        forget_outside_models()


# a model whose forward pass returns something other than two logits per image
OUTPUT = """\
import torch
from torch import nn

from models import ModelConfig, register_model


class Net(nn.Module):
    def __init__(self, in_chans):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(4, {outputs}))

    def forward(self, x):
        y = self.body(x)
        return {returns}


@register_model(ModelConfig(name="{model}", family="tiny CNN", input_size=64, cam_layer="body.0"))
def {model}(in_chans: int = 3, num_classes: int = 2, dropout: float = 0.0,
            pretrained: str = "none") -> nn.Module:
    return Net(in_chans)
"""


@pytest.mark.slow
@pytest.mark.parametrize("model, outputs, returns, message", [
    ("three_logits", 3, "y", "its output for 2 images of 64 px has shape (2, 3), not a tensor of "
     "shape (N, 2): two finite logits per image, benign then malignant"),
    ("one_logit", 1, "y", "its output for 2 images of 64 px has shape (2, 1), not a tensor of shape (N, 2): two finite logits per "
     "image, benign then malignant; for one logit z per image return torch.cat([torch.zeros_like"
     "(z), z], dim=1), whose softmax gives P(malignant) = sigmoid(z)"),
    ("spatial_logits", 2, "y[:, :, None, None]", "its output for 2 images of 64 px has shape "
     "(2, 2, 1, 1), not a tensor of shape (N, 2): two finite logits per image, benign then malignant; flatten it to (N, 2)"),
    ("tuple_output", 2, "y, y", "its forward pass returns a tuple of 2, not a tensor of shape "
     "(N, 2): two finite logits per image, benign then malignant; return the logits alone"),
    ("nan_output", 2, "y * float('nan')", "its output for 2 images of 64 px is not finite (NaN or "
     "infinite values)"),
])
def test_a_model_whose_output_is_not_two_logits_is_refused_before_training(
        model, outputs, returns, message, tiny_synthetic, tmp_path, capsys):
    """Three logits once trained and were reported (P(malignant) a softmax over three outputs);
    one logit, (N, 2, 1, 1) and a tuple crashed inside the engine. One forward pass of 2 images
    before anything is written refuses each in one line naming the model, the shape and what is
    expected."""
    local = tmp_path / "net.py"
    local.write_text(OUTPUT.format(model=model, outputs=outputs, returns=returns))
    try:
        code, _, err = run_main(capsys, "--model", f"{local}:{model}", "--data",
                                str(tiny_synthetic), "--out", str(tmp_path / "runs"), *TINY_OPTIONS)
    finally:
        forget_outside_models()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: --model {model}: {message}"), lines[0]
    assert not list((tmp_path / "runs").glob("*/config.json"))  # nothing trained or written


def test_two_logits_pass_the_output_check_in_train_mode_too():
    """The check leaves the model as it found it (train or eval mode)."""
    from bench.engine.runner import check_output

    net = create_model("zeimarani_cnn", pretrained="none").train()
    check_output(net, "zeimarani_cnn", 64, 3)
    assert net.training
    check_output(net.eval(), "zeimarani_cnn", 64, 3)
    assert not net.training


def test_in_the_suite_a_model_with_three_logits_fails_alone_before_training(tiny_synthetic,
                                                                            tmp_path, caplog):
    """The suite's jobs go through the same check (bench.engine.runner.prepare): the job of the
    bad model fails with its one line, nothing of it is written, and the other jobs go on."""
    from bench.engine.spec import RunOptions
    from bench.jobs.plan import Job, JobStatus
    from bench.jobs.suite import SuiteObserver, run_inline

    local = tmp_path / "net.py"
    local.write_text(OUTPUT.format(model="three_logits", outputs=3, returns="y"))
    try:
        name = resolve_model(f"{local}:three_logits")
        options = RunOptions(model=name, data=tiny_synthetic, profile="smoke", test_per_class=4,
                             out=tmp_path / "runs", progress=False)
        (outcome,) = run_inline([Job(f"{name} seed 0", options)], SuiteObserver())
    finally:
        forget_outside_models()
    assert outcome.status != JobStatus.OK and outcome.run_dir is None
    err = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert err == ["error: `model`=three_logits: its output for 2 images of 64 px has shape (2, 3), "
                   "not a tensor of shape (N, 2): two finite logits per image, benign then "
                   "malignant"]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


# the installed plugins (a module-scoped fixture) stay installed until the module ends: the tests
# that use them come last
@pytest.mark.slow
def test_an_installed_plugin_is_listed_and_a_broken_one_is_one_line(installed_plugins, capsys):
    forget_outside_models()  # scan the entry points again, in this test
    code, out, err = call_main(capsys, list_main, "--models", "tiny_plug,fus2net")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("| tiny_plug |"))
    assert "plugin tinyplug 0.1" in row and "tiny CNN (plugin)" in row
    assert "| fus2net |" in out
    assert err.count("\n") == 1 and "model plugin package 'badplug'" in err
    assert "ModuleNotFoundError" in err and "pip uninstall badplug" in err
    names = list_models()
    assert "tiny_plug" in names and "half_registered" not in names  # taken back
    assert {"fus2net", "zeimarani_cnn", "resnet50"} <= set(names)  # the others are unaffected
    assert create_model("tiny_plug").model_name == "tiny_plug"
    code, _, err = run_main(capsys, "--model", "half_registered")
    assert code == 2 and err.count("\n") == 1
    assert "unknown model 'half_registered'" in err and "'badplug' failed to load" in err


@pytest.mark.slow
def test_a_plugin_model_and_a_local_file_model_train_in_smoke_runs(installed_plugins, small_synthetic,
                                                                    tmp_path, capsys):
    local = tmp_path / "my_models.py"
    local.write_text(TINY.format(model="my_file_cnn", origin="local file"))
    for spec, kind in (("tiny_plug", "plugin"), (f"{local}:my_file_cnn", "file")):
        code, out, err = run_main(capsys, "--model", spec, "--data", str(small_synthetic), "--out",
                                  str(tmp_path / "runs"), *SMOKE)
        assert code == 0, err
        name = spec.rsplit(":", 1)[-1]
        config = json.loads(next((tmp_path / "runs").glob(f"{name}-*/config.json")).read_text())
        assert config["status"] == "complete" and config["model_origin"]["kind"] == kind
        origin = model_origin(name)
        assert config["settings"]["model_code"] == origin.sha256[:12]
        assert not Path(config["model_origin"]["source"]).is_absolute()  # portable record
