"""``bench.engine.spec``: what names a run folder (the hashed :class:`RunSpec`) and what does not
(:class:`Execution`, the unresolved :class:`RunOptions`) (docs/protocol.md, "Runs and profiles")."""

import dataclasses
import json
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.core.paths import RESULTS_DIR
from bench.engine.spec import Execution, RecordedSettings, RunOptions, RunSpec

SPEC = RunSpec(model="fus2net", model_kwargs={"in_chans": 3, "pretrained": "none"},
               weights="random", img_size=64, batch_size=16, epochs=20, folds=0,
               train_limit=520, val_limit=None, optimizer="adam", lr=0.001, augment=True,
               channels=3, seed=0, data_kind="busi", manifest_sha256="ab" * 32,
               skip_bad_images=False, code_version="0123456789ab", data_sha256="cd" * 32)
COMMITTED = sorted(RESULTS_DIR.glob("**/*runs/*/config.json"))  # runs/, breast-runs/


@pytest.mark.skipif(not COMMITTED, reason="no committed run folders in results/")
def test_every_committed_run_config_reads_back_to_the_spec_its_folder_is_named_by():
    """The hash is stable and ``from_dict`` reads every committed format: a change to what is
    hashed, or how, or to the reader would orphan every finished run."""
    for path in COMMITTED:
        config = json.loads(path.read_text())
        spec = RunSpec.from_dict(config["settings"])
        assert path.parent.name.endswith("-" + spec.hash()), path
        assert spec.hash() == config["config_hash"], path


@pytest.mark.parametrize("spec", [
    SPEC,
    dataclasses.replace(SPEC, stacked=True, model_code="a1b2c3d4e5f6",
                        annotations="clean:telea:1", bn_recalibration=False, val_limit=64,
                        lr=None, model_kwargs={"in_chans": 1, "l2": 0.0}),
])
def test_a_spec_saved_as_config_settings_reads_back_equal_in_every_field(spec):
    # config.json's settings: the spec's dict with the execution's keys beside it (runner.start_record)
    saved = json.loads(json.dumps({**spec.to_dict(), **Execution(device="cpu").to_dict()}))
    back = RunSpec.from_dict(saved)
    for f in dataclasses.fields(RunSpec):
        assert getattr(back, f.name) == getattr(spec, f.name), f.name
    assert back == spec and back.hash() == spec.hash()


def test_older_records_read_with_the_defaults_of_the_keys_they_lack():
    saved = SPEC.to_dict()
    del saved["bn_recalibration"]  # recorded by every run since; earlier ones re-estimated too
    assert RunSpec.from_dict(saved) == SPEC
    assert RunSpec.from_dict({**saved, "engine": "stacked"}).stacked  # the engine's key
    assert not RunSpec.from_dict({**saved, "engine": "reference"}).stacked


def test_a_record_without_a_required_field_is_one_line_naming_it():
    saved = SPEC.to_dict()
    del saved["data_sha256"], saved["manifest_sha256"]
    with pytest.raises(BenchError, match="settings lack manifest_sha256, data_sha256"):
        RunSpec.from_dict(saved)


def test_recorded_settings_give_readers_typed_values_and_their_defaults():
    full = RecordedSettings.from_dict({**SPEC.to_dict(), "engine": "stacked", "device": "cpu",
                                       "concurrent": 3, "channels_last": True})
    assert (full.seed, full.img_size, full.engine, full.concurrent) == (0, 64, "stacked", 3)
    bare = RecordedSettings.from_dict({"model": "x"})  # hand-made and outside records
    assert (bare.seed, bare.channels, bare.augment, bare.annotations, bare.engine) == \
        (0, 3, True, "keep", "reference")
    assert bare.data_kind is None and bare.code_version is None and bare.model_kwargs == {}


def test_the_hash_is_ten_hex_digits_and_the_same_for_equal_specs():
    again = dataclasses.replace(SPEC, model_kwargs={"pretrained": "none", "in_chans": 3})
    assert SPEC.hash() == again.hash()  # key order of the kwargs does not matter
    assert len(SPEC.hash()) == 10 and int(SPEC.hash(), 16) >= 0


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"epochs": 21}, {"img_size": 96}, {"lr": 0.01}, {"augment": False},
    {"train_limit": None}, {"manifest_sha256": "ef" * 32}, {"data_sha256": "00" * 32},
    {"code_version": "ba9876543210"}, {"weights": "imagenet:x"}, {"bn_recalibration": False},
    {"model_kwargs": {"in_chans": 3, "pretrained": "none", "l2": 0.1}},
])
def test_every_setting_that_defines_the_result_changes_the_hash(change):
    assert dataclasses.replace(SPEC, **change).hash() != SPEC.hash()


