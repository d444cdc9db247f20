"""A run's settings as typed values (docs/protocol.md, Held-out test and cross-validation; Training recipe and preprocessing).

* :class:`RunOptions`: what a user asks for (``python -m bench.run`` flags, or a suite/cluster job);
  unresolved (``None`` = the profile's or the model recipe's default).
* :class:`RunSpec`: everything that defines the result, resolved; its hash names the run folder,
  so two runs with one hash are interchangeable.
* :class:`Execution`: how the run is carried out (device, engine width, progress bars), which does
  not change what the result means and is not hashed, except the engine choice (the stacked engine
  draws dropout masks from another stream: its numbers are equally valid but not identical).

``config.json`` stores ``settings`` = the spec's fields plus the execution's, flat.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.provenance import config_hash

# a stage is seeded with 100 × the run's seed + its number (bench/engine/protocol.py, docs/protocol.md
# "Seeds"): below this limit every stage's seed fits the signed 64-bit integers that torch's
# generators, numpy and the run's tables hold (a larger one was recorded as -2**63)
SEED_LIMIT = 10**16
SEED_RULE = "an integer 0 <= seed < 10^16"

# The paper's model (docs/protocol.md, The paper): the default model, the one every comparison is
# made against (Table 3, external validation) and the base of the experiments (Table 1, Fig. 1)
REFERENCE = "fus2net"


def check_seed(value: object, name: str = "seed") -> int:
    """``value`` as a run's seed (an integer, or its text), checked to be :data:`SEED_RULE`; else
    a one-line error naming ``name`` (``seed``: said as ``--seed`` by a command)."""
    seed = value
    if isinstance(value, str):
        try:
            seed = int(value.strip())
        except ValueError:
            seed = None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or \
            not 0 <= int(seed) < SEED_LIMIT:
        raise BenchError(f"`{name}`={value}: a seed is {SEED_RULE}")
    return int(seed)


@dataclass(frozen=True)
class RunOptions:
    """One ``bench.engine.runner`` request, as on the command line."""

    model: str = REFERENCE
    data: Path | None = None
    dataset: str = "auto"
    split: Path | None = None
    profile: str = "auto"
    folds: int | None = None
    epochs: int | None = None
    img_size: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    channels: int = 3
    augment: bool = True
    # paper | ultrasound (bench.data.augment.AUGMENT_POLICIES; docs/protocol.md, "Ultrasound-aware
    # augmentation"); used only while ``augment`` is on
    augment_policy: str = "paper"
    bn_recalibration: bool = True
    l2: float | None = None
    dropout: float | None = None
    pretrained: str = "auto"
    seed: int = 0
    device: str = "auto"
    out: Path | None = None  # where run folders go: always given (the CLI defaults to results/runs)
    test_per_class: int = 50
    skip_bad_images: bool = False
    concurrent_folds: str = "auto"
    save_fold_weights: bool = False
    progress: bool = True
    external: tuple[str, ...] = ()  # data sets to score the final model on (not part of the hash)
    # how each external set is scored: BatchNorm statistics as trained (none), re-estimated on the
    # unlabelled external images (target) or on the training images (source, the control);
    # bench.engine.adaptation; not part of the hash
    adapt_bn: tuple[str, ...] = ("none",)
    threads: int | None = None  # CPU threads (None: bench.engine.threads.resolve_threads; not hashed)
    threads_from: str = "--threads"  # where ``threads`` came from (an executor: --cpus-per-job)
    annotations: str = "keep"  # keep | clean: burnt-in annotations inpainted (bench/data/annotations.py)
    # heldout: CV folds + final fit, scored on the held-out test (the paper's protocol); allcv:
    # every usable image scored once by grouped K-fold (bench/engine/allimage.py)
    evaluation: str = "heldout"
    allcv_folds: int = 5  # K of the all-image evaluation
    command: str = ""  # as typed, for the record (paths made portable)

    def overrides(self) -> dict:
        """The profile and recipe settings this request overrides (recorded and printed)."""
        return {k: v for k, v in asdict(self).items() if k in (
            "folds", "epochs", "img_size", "batch_size", "optimizer", "lr", "l2", "dropout")
            and v is not None}


@dataclass(frozen=True)
class RunSpec:
    """The settings that define a run's result (hashed)."""

    model: str
    model_kwargs: dict
    weights: str  # provenance of the initial weights (random, imagenet:...)
    img_size: int
    batch_size: int
    epochs: int
    folds: int
    train_limit: int | None
    val_limit: int | None
    optimizer: str
    lr: float | None
    augment: bool
    channels: int
    seed: int
    data_kind: str
    manifest_sha256: str
    skip_bad_images: bool
    code_version: str
    data_sha256: str
    bn_recalibration: bool = True  # BatchNorm statistics re-estimated after training
    stacked: bool = False
    # SHA-256 (12 hex) of the source file of a model from a plugin or a local file (models.plugins;
    # the training-code version covers models/ only); empty for the models in models/
    model_code: str = ""
    # "keep", or "clean:<inpainting method>:<detector version>" (docs/protocol.md, "Burnt-in
    # annotations"); only runs on cleaned images carry the key, so other runs keep their hashes
    annotations: str = "keep"
    # the augmentation policy (docs/protocol.md, "Ultrasound-aware augmentation"); only runs with
    # another policy than the paper's carry the key, so other runs keep their hashes
    augment_policy: str = "paper"
    # "heldout" (the paper's protocol), or "allcv:<K>:<fold seed>:<plan version>" for the
    # all-image evaluation (docs/statistics.md, "Every image scored once"); only all-image runs
    # carry the key, so held-out runs keep their hashes
    evaluation: str = "heldout"

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["stacked"]
        if self.stacked:  # only stacked runs carry the key, so reference runs keep their hashes
            out["engine"] = "stacked"
        if not self.model_code:  # only models from elsewhere carry it (same reason)
            del out["model_code"]
        if self.annotations == "keep":
            del out["annotations"]
        if self.augment_policy == "paper":
            del out["augment_policy"]
        if self.evaluation == "heldout":
            del out["evaluation"]
        return out

    def hash(self) -> str:
        return config_hash(self.to_dict())

    @classmethod
    def from_dict(cls, settings: dict) -> RunSpec:
        """The spec a run recorded in ``config.json``'s ``settings``: the ONE reader of a saved
        record back into a :class:`RunSpec` (scoring, explaining, measuring reliance).

        ``settings`` is :meth:`to_dict` with the execution's keys beside it (ignored here). The
        formats every version wrote are read: ``engine: "stacked"`` for the stacked engine
        (``stacked``), and the keys a record leaves out while they have their default
        (``model_code``, ``annotations``; ``bn_recalibration`` before it was recorded). A record
        without a field that has no default (a run of a format older than these) is one
        :class:`BenchError` naming the fields."""
        fields = dataclasses.fields(cls)
        optional = {f.name for f in fields if f.default is not dataclasses.MISSING}
        missing = [f.name for f in fields if f.name not in settings and f.name not in optional]
        if missing:
            raise BenchError(f"settings lack {', '.join(missing)} (a run of an older format); "
                             "rerun that run")
        values = {f.name: settings[f.name] for f in fields
                  if f.name in settings and f.name != "stacked"}
        return cls(**values, stacked=settings.get("engine") == "stacked")


