"""Read finished run folders (the report's only input)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError, plain
from bench.core.provenance import file_sha256


@dataclass
class Run:
    """One finished run folder."""

    path: Path
    config: dict
    metrics: dict
    predictions: pd.DataFrame
    cv: pd.DataFrame
    # external set name → (its predictions, its metrics.json), see bench.evaluation.external
    external: dict[str, tuple[pd.DataFrame, dict]] = field(default_factory=dict)
    # the split manifest the run used (``split.csv``; empty for runs without one)
    split: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def model(self) -> str:
        return self.config["settings"]["model"]

    @property
    def settings(self) -> dict:
        return self.config["settings"]

    @property
    def data_arg(self) -> str | None:
        """Where the run's data are, as recorded (portable: relative to the project, see
        :func:`bench.core.provenance.from_portable`); ``None``: the built-in phantom.

        Runs record the resolved location in ``config.json``'s ``data.path``; for older runs it is
        the ``--data`` of the recorded command, read as the shell would (``--data=PATH`` and
        quoted paths included)."""
        data = self.config.get("data", {})
        if "path" in data:
            return data["path"]
        try:
            words = shlex.split(str(self.config.get("command", "")))
        except ValueError:
            words = str(self.config.get("command", "")).split()
        for k, word in enumerate(words):
            if word == "--data" and k + 1 < len(words):
                return words[k + 1]
            if word.startswith("--data="):
                return word.split("=", 1)[1]
        return None

    @property
    def prevalence(self) -> float:
        """The malignant share of the run's data set (every image of its manifest that is not
        excluded); NaN when the run has no manifest."""
        if not len(self.split) or "label" not in self.split:
            return float("nan")
        kept = self.split[self.split.split != "excluded"]
        return float(kept.label.mean()) if len(kept) else float("nan")

    @property
    def test(self) -> pd.DataFrame:
        return self.predictions[self.predictions.split == "test"].sort_values("id").reset_index(drop=True)


def load_run(folder: Path) -> Run | None:
    """A run folder with a finished ``config.json`` (complete or failed); ``None`` otherwise."""
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        return None
    try:
        config = json.loads(cfg_path.read_text())
    except ValueError:
        raise BenchError(f"{cfg_path}: not valid JSON; delete the run folder or rerun it") from None
    if config.get("status") not in ("complete", "failed"):
        return None
    verify_outputs(folder, config)
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        preds = pd.read_csv(folder / "predictions.csv", dtype={"id": str, "path": str})
        cv_path = folder / "cv_metrics.csv"
        cv = pd.read_csv(cv_path) if cv_path.is_file() and cv_path.stat().st_size > 1 \
            else pd.DataFrame()
    except (OSError, ValueError) as exc:
        name = getattr(exc, "filename", None) or "a result file"
        raise InvalidRun(f"{folder.name}: cannot read {Path(name).name} ({type(exc).__name__}); "
                         "rerun that run, or pass --skip-invalid-runs to leave it out of the "
                         "report") from None
    test = preds[preds.split == "test"]
    if len(test) and test.label.nunique() < 2:
        raise InvalidRun(f"{folder.name}: its test set has only "
                         f"{'malignant' if test.label.iloc[0] == 1 else 'benign'} images, so AUC, "
                         "sensitivity and specificity are undefined; rerun it on a split with "
                         "both classes, or pass --skip-invalid-runs to leave it out")
    check_predictions(preds, f"{folder.name}/predictions.csv")
    split = _read_split(folder)
    preds = attach_groups(preds, split)
    external = {}
    for ext in sorted((folder / "external").glob("*/metrics.json")):
        where = f"{folder.name}/external/{ext.parent.name}"
        try:
            meta = json.loads(ext.read_text())
            pred_path = ext.parent / "predictions.csv"
            if meta.get("predictions_sha256") != file_sha256(pred_path):
                state = "has no recorded checksum (scored by an older version)" \
                    if "predictions_sha256" not in meta else "does not match its checksum"
                raise InvalidRun(f"{where}/predictions.csv {state} in metrics.json (changed "
                                 "after it was scored?); score it again with --external, or pass "
                                 "--skip-invalid-runs to leave the run out")
            ext_preds = pd.read_csv(pred_path, dtype={"id": str, "path": str, "group": str},
                                    keep_default_na=False)
        except (OSError, ValueError) as exc:
            raise InvalidRun(f"{where}: cannot read it ({type(exc).__name__}); score it again "
                             "with --external") from None
        check_predictions(ext_preds, f"{where}/predictions.csv")
        external[ext.parent.name] = (ext_preds, meta)
    for info_path in sorted((folder / "explain").glob("*/info.json")):
        verify_recorded(info_path, f"{folder.name}/explain/{info_path.parent.name}",
                        "rerun python -m bench.explain on it")
    return Run(folder, config, metrics, preds, cv, external, split)


def _read_split(folder: Path) -> pd.DataFrame:
    path = folder / "split.csv"
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path, dtype={"id": str, "path": str, "group": str},
                           keep_default_na=False)
    except (OSError, ValueError):
        raise InvalidRun(f"{folder.name}: cannot read split.csv; rerun that run, or pass "
                         "--skip-invalid-runs to leave it out") from None


def attach_groups(preds: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Predictions with each image's cluster in ``group`` (docs/protocol.md, "Images that belong
    together"): the same-lesion or patient group of the run's manifest; ``""`` where the manifest
    has none (the statistics then treat the image as its own cluster,
    :func:`bench.evaluation.contrasts.groups_of`). The one place the report's statistics get their groups."""
    if "group" in preds:
        return preds.assign(group=preds.group.fillna("").astype(str))
    if not len(split) or "group" not in split:
        return preds.assign(group="")
    groups = dict(zip(split.id.astype(str), split.group.astype(str), strict=True))
    return preds.assign(group=preds.id.astype(str).map(groups).fillna(""))


