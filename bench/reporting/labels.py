"""Each run's row in the report: the label of the Table 3 row or Fus2Net experiment variant it
belongs to, or why it is in no table (docs/protocol.md, "Metrics"); :mod:`bench.api` and
:mod:`bench.reporting.tracking` show it beside the run."""

from __future__ import annotations

from bench.engine.experiments import experiment_variants
from bench.engine.runfolder import Run
from bench.reporting.tables import comparison_sets, set_aside, variant_configs


def configuration_labels(runs: list[Run]) -> dict[str, tuple[str, str]]:
    """Per run folder name: (the label of its row in the report, where the row is or why the run
    is in no table). A comparison model's row is labelled as in Table 3 (``resnet50``, ``resnet50
    (trained on cleaned images)``), a Fus2Net experiment variant by its label."""
    out: dict[str, tuple[str, str]] = {}
    for label, rs in comparison_sets(runs):
        for r in rs:
            out[r.path.name] = (label, "Table 3")
    names = {v.key(): v.label for v in experiment_variants()}
    for key, rs in variant_configs(runs).items():
        if key in names:
            for r in rs:
                out.setdefault(r.path.name, (f"Fus2Net: {names[key]}", "experiments"))
    for folder, why in set_aside(runs):
        model = next(r.model for r in runs if r.path.name == folder)
        out.setdefault(folder, (f"{model} (in no table)", why))
    return out