@dataclass(frozen=True)
class RecordedSettings:
    """What readers that do not rebuild the run (the report, the exports) read of a recorded
    ``settings``, typed, with the value each assumes for a key the record lacks (hand-made and
    outside records omit most); a run that is rebuilt reads its :class:`RunSpec`
    (:meth:`RunSpec.from_dict`)."""

    model: str
    seed: int = 0
    data_kind: str | None = None
    img_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    folds: int | None = None
    train_limit: int | None = None
    channels: int = 3
    augment: bool = True
    optimizer: str | None = None
    lr: float | None = None
    model_kwargs: dict = field(default_factory=dict)
    annotations: str = "keep"
    bn_recalibration: bool = True
    skip_bad_images: bool = False
    augment_policy: str = "paper"  # RunSpec.augment_policy (recorded only when not the paper's)
    evaluation: str = "heldout"  # RunSpec.evaluation (recorded only for the all-image runs)
    engine: str = "reference"  # "stacked": K members at once (RunSpec.stacked)
    device: str | None = None  # Execution's: cpu | cuda
    concurrent: int = 1  # Execution's: stages trained at once
    code_version: str | None = None  # the training-code version (None: not recorded)
    manifest_sha256: str | None = None
    data_sha256: str | None = None

    @classmethod
    def from_dict(cls, settings: dict) -> RecordedSettings:
        """``settings`` as recorded (the keys other than these are left out)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names})


def cleaned(annotations: object) -> bool:
    """A run's ``annotations`` setting (:attr:`RunSpec.annotations`) says it was trained and tested
    on images whose burnt-in annotations were inpainted (docs/protocol.md, "Burnt-in annotations")."""
    return str(annotations or "keep").startswith("clean")


@dataclass(frozen=True)
class Execution:
    """How a run is carried out; not part of its hash."""

    device: str  # cpu | cuda (resolved; no default)
    channels_last: bool = False
    save_fold_weights: bool = False
    concurrent: int = 1  # stages trained at once (> 1: the stacked engine)
    progress: bool = field(default=True, compare=False)

    def to_dict(self) -> dict:
        return {"device": self.device, "channels_last": self.channels_last,
                "save_fold_weights": self.save_fold_weights, "concurrent": self.concurrent}
