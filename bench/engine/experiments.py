"""The paper's experiments (Table 1, Fig. 1, Table 2; docs/protocol.md, The paper) as run configurations, shared by ``run_all.sh`` and the report.

A run belongs to an experiment by its settings, not by a tag: the report derives each Fus2Net run's
*variant* (channels, optimizer, augmentation, L2, dropout) from its ``config.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from bench.engine.spec import REFERENCE, RecordedSettings, RunOptions
from models.fus2net import DROPOUT, FC_L2

# Table 3 / Fig. 2: Fus2Net, the paper's four comparison methods (InceptionV3 transfer learning in
# both forms), then modern baselines; cheapest first so a CPU run yields results early.
COMPARISON_MODELS = [REFERENCE, "zeimarani_cnn", "efficientnet_lite0", "googlenet_fujioka",
                     "inception_v3_tl", "inception_v3_ft", "efficientnet_b0", "resnet50",
                     "convnext_tiny", "wang_multiview_inception_v3", "byra_vgg19_ml"]

# Left out of the *CPU* default (``--models all`` or ``--models NAME`` includes them), each with the
# measurement that says why; the default ``./run_all.sh`` must fit 15 min on 2 cores and show only
# models that learn. Throughputs: ``python -m bench.speed --img-size 64`` on the 2-core development
# machine (results/speed_cpu_profile.md, 2026-11-28); under 100 images/s one 20-epoch run on the
# embedded phantom takes 3-10 min.
CPU_LEFT_OUT = {
    "efficientnet_b0": "it does not learn from random initialisation at the cpu profile: phantom "
                       "test AUC 0.47, training loss 1.5-2.5 against 0.69 at chance (2026-11-28); "
                       "no ImageNet weights here",
    "inception_v3_ft": "81 img/s at 75 px on 2 CPU cores",
    "resnet50": "56 img/s at 64 px on 2 CPU cores",
    "convnext_tiny": "42 img/s at 64 px on 2 CPU cores",
    "wang_multiview_inception_v3": "41 img/s at 75 px on 2 CPU cores",
    "byra_vgg19_ml": "about 7 s per training step of 16 images on 2 CPU cores at 64 and 80 px "
                     "alike; 139.6 M parameters, 119.6 M of them in its 4096-wide FC layers",
}


def default_models(device: str) -> list[str]:
    """The comparison set ``./run_all.sh`` trains by default on ``device``."""
    return [m for m in COMPARISON_MODELS if device == "cuda" or m not in CPU_LEFT_OUT]


@dataclass(frozen=True)
class Variant:
    """One setting of a Fus2Net experiment: a label and the :class:`RunOptions` fields it changes
    (``{}``: the paper recipe). Its :meth:`key` is derived from those fields, so the report finds
    its runs by their recorded settings (:func:`fus2net_variant_key`)."""

    label: str
    overrides: Mapping[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        unknown = set(self.overrides) - {f.name for f in fields(RunOptions)}
        if unknown:
            raise TypeError(f"Variant {self.label!r}: not RunOptions fields: {sorted(unknown)}")

    def apply(self, options: RunOptions) -> RunOptions:
        """``options`` with this variant's settings (a variant without augmentation has no
        augmentation policy either: the suite's ``--augment`` applies to the augmented runs)."""
        out = replace(options, **self.overrides)
        return out if out.augment else replace(out, augment_policy="paper")

    def key(self) -> tuple:
        """(channels, optimizer, augment, L2, dropout) as a Fus2Net run of this variant records
        them; the same tuple :func:`fus2net_variant_key` reads from a run's settings."""
        o = self.apply(RunOptions(model=REFERENCE))
        return (o.channels, o.optimizer or "adam", bool(o.augment),
                float(FC_L2 if o.l2 is None else o.l2),
                float(DROPOUT if o.dropout is None else o.dropout))


BASE = Variant("Fus2Net (paper recipe)")
EXPERIMENTS: dict[str, dict] = {
    "table1_channels": {
        "title": "Table 1 — three-channel vs single-channel input",
        "variants": [Variant("3-channel"), Variant("1-channel", {"channels": 1})],
    },
    "fig1_optimizers": {
        "title": "Fig. 1 — Adam vs RMSprop vs SGD",
        "variants": [Variant("Adam"),
                     Variant("RMSprop", {"optimizer": "rmsprop"}),
                     Variant("SGD", {"optimizer": "sgd"})],
    },
    "table2_regularization": {
        "title": "Table 2 — augmentation, L2 and dropout",
        "variants": [Variant("augmentation + L2 + dropout"),
                     Variant("no augmentation", {"augment": False}),
                     Variant("no L2", {"l2": 0.0}),
                     Variant("no dropout", {"dropout": 0.0}),
                     Variant("none of the three", {"augment": False, "l2": 0.0, "dropout": 0.0})],
    },
}


def fus2net_variant_key(settings: RecordedSettings) -> tuple:
    """The variant key of a Fus2Net run from its recorded settings (:attr:`Run.record`'s)."""
    kw = settings.model_kwargs
    return (settings.channels, settings.optimizer or "adam", bool(settings.augment),
            float(kw.get("l2", FC_L2)), float(kw.get("dropout", DROPOUT)))


def experiment_variants() -> list[Variant]:
    """The distinct Fus2Net variants all experiments need (one per key), the base first: the
    typed plan of the experiments (:func:`bench.jobs.plan.suite_jobs` turns it into runs)."""
    seen: dict[tuple, Variant] = {BASE.key(): BASE}
    for exp in EXPERIMENTS.values():
        for v in exp["variants"]:
            seen.setdefault(v.key(), v)
    return list(seen.values())
