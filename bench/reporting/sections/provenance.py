"""The README's header: the data, profile, seeds, devices and code versions of the runs, then
warnings, the runs in no table, the flagged rows and the models not trained as published."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.engine.runfolder import Run
from bench.reporting.runs import provenance_warnings
from bench.reporting.sections.context import ReportContext
from bench.reporting.tables import comparison_runs, set_aside


def flagged_notes(tables: dict[str, pd.DataFrame]) -> list[str]:
    """One line per flagged row of any table: what the model predicts."""
    notes = []
    for name, t in tables.items():
        if "flag" not in t:
            continue
        key = "model" if "model" in t else "variant"
        for r in t.to_dict("records"):
            if isinstance(r.get("flag"), str) and r["flag"]:
                notes.append(f"* `{name}` — **{r[key]}**: {r['flag']}")
    return notes


def _revisions(runs: list[Run]) -> str:
    """Each git revision the runs were made from, with its number of runs (most first)."""
    counts: dict[str, int] = {}
    for r in runs:
        rev = str(r.record.git_revision or "unknown")
        counts[rev] = counts.get(rev, 0) + 1
    return ", ".join(f"`{rev}` ({n} run{'s' if n > 1 else ''})"
                     for rev, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


ADDONS = {"explain": "explanations", "reliance": "annotation reliance",
          "external": "external scoring", "illustrations": "illustrations"}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def compute_line(runs: list[Run]) -> str:
    """The set's dates and compute: the runs' recorded training times (held-out and all-image
    runs alike, counted apart) plus every add-on step's recorded time (``compute.json``); add-on
    outputs without a recorded time are counted apart."""
    training = sum(float(r.record.timings.get("total_s") or 0.0) for r in runs)
    addons: dict[str, float] = {}
    finished = [str(r.record.finished) for r in runs]
    untimed = 0
    for r in runs:
        record = r.folder.compute_record()
        for step in r.folder.addon_steps():
            if step not in record:
                untimed += 1
                continue
            kind = ADDONS.get(step.split("/")[0], step)
            addons[kind] = addons.get(kind, 0.0) + float(record[step]["seconds"])
            finished.append(str(record[step].get("finished", "")))
    started = min((str(r.record.started) for r in runs if r.record.started),
                  default="unrecorded")
    total = training + sum(addons.values())
    every_image = sum(r.evaluation == "allcv" for r in runs)
    counted = (f"{len(runs)} runs: {len(runs) - every_image} held-out, {every_image} all-image"
               if every_image else f"{len(runs)} runs")
    parts = [f"training {_hours(training)} ({counted})"]
    parts += [f"{kind} {_hours(addons[kind])}" for kind in ADDONS.values() if kind in addons]
    threads = {r.record.device.get("threads") for r in runs}
    per = ""
    if all(r.record.device.get("device") == "cpu" for r in runs) and len(threads) == 1:
        n = next(iter(threads))
        if isinstance(n, int):
            per = f"; every run on {n} CPU threads, so about {total * n / 3600:.1f} thread-hours"
    gap = (f"; {untimed} add-on step(s) predate recorded times and are not counted"
           if untimed else "")
    return (f"* **Made**: {started} to {max(finished)} (first run started, last step finished); "
            f"**compute** {_hours(total)} of wall-clock time: {', '.join(parts)}{per}{gap}")


def _machine(device: dict) -> str:
    """``x86_64 (cpu, 2 threads)`` or ``NVIDIA H200 (cuda)``: the machine a run was made on."""
    name = device.get("gpu", device.get("cpu", ""))
    threads = f", {device['threads']} threads" if device.get("device") == "cpu" and \
        device.get("threads") else ""
    return f"{name} ({device['device']}{threads})"


def split_line(runs: list[Run]) -> str:
    """``* **Split** …``: the images and same-lesion groups of each part of the runs' split
    manifest (their ``split.csv``: training, held-out test with its malignant images, excluded) and
    how many distinct training images the final fits used (``train_images`` less
    ``flipped_copies`` of ``stages/final/done.json``; a profile's ``train_limit`` may cap it).
    Every count is read from the runs, none is written by hand; empty when no run has a manifest."""
    ref = next((r for r in comparison_runs(runs) + runs if len(r.split)), None)
    if ref is None or not {"split", "group"} <= set(ref.split):
        return ""
    parts = []
    for part, name in (("train", "training"), ("test", "held-out test"), ("excluded", "excluded")):
        rows = ref.split[ref.split.split == part]
        if not len(rows):
            continue
        malignant = (f" ({int(rows.label.sum())} malignant)" if part == "test" and "label" in rows
                     else "")
        groups = rows.group.nunique()
        parts.append(f"{len(rows)} {name} image{'s' if len(rows) != 1 else ''}{malignant} in "
                     f"{groups} group{'s' if groups != 1 else ''}")
    fits = set()
    for r in runs:
        try:
            done = r.folder.stage("final").record()
            fits.add(int(done["train_images"]) - int(done.get("flipped_copies", 0)))
        except (ValueError, KeyError, TypeError, AttributeError):  # not done, or no counts
            continue
    used = ""
    if fits:
        span = str(min(fits)) if len(fits) == 1 else f"{min(fits)}–{max(fits)}"
        limit = {r.record.settings.train_limit for r in runs} - {None}
        cap = f" (profile cap: {', '.join(map(str, sorted(limit)))} per fit)" if limit else ""
        used = f"; each final fit trained on {span} distinct training images{cap}"
    return (f"* **Split** (the runs' manifest, `split.csv`): {'; '.join(parts)}{used}")


def _settings_lines(runs: list[Run], every_image: list[Run]) -> list[str]:
    """The bullet list: data, profile, seeds, devices, runs and their code versions. ``runs`` are
    the held-out runs the tables describe; the all-image runs (``every_image``) join the counts of
    devices, code versions, revisions and compute (docs/statistics.md, "Every image scored once")."""
    used = comparison_runs(runs)
    ref = used[0] if used else runs[0]
    s, rec = ref.record.settings, ref.record
    made = runs + every_image
    devices = sorted({_machine(r.record.device) for r in made})
    engines = sorted({r.record.settings.engine for r in made})
    seeds = sorted({r.seed for r in runs})
    data_name = rec.data.get("name", s.data_kind)
    versions = sorted({r.record.settings.code_version or "unrecorded" for r in made})
    aside = set_aside(runs)
    aside_note = f" ({len(aside)} of them in no table, listed below)" if aside else ""
    every_image_note = (f", and {len(every_image)} all-image run{'s' if len(every_image) > 1 else ''}"
                        " (every image scored once)" if every_image else "")
    return [
        f"* **Data**: {s.data_kind} (`{data_name}`), split `{rec.data['split_source']}`"
        f" (manifest SHA-256 `{s.manifest_sha256}`)",
        f"* **Profile**: `{rec.profile_name}` — {rec.profile['description']}; image size "
        f"{s.img_size} px for Fus2Net, {s.epochs} epochs, batch {s.batch_size}, "
        f"{s.folds} CV folds",
        *([split] if (split := split_line(runs)) else []),
        f"* **Seeds**: {', '.join(map(str, seeds))} (every table aggregates over them)",
        f"* **Device(s)**: {', '.join(devices)}; torch {rec.versions.get('torch')}; training "
        f"engine(s): {', '.join(engines)}",
        f"* **Runs**: {len(runs)}{aside_note}{every_image_note}; training-code version(s) "
        f"{', '.join(f'`{v}`' for v in versions)}; git revision(s) of the checkout that made "
        f"them: {_revisions(made)}", compute_line(made), ""]


def _caveats(ctx: ReportContext) -> list[str]:
    """Warnings, runs in no table, flagged rows, and models not trained as published."""
    lines: list[str] = []
    warnings = provenance_warnings(ctx.runs) + [f"left out (--skip-invalid-runs): {n}"
                                                for n in ctx.skipped] + list(ctx.notes)
    if warnings:
        lines += ["**Warning:** " + "; ".join(warnings) + ".", ""]
    aside = set_aside(ctx.runs)
    if aside:
        lines += ["## Runs in no table", "",
                  "Every configuration of a model is a row of its own; these runs are not:", "",
                  *[f"* `{name}`: {why}" for name, why in aside], ""]
    flags = flagged_notes(ctx.tables)
    if flags:
        lines += ["## Flagged rows (⚠): degenerate predictions", "",
                  "Their metrics are shown but their tests are not evidence:", "", *flags, ""]
    random_init = sorted({r.model for r in comparison_runs(ctx.runs)
                          if r.record.pretrained == "imagenet"
                          and r.record.weights == "random"})
    if random_init:
        lines += [f"**Not the published methods:** {', '.join(random_init)} trained from random "
                  "initialisation because ImageNet weights were unavailable; their rows say so.", ""]
    return lines


def write_tables(ctx: ReportContext) -> None:
    pass


def draw_figures(tdir: Path, fdir: Path) -> list[Path]:
    return []


def readme(ctx: ReportContext) -> list[str]:
    return ["# fus2bench results", "",
            "Generated by `python -m bench.report`; do not edit by hand.", "",
            *_settings_lines(ctx.runs, ctx.allcv), *_caveats(ctx)]
