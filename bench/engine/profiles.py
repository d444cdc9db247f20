"""Run profiles: the paper's protocol and reduced settings for CPUs and tests (docs/protocol.md,
"The paper" and "Runs and profiles").

Explicit command-line flags override any profile field; both are recorded in ``config.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from bench.core.errors import BenchError


@dataclass(frozen=True)
class Profile:
    name: str
    img_size: int | None  # None: the model's own input size (299 for Fus2Net); never below
    # the model's ``min_input_size`` (InceptionV3 needs 75 px)
    batch_size: int
    epochs: int | None  # None: the model recipe's epochs (53 for Fus2Net)
    folds: int  # 0: no cross-validation, only the final fit
    train_limit: int | None = None  # cap on training images per fit (stratified); reduced profiles
    val_limit: int | None = None  # cap on CV validation images per fold (never the test set)
    description: str = ""
    seeds: tuple[int, ...] = (0, 1, 2)  # what bench.jobs.suite runs unless --seeds says otherwise
    # CV folds for the Fus2Net experiment runs when ``folds`` is 0: settings are compared on CV
    # folds only (docs/protocol.md, Held-out test and cross-validation), never on the test set
    experiment_folds: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "paper": Profile("paper", None, 16, None, 10,
                     description="the paper's recipe exactly: model input size, batch 16, 53 epochs, "
                                 "10-fold CV + final fit"),
    "cpu": Profile("cpu", 64, 16, 20, 0, train_limit=520, seeds=(0,), experiment_folds=2,
                   description="CPU-sized, trained to the plateau measured on CV folds "
                               "(python -m bench.sweep, README): 64 px (75 for InceptionV3 "
                               "models), batch 16, 20 epochs, at most 520 training images per "
                               "fit (all of BUSI's), final fit only (2-fold CV for the Fus2Net "
                               "experiments), 1 seed unless --seeds — reduced resolution and "
                               "epochs, not the paper protocol"),
    "smoke": Profile("smoke", 64, 16, 1, 2, train_limit=16, val_limit=16, seeds=(0,),
                     description="seconds, for tests: 64 px (75 for InceptionV3 models), 1 epoch, "
                                 "2 folds, 16 training and 16 validation images per fit"),
}


def resolve_profile(name: str, device_type: str, **overrides) -> Profile:
    """Pick a profile (``auto``: paper on CUDA, cpu on CPU) and apply non-None overrides."""
    if name == "auto":
        name = "paper" if device_type == "cuda" else "cpu"
    if name not in PROFILES:
        raise BenchError(f"`profile`={name!r} is not one of auto, {', '.join(PROFILES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(PROFILES[name], **changes)
