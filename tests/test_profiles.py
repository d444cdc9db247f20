"""``bench.engine.profiles``: the paper's protocol and the reduced CPU and test settings, and how a
request picks one and overrides it (docs/protocol.md, "Runs and profiles")."""

import dataclasses

import pytest

from bench.core.errors import BenchError
from bench.engine.profiles import PROFILES, Profile, resolve_profile


def test_the_paper_profile_is_the_published_recipe():
    paper = PROFILES["paper"]
    # the model's own input size and the recipe's epochs, batch 16, 10-fold CV and a final fit,
    # every image (no caps)
    assert (paper.img_size, paper.epochs, paper.batch_size, paper.folds) == (None, None, 16, 10)
    assert (paper.train_limit, paper.val_limit) == (None, None)


def test_the_reduced_profiles_say_what_they_reduce():
    cpu, smoke = PROFILES["cpu"], PROFILES["smoke"]
    assert (cpu.img_size, cpu.epochs, cpu.folds, cpu.train_limit) == (64, 20, 0, 520)
    assert cpu.experiment_folds == 2 and cpu.seeds == (0,)  # experiments compared on CV folds
    assert (smoke.img_size, smoke.epochs, smoke.folds) == (64, 1, 2)
    assert (smoke.train_limit, smoke.val_limit) == (16, 16)
    for profile in PROFILES.values():
        assert profile.description and profile.batch_size > 0
        assert profile.folds == 0 or profile.folds >= 2  # one fold is no cross-validation
        assert profile.to_dict()["name"] == profile.name


def test_auto_is_the_paper_on_a_gpu_and_the_cpu_profile_on_a_cpu():
    assert resolve_profile("auto", "cuda") == PROFILES["paper"]
    assert resolve_profile("auto", "cpu") == PROFILES["cpu"]
    assert resolve_profile("smoke", "cuda") == PROFILES["smoke"]  # a named one wins everywhere


def test_given_overrides_replace_profile_fields_and_none_keeps_them():
    got = resolve_profile("cpu", "cpu", epochs=3, folds=None, img_size=96, batch_size=None)
    assert isinstance(got, Profile)
    assert (got.epochs, got.img_size, got.folds, got.batch_size) == (3, 96, 0, 16)
    assert got.train_limit == 520 and got.name == "cpu"
    assert PROFILES["cpu"].epochs == 20  # the table itself is never changed
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.epochs = 4  # type: ignore[misc]


def test_an_unknown_profile_is_refused_with_the_choices():
    with pytest.raises(BenchError, match="profile") as exc:
        resolve_profile("fast", "cpu")
    for name in ("auto", "paper", "cpu", "smoke"):
        assert name in str(exc.value)