WEIGHTS = "model.safetensors"


def check_predictions(preds: pd.DataFrame, where: str) -> None:
    """Predictions the tables can use: labels 0/1 and probabilities finite in [0, 1] (a file
    whose checksum was re-recorded after an edit is still refused here)."""
    try:
        prob = pd.to_numeric(preds["prob_malignant"], errors="coerce").to_numpy(dtype=float)
        label = pd.to_numeric(preds["label"], errors="coerce").to_numpy(dtype=float)
    except KeyError as exc:
        raise InvalidRun(f"{where}: no column {exc.args[0]!r}; rerun that run, or pass "
                         "--skip-invalid-runs to leave it out") from None
    bad = ~np.isfinite(prob) | (prob < 0) | (prob > 1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InvalidRun(f"{where} line {k + 2}: prob_malignant {plain(prob[k])} is not a "
                         "probability in [0, 1] ({int(bad.sum())} such row(s)); rerun that run, "
                         "or pass --skip-invalid-runs to leave it out")
    wrong = ~np.isin(label, (0, 1))
    if wrong.any():
        k = int(np.flatnonzero(wrong)[0])
        raise InvalidRun(f"{where} line {k + 2}: label {plain(label[k])} is not 0 or 1; rerun "
                         "that run, or pass --skip-invalid-runs to leave it out")


def verify_recorded(info_path: Path, where: str, remedy: str) -> None:
    """The files an ``info.json`` lists under ``files`` must still have their SHA-256 (records
    without the list, made by older versions, are not checked)."""
    try:
        files = json.loads(info_path.read_text()).get("files", {})
    except (OSError, ValueError):
        raise InvalidRun(f"{where}/{info_path.name}: not valid JSON; {remedy}") from None
    for name, sha in files.items():
        path = info_path.parent / name
        if not path.is_file() or file_sha256(path) != sha:
            state = "is missing" if not path.is_file() else "does not match its checksum"
            raise InvalidRun(f"{where}/{name} {state} in {info_path.name} (changed after it was "
                             f"written); {remedy}, or pass --skip-invalid-runs to leave the run "
                             "out")


def verify_outputs(folder: Path, config: dict) -> None:
    """Every output whose SHA-256 the run recorded must still have it (not edited or truncated).
    The weights may be absent (committed results sets leave them out of git; the report never
    reads them), but weights that are present must match."""
    for name, sha in config.get("outputs", {}).items():
        path = folder / name
        if name == WEIGHTS and not path.exists():
            continue
        if not path.is_file() or file_sha256(path) != sha:
            state = "is missing" if not path.is_file() else "does not match its checksum"
            raise InvalidRun(f"{folder.name}/{name} {state} in config.json (changed, truncated "
                             "or deleted after the run); rerun that run, or pass "
                             "--skip-invalid-runs to leave it out of the report")


class InvalidRun(BenchError):
    """A run folder whose recorded outputs were changed after the run."""


def unloaded_reason(folder: Path) -> str:
    """Why ``load_run`` gave ``None`` for ``folder`` (said by the report, never silent)."""
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        return (f"{folder.name}: no config.json (not a run folder, or a run that never started "
                "or whose record was deleted); left out")
    status = json.loads(cfg_path.read_text()).get("status")
    return (f"{folder.name}: not finished (status {status!r}: interrupted, or still running); left "
            "out — rerun its command to finish it")


def load_runs(runs_dir: Path, skip_invalid: bool = False,
              skipped: list[str] | None = None, notes: list[str] | None = None) -> list[Run]:
    """All finished runs under ``runs_dir``, sorted by folder name (deterministic). A run whose
    outputs fail their checksums stops the report, or with ``skip_invalid`` is left out and its
    reason appended to ``skipped``. Folders that hold no finished run are appended to ``notes``
    (hidden folders aside)."""
    if not runs_dir.is_dir():
        raise BenchError(f"--runs {runs_dir}: not a folder of run results")
    runs = []
    for f in sorted(runs_dir.iterdir()):
        if not f.is_dir() or f.name.startswith("."):
            continue
        try:
            r = load_run(f)
        except InvalidRun as exc:
            if not skip_invalid:
                raise
            if skipped is not None:
                skipped.append(str(exc).split(";")[0])
            continue
        if r is not None:
            runs.append(r)
        elif notes is not None:
            notes.append(unloaded_reason(f))
    if not runs:
        raise BenchError(f"--runs {runs_dir}: no finished runs found (run python -m bench.run first)")
    return runs


# Settings that do not define *which* configuration a run belongs to: its seed (aggregated over)
# and the training-code version (a mix is warned about in the report, not split into rows).
NOT_CONFIG = ("seed", "code_version")


def config_key(run: Run) -> str:
    """The run's full configuration without its seed (runs that differ only in seed share it)."""
    settings = {k: v for k, v in run.settings.items() if k not in NOT_CONFIG}
    return json.dumps(settings, sort_keys=True, default=str)


def by_configuration(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs grouped by configuration, one run per seed (the latest finished), seeds ascending."""
    groups: dict[str, dict[int, Run]] = {}
    for r in sorted(runs, key=lambda r: r.config.get("finished", "")):
        groups.setdefault(config_key(r), {})[int(r.settings.get("seed", 0))] = r
    return {k: [seeds[s] for s in sorted(seeds)] for k, seeds in groups.items()}


def provenance_warnings(runs: list[Run]) -> list[str]:
    """Mixed training-code versions or uncommitted code among ``runs`` (said in every report)."""
    notes = []
    versions = sorted({r.settings.get("code_version", "unrecorded") for r in runs})
    if len(versions) > 1:
        notes.append(f"runs come from {len(versions)} training-code versions "
                     f"({', '.join(versions)}); rerun the older ones to compare like with like")
    dirty = sorted(r.path.name for r in runs if str(r.config.get("git_revision", "")).endswith("+dirty"))
    if dirty:
        notes.append(f"{len(dirty)} run(s) were made from a checkout with uncommitted changes "
                     f"(e.g. {dirty[0]})")
    return notes