def test_optional_keys_appear_only_when_set_so_older_runs_keep_their_hashes():
    plain = SPEC.to_dict()
    assert not {"stacked", "engine", "model_code", "annotations"} & set(plain)
    stacked = dataclasses.replace(SPEC, stacked=True)
    assert stacked.to_dict()["engine"] == "stacked" and stacked.hash() != SPEC.hash()
    plugin = dataclasses.replace(SPEC, model_code="a1b2c3d4e5f6")
    assert plugin.to_dict()["model_code"] == "a1b2c3d4e5f6" and plugin.hash() != SPEC.hash()
    cleaned = dataclasses.replace(SPEC, annotations="clean:telea:1")
    assert cleaned.to_dict()["annotations"] == "clean:telea:1" and cleaned.hash() != SPEC.hash()


def test_how_a_run_is_carried_out_is_recorded_but_not_hashed():
    ex = Execution(device="cuda", channels_last=True, save_fold_weights=True, concurrent=3,
                   progress=False)
    assert ex.to_dict() == {"device": "cuda", "channels_last": True, "save_fold_weights": True,
                            "concurrent": 3}
    assert not set(ex.to_dict()) & set(SPEC.to_dict())  # settings = spec + execution, flat
    # progress bars change nothing
    assert Execution(device="cpu", progress=False) == Execution(device="cpu", progress=True)


def test_options_are_frozen_and_list_only_the_overrides_given():
    options = RunOptions(data=Path("d"), epochs=3, lr=0.0, seed=4)
    assert options.overrides() == {"epochs": 3, "lr": 0.0}  # 0.0 is given, None is not
    assert RunOptions().overrides() == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.epochs = 5  # type: ignore[misc]
    changed = dataclasses.replace(options, folds=2, img_size=96)
    assert changed.overrides() == {"folds": 2, "epochs": 3, "img_size": 96, "lr": 0.0}
    assert options.overrides() == {"epochs": 3, "lr": 0.0}


@pytest.mark.parametrize("profile, expected", [
    # (img_size, epochs, folds, train_limit, val_limit, batch_size)
    ("paper", (299, 53, 10, None, None, 16)),  # the model's input size and recipe epochs
    ("cpu", (64, 20, 0, 520, None, 16)),
    ("smoke", (64, 1, 2, 16, 16, 16)),
])
def test_options_resolve_to_the_profile_s_settings_and_the_model_recipe(
        profile, expected, tiny_synthetic, tmp_path):
    from bench.engine.runner import prepare

    options = RunOptions(data=tiny_synthetic, profile=profile, test_per_class=4, device="cpu",
                         out=tmp_path, progress=False)
    spec = prepare(options).spec
    assert (spec.img_size, spec.epochs, spec.folds, spec.train_limit, spec.val_limit,
            spec.batch_size) == expected
    assert (spec.model, spec.optimizer, spec.lr, spec.weights) == ("fus2net", "adam", None,
                                                                   "random")
    assert spec.data_kind == "synthetic" and len(spec.manifest_sha256) == 64


def test_flags_override_the_profile_and_the_recipe_and_change_the_hash(tiny_synthetic,
                                                                       tmp_path):
    from bench.engine.runner import prepare

    base = RunOptions(data=tiny_synthetic, profile="smoke", test_per_class=4, device="cpu",
                      out=tmp_path, progress=False)
    plain = prepare(base).spec
    given = prepare(dataclasses.replace(base, epochs=3, img_size=96, optimizer="sgd", lr=0.01,
                                        folds=0, seed=2)).spec
    assert (given.epochs, given.img_size, given.optimizer, given.lr, given.folds, given.seed) == \
        (3, 96, "sgd", 0.01, 0, 2)
    assert given.train_limit == plain.train_limit == 16  # what was not given stays the profile's
    assert given.hash() != plain.hash()
    assert prepare(dataclasses.replace(base, progress=True, threads=1)).spec == plain
