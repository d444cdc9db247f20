"""Which runs make which report row (docs/protocol.md, Metrics), shared by the report's sections.

A *configuration* is a run's settings without its seed; each table row is one configuration,
aggregated over its seeds. :func:`comparison_sets` gives the comparison models' rows (Fus2Net
first, every configuration a row of its own), :func:`variant_configs` the Fus2Net experiment
variants', :func:`set_aside` the runs in no table with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.engine.experiments import BASE, EXPERIMENTS, fus2net_variant_key
from bench.engine.profiles import PROFILES
from bench.engine.runfolder import Run
from bench.engine.spec import REFERENCE, cleaned
from bench.reporting.runs import NOT_CONFIG, by_configuration
from bench.stats.registry import View, listed
from models.pretrained import RANDOM_FALLBACK


def weights_label(run: Run) -> str:
    """Where the weights came from, saying so when a transfer model fell back to random init."""
    weights = run.record.weights
    if weights != "random":
        return weights
    if run.record.pretrained != "imagenet":
        return "random init"
    if run.record.settings.model_kwargs.get("pretrained") == "none":
        return "random init (--pretrained none; not the published method)"
    return RANDOM_FALLBACK


def _paper_recipe(r: Run) -> bool:
    if r.model == REFERENCE:
        return fus2net_variant_key(r.record.settings) == BASE.key()
    return r.record.settings.channels == 3 and r.record.settings.augment


def _pick(configs: list[list[Run]]) -> list[Run]:
    """The configuration on the images as they are (not cleaned), with the paper's augmentation
    (not a lever against the site gap: docs/protocol.md, "Closing the site gap"), with the most
    seeds, then the latest finished."""
    return max(configs, key=lambda rs: (not cleaned(rs[0].record.settings.annotations),
                                        rs[0].record.settings.augment_policy == "paper",
                                        len(rs), max(r.record.finished for r in rs)))


def flat_settings(settings: dict, prefix: str = "") -> dict:
    """A run's nested settings as one level, keys joined with dots (``augment.flip``)."""
    out = {}
    for k, v in settings.items():
        if isinstance(v, dict):
            out.update(flat_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_difference(ref: dict, other: dict) -> str:
    """The settings in which ``other`` differs from ``ref`` (seed and code version aside), e.g.
    ``img_size 96``: what tells two rows of one model apart. Cleaned images are said in words
    (their content hash differs as a consequence, so it is not repeated)."""
    a, b = flat_settings(ref), flat_settings(other)
    keys = sorted(k for k in set(a) | set(b) if k.split(".")[0] not in NOT_CONFIG
                  and a.get(k) != b.get(k))
    words = []
    if "annotations" in keys:
        words.append("trained on cleaned images" if cleaned(b.get("annotations"))
                     else "trained on the images as they are")
        keys = [k for k in keys if k not in ("annotations", "data_sha256")]
    words += [f"{k} {str(b.get(k, 'unset'))[:12]}" for k in keys]
    return (", ".join(words) or "another run").replace("|", "/")


def comparison_sets(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Per model and paper-recipe configuration, its seeds; Fus2Net first. A model's configuration
    with the most seeds is labelled by the model's name; every other configuration of it is a row
    of its own, labelled by what differs (e.g. ``resnet50 (img_size 96)``), never dropped."""
    per_model: dict[str, list[list[Run]]] = {}
    for rs in by_configuration([r for r in runs if _paper_recipe(r)]).values():
        per_model.setdefault(rs[0].model, []).append(rs)
    out = []
    for m in sorted(per_model, key=lambda m: (m != REFERENCE, m)):
        main = _pick(per_model[m])
        out.append((m, main))
        others = [(f"{m} ({config_difference(main[0].settings, rs[0].settings)})", rs)
                  for rs in per_model[m] if rs is not main]
        out += sorted(others, key=lambda x: x[0])
    return out


def reference_configuration(sets: list[tuple[str, list[Run]]]) -> list[Run] | None:
    """The set's reference configuration, the one every held-out row is compared with: Fus2Net's
    main comparison row (of its configurations on the images as they are, the one with the most
    seeds, then the latest finished: :func:`comparison_sets`); without a Fus2Net row, the main
    row with the most seeds (the first in table order on a tie); ``None`` for no rows."""
    mains = [rs for label, rs in sets if label == rs[0].model]
    if not mains:
        return None
    return next((rs for rs in mains if rs[0].model == REFERENCE),
                max(mains, key=lambda rs: len(rs)))


def _expected(run: Run, ref: Run, key: str) -> object:
    """What ``run``'s model gets for ``key`` under the reference's request (its profile with its
    overrides, as recorded): a profile without an image size (paper) gives each model its own,
    and no model goes below its ``min_input_size`` (75 px for InceptionV3); a profile without
    epochs gives each model its recipe's."""
    profile, mc, recorded = ref.record.profile, run.record.model_config, getattr(ref.record.settings, key)
    if key == "img_size":
        if key in profile and profile[key] is None:
            return mc.get("input_size", recorded)
        base = profile.get(key) or recorded
        return max(base, mc.get("min_input_size", 0)) if base is not None else None
    if key == "epochs" and key in profile and profile[key] is None:
        return mc.get("recipe", {}).get("epochs", recorded)
    return recorded


def _folds_by_design(run: Run, ref: Run) -> bool:
    """The reference is Fus2Net with the CV folds the suite gives its experiments (a profile's
    ``experiment_folds``, bench.jobs.plan); another model keeps the profile's own folds."""
    profile = ref.record.profile
    own = PROFILES.get(str(profile.get("name")))
    return (run.model != REFERENCE and ref.model == REFERENCE and own is not None
            and ref.record.settings.folds == profile.get("experiment_folds")
            and run.record.settings.folds == own.folds)


def differences_from_reference(rs: list[Run], ref: list[Run] | None) -> str:
    """``≠ reference: epochs 2 vs 20, folds 0 vs 2``: the settings in which the configuration
    ``rs`` differs from the reference configuration ``ref`` (:func:`reference_configuration`)
    such that its held-out numbers are not comparable with it (docs/protocol.md, "Runs and
    profiles"): profile, data set, its images' content, split manifest, epochs, image size,
    batch size and CV folds (those the row records: outside predictions record none of the
    training settings); empty when none does. Differences by design are not named: a
    model's own input size (:func:`_expected`), the content of images whose annotations were
    cleaned (labelled so in the row's name) and Fus2Net's experiment folds (:func:`_folds_by_design`)."""
    if ref is None or rs is ref:
        return ""
    r, f = rs[0], ref[0]
    words = []

    def differ(name: str, mine: object, theirs: object, shown: int | None = None) -> None:
        if mine is not None and mine != theirs:  # a setting the row does not record: unknown
            words.append(f"{name} {str(mine)[:shown]} vs {str(theirs)[:shown]}")

    differ("profile", r.record.profile_name, f.record.profile_name)
    differ("data", r.record.settings.data_kind, f.record.settings.data_kind)
    if cleaned(r.record.settings.annotations) == cleaned(f.record.settings.annotations):
        differ("images", r.record.settings.data_sha256, f.record.settings.data_sha256, 8)
    differ("manifest", r.record.settings.manifest_sha256, f.record.settings.manifest_sha256, 8)
    for key, name in (("epochs", "epochs"), ("img_size", "image size"), ("batch_size", "batch")):
        differ(name, getattr(r.record.settings, key), _expected(r, f, key))
    if not _folds_by_design(r, f):
        differ("folds", r.record.settings.folds, f.record.settings.folds)
    return f"≠ reference: {', '.join(words)}" if words else ""


def comparability(sets: list[tuple[str, list[Run]]]) -> dict[str, str]:
    """Per row label, :func:`differences_from_reference` against the set's reference."""
    ref = reference_configuration(sets)
    return {label: differences_from_reference(rs, ref) for label, rs in sets}


def set_aside(runs: list[Run]) -> list[tuple[str, str]]:
    """Runs in no table, each with the reason (the report lists them; nothing is dropped
    silently): another run of the same configuration and seed finished later; a Fus2Net variant
    that no experiment lists, or a second configuration of a variant; a baseline not trained with
    the paper recipe (3 channels, augmentation)."""
    variants = {v.key() for exp in EXPERIMENTS.values() for v in exp["variants"]}
    used = {id(r) for r in comparison_runs(runs)}
    used |= {id(r) for key, rs in variant_configs(runs).items() if key in variants for r in rs}
    in_groups = {id(r) for rs in by_configuration(runs).values() for r in rs}
    out = []
    for r in runs:
        if id(r) in used:
            continue
        if id(r) not in in_groups:
            why = ("a later run of the same configuration and seed "
                   f"{r.seed} is used instead")
        elif r.model == REFERENCE and fus2net_variant_key(r.record.settings) not in variants:
            why = "a Fus2Net variant that no experiment table lists"
        elif r.model == REFERENCE:
            why = ("the experiment tables use another configuration of the same variant (with "
                   "CV folds and the most seeds)")
        else:
            why = ("not the paper recipe (3-channel input with augmentation); only Fus2Net's "
                   "variants have tables")
        out.append((r.path.name, why))
    return out


def comparison_runs(runs: list[Run]) -> list[Run]:
    """Every run (all seeds) behind the comparison table."""
    return [r for _, rs in comparison_sets(runs) for r in rs]


def fold_metrics(run: Run) -> pd.DataFrame:
    """The run's per-fold CV metrics (``cv_metrics.csv``), with every registered metric of the
    folds view it does not record (:mod:`bench.stats.registry`: one registered after the run)
    computed from that fold's out-of-fold predictions; NaN for a failed fold."""
    cv = run.cv
    missing = [m for m in listed(View.FOLDS) if m.name not in cv]
    if not len(cv) or not missing:
        return cv
    cv = cv.copy()
    val = run.predictions[run.predictions.split == "val"]
    folds = {int(f): d for f, d in val.groupby("fold")}
    for m in missing:
        values = []
        for fold, status in zip(cv.fold, cv.status, strict=True):
            d = folds.get(int(fold))
            values.append(float(m.function(d.label.to_numpy(), d.prob_malignant.to_numpy()))
                          if d is not None and status == "ok" else np.nan)
        cv[m.name] = values
    return cv


def check_same_test_set(runs: list[Run]) -> None:
    ids = [tuple(r.test.id) for r in runs if len(r.test)]
    if len(set(ids)) > 1:
        raise BenchError("runs were evaluated on different test sets; report one data set and "
                         "split at a time (give `runs` a folder of matching runs)")


def seed_mean(rs: list[Run]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and the seed-averaged P(malignant) of a configuration's test images."""
    tests = [r.test for r in rs if len(r.test)]
    return tests[0].label.to_numpy(), np.mean([t.prob_malignant.to_numpy() for t in tests], axis=0)


def held_out_groups(run: Run) -> np.ndarray | None:
    """The same-lesion (or patient) group of each held-out test image of ``run``, in the order of
    its test predictions, from the run's ``split.csv``; ``None`` when unknown."""
    split = run.split
    if not len(split):
        return None
    by_id = dict(zip(split.id, split.group, strict=True)) if {"id", "group"} <= set(split) else {}
    groups = run.test.id.astype(str).map(by_id)
    return None if groups.isna().any() or (groups == "").any() else groups.to_numpy(str)


def variant_configs(runs: list[Run]) -> dict[tuple, list[Run]]:
    """Per Fus2Net variant, its configuration with CV folds and the most seeds."""
    per_variant: dict[tuple, list[list[Run]]] = {}
    for rs in by_configuration([r for r in runs if r.model == REFERENCE]).values():
        per_variant.setdefault(fus2net_variant_key(rs[0].record.settings), []).append(rs)
    return {k: _pick([rs for rs in v if rs[0].metrics.get("cv")] or v)
            for k, v in per_variant.items()}
