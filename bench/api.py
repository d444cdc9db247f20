"""The benchmark from Python: score predictions, read runs, build models (docs/protocol.md, "Metrics"
and "Outside predictions").

Every number comes from the functions the report itself uses (the same checks of a predictions
file, the same per-seed and Table 3 rows with their image-level and cluster-aware intervals over
the manifest's same-picture/patient/lesion groups); nothing here recomputes a statistic. Errors are
:class:`bench.core.errors.BenchError` with one sentence naming the argument. Importing this module
is cheap: torch, the models and the report load on the first call that needs them.

Usage, e.g. in a notebook::

    from bench import api

    s = api.score_predictions("my_predictions.csv")          # id, prob_malignant [, seed]
    s.metrics["auc"], s.metrics["auc_cl_lo"], s.metrics["auc_cl_hi"]   # clustered 95% CI
    s.per_seed                  # the report's per-seed row(s): sensitivity, specificity, ...
    s.intervals                 # DeLong, bootstrap, Obuchowski and cluster-bootstrap intervals

    api.score_predictions(df)   # a DataFrame with the same columns works too
    api.score_predictions("results/busi-cpu/runs/fus2net-busi-3519a726ce")  # a run's own
    api.score_predictions(df, "results/busi-cpu/runs")  # beside the set's models: ΔAUC vs Fus2Net

    runs = api.load_runs("results/busi-cpu/runs")   # one row per run: settings, test/CV metrics
    model = api.create_model("fus2net", pretrained="none")
    api.list_models()
    api.export_mlflow("results/busi-cpu/runs", "sqlite:///mlflow.db")   # extra: .[mlflow]

The manifest (which images are held out, their labels and groups) is a data set name
(``"busi"``: the committed ``datasets/splits/busi.csv``, shipped in the wheel too), a manifest CSV,
or a folder of runs (its own manifest; the predictions are then also compared with its models, as
``python -m bench.evaluate`` does). Without one, a run folder's own ``split.csv`` or ``"busi"``.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.paths import SPLITS_DIR

if TYPE_CHECKING:  # pandas, torch (bench.core.errors imports the models) load on first use
    import pandas as pd
    from torch import nn

    from bench.core.errors import BenchError


def _error(message: str) -> BenchError:
    from bench.core.errors import BenchError

    return BenchError(message)

# the model name of predictions given without one (a run folder's are named after the folder)
DEFAULT_NAME = "predictions"
# the headline numbers of :attr:`Scores.metrics`, from the report's Table 3 row
HEADLINE = ("auc", "auc_cl_lo", "auc_cl_hi", "auc_cboot_lo", "auc_cboot_hi", "auc_img_lo",
            "auc_img_hi", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "brier",
            "ensemble_auc", "ensemble_auc_cl_lo", "ensemble_auc_cl_hi", "delta_auc",
            "delta_auc_cl_lo", "delta_auc_cl_hi", "delta_auc_p", "n_clusters", "n_seeds", "flag")
# settings of a run shown as columns of :func:`load_runs` (the rest are in ``settings``)
KEY_SETTINGS = ("img_size", "epochs", "batch_size", "folds", "optimizer", "lr", "augment",
                "channels", "annotations", "data_kind", "code_version")


def manifest_names() -> list[str]:
    """The data sets with a committed split manifest (``"busi"``)."""
    return sorted(p.stem for p in SPLITS_DIR.glob("*.csv") if not p.stem.endswith("_reviewed"))


def manifest_path(manifest: str | Path) -> Path:
    """The manifest file of a data set name (``"busi"``) or a path to a manifest CSV."""
    text = str(manifest)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if isinstance(manifest, str) and text in manifest_names():
        return SPLITS_DIR / f"{text}.csv"
    names = ", ".join(manifest_names()) or "none found"
    raise _error(f"`manifest`={text}: neither a manifest file nor a data set with a committed "
                 f"manifest ({names}); give a data set name, a manifest CSV or a runs folder")


def load_manifest(manifest: str | Path = "busi") -> pd.DataFrame:
    """The checked split manifest (``id, path, label, group, split, fold``) of a data set name or
    a manifest file (:func:`bench.data.manifest.read_manifest`)."""
    from bench.data.manifest import read_manifest

    return read_manifest(manifest_path(manifest))


@dataclass(frozen=True)
class Scores:
    """A set of predictions scored by the report's functions.

    ``per_seed``: one row per seed, the columns of the report's ``table3_per_seed.csv`` (metrics at
    P ≥ 0.5 with Wilson intervals, AUC with DeLong, bootstrap and Obuchowski clustered intervals,
    ``n_clusters``); ``summary``: the Table 3 row over the seeds (mean, sd, the clustered interval
    of the seed-mean AUC, a cluster bootstrap, the ensemble of the seeds, calibration, PPV/NPV at
    the data set's prevalence); ``intervals``: AUC intervals per seed and, for several seeds, of
    the seed-averaged probabilities (DeLong, stratified bootstrap, Obuchowski, cluster bootstrap);
    with a runs folder also ΔAUC against its Fus2Net (``leaderboard``: the set's models and these)."""

    name: str
    manifest_file: Path
    per_seed: pd.DataFrame
    summary: pd.DataFrame
    intervals: pd.DataFrame
    predictions: pd.DataFrame
    leaderboard: pd.DataFrame | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        """The headline numbers (:data:`HEADLINE`) of :attr:`summary` as plain Python values."""
        row = self.summary.iloc[0].to_dict()
        out: dict[str, Any] = {}
        for k in HEADLINE:
            v = row.get(k)
            if hasattr(v, "item"):
                v = v.item()
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            out[k] = v
        return out


def _check_number(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
            or value < minimum:
        raise _error(f"`{name}`={value!r}: give a whole number >= {minimum}")
    return int(value)


def _frame_as_file(frame: pd.DataFrame, folder: Path) -> Path:
    """A predictions DataFrame as the CSV the benchmark checks (floats written to round-trip)."""
    path = folder / "predictions.csv"
    frame.to_csv(path, index=False)
    return path


def _in_frame_words(exc: BenchError, path: Path) -> BenchError:
    """A check's message about the temporary CSV of a DataFrame, said of the DataFrame (line N of
    the CSV is row N - 2 of the frame)."""
    text = str(exc).replace(f"`predictions`={path}", "`predictions` (DataFrame)")
    text = re.sub(r"^`predictions` \(DataFrame\) line (\d+)",
                  lambda m: f"`predictions` (DataFrame) row {int(m.group(1)) - 2}", text)
    return _error(text)


def _predictions_file(predictions: pd.DataFrame | str | Path) -> tuple[Path | None, Path | None]:
    """(the predictions file, the run folder it belongs to) of a path, a run folder or ``None``
    for a DataFrame."""
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return None, None
    if not isinstance(predictions, str | Path):
        raise _error(f"`predictions`: give a DataFrame or a CSV path, not a "
                     f"{type(predictions).__name__}")
    from bench.engine.runfolder import RunFolder

    path = Path(predictions).expanduser()
    if path.is_dir():
        if not RunFolder(path).predictions_file.is_file():
            raise _error(f"`predictions`={path}: a folder without predictions.csv; give a "
                         "predictions CSV or a run folder")
        return RunFolder(path).predictions_file, path
    return path, None


def score_predictions(predictions: pd.DataFrame | str | Path, manifest: str | Path | None = None,
                      *, name: str | None = None, n_boot: int = 2000, seed: int = 0,
                      profile: str | None = None) -> Scores:
    """Score P(malignant) of the held-out test images with the benchmark's statistics.

    ``predictions``: a DataFrame or CSV with ``id, prob_malignant`` and optionally ``label``
    (checked against the manifest), ``seed`` (several training seeds), ``split``/``fold`` (``val``
    rows: out-of-fold CV predictions) and ``path``; or a run folder (its ``predictions.csv``).
    Every held-out test id of the manifest once per seed (docs/protocol.md, "Outside
    predictions"). ``manifest``: a data set name (``"busi"``), a manifest CSV, or a runs folder
    (then the predictions are also compared with the set's models; ``profile`` picks one of
    several profiles there). ``name``: the model's name in the rows (default: the run folder's
    name, else ``predictions``). ``n_boot``/``seed``: the bootstraps' resamples and seed (the
    report's defaults give its numbers exactly)."""
    from bench.core.errors import BenchError
    from bench.engine.runfolder import RunFolder
    from bench.reporting import evaluate as ev
    from bench.reporting.outside import outside_runs, read_predictions, results_set
    from bench.reporting.report import select_group
    from bench.reporting.runs import load_runs as load_run_list
    from bench.reporting.sections.heldout import comparison_table, per_seed_table

    n_boot = _check_number(n_boot, "n_boot", 1)
    seed = _check_number(seed, "seed", 0)
    file, run_folder = _predictions_file(predictions)
    if name is None:
        name = run_folder.name if run_folder is not None else DEFAULT_NAME
    if manifest is None:
        manifest = RunFolder(run_folder).split_file if run_folder is not None and \
            RunFolder(run_folder).split_file.is_file() else "busi"
    if not isinstance(manifest, str | Path):
        raise _error(f"`manifest`: give a data set name, a manifest CSV or a runs folder, not a "
                     f"{type(manifest).__name__}")
    set_dir = Path(manifest).expanduser()
    if set_dir.is_dir():
        rs = results_set(select_group(load_run_list(set_dir), profile), set_dir)
        name = ev.check_name(name, rs)
    else:
        from bench.core.provenance import file_sha256
        from bench.data.manifest import read_manifest

        path = manifest_path(manifest)
        table = read_manifest(path)
        test_ids = tuple(sorted(table.id[table.split == "test"]))
        if not test_ids:
            raise _error(f"`manifest`={path}: the manifest holds no held-out test images")
        rs = _ManifestSet([], table, file_sha256(path), path, test_ids)
    with tempfile.TemporaryDirectory(prefix="fus2bench-") as tmp:
        where = file if file is not None else _frame_as_file(predictions, Path(tmp))  # type: ignore[arg-type]
        try:
            preds = read_predictions(where, rs)
        except BenchError as exc:
            if file is None:
                raise _in_frame_words(exc, where) from None
            raise
    mine = outside_runs(preds, name, rs)
    settings = {"n_boot": n_boot, "bootstrap_seed": seed}
    if rs.runs:
        sc = ev.score(rs, mine, name, n_boot, seed)
        return Scores(name, rs.manifest_file, sc.per_seed[sc.per_seed.model == name]
                      .reset_index(drop=True), sc.row(name).reset_index(drop=True), sc.intervals,
                      preds, sc.board, settings)
    per_seed = per_seed_table(mine, n_boot=n_boot, seed=seed)
    summary = comparison_table(mine, n_boot=n_boot, seed=seed, per_seed=per_seed)
    intervals = ev.interval_rows(mine, [], rs.manifest.set_index("id").group, n_boot, seed)
    return Scores(name, rs.manifest_file, per_seed, summary, intervals, preds, None, settings)


class _ManifestSet:
    """A manifest standing alone as a :class:`bench.reporting.outside.ResultsSet` (no runs)."""

    def __init__(self, runs: list, manifest: pd.DataFrame, sha: str, path: Path,
                 test_ids: tuple[str, ...]) -> None:
        self.runs, self.manifest, self.manifest_sha256 = runs, manifest, sha
        self.manifest_file, self.test_ids = path, test_ids
        self.data_kind = ""
        self.profile: dict = {}


def runs_table(runs: list) -> pd.DataFrame:
    """One row per :class:`bench.engine.runfolder.Run` (see :func:`load_runs`)."""
    import pandas as pd

    from bench.reporting.labels import configuration_labels
    from bench.reporting.tables import weights_label
    from bench.stats.metrics import METRIC_NAMES

    labels = configuration_labels(runs)
    rows = []
    for r in runs:
        s = r.settings
        label, table = labels.get(r.path.name, (r.model, ""))
        row: dict[str, Any] = {"run": r.path.name, "model": r.model,
                               "seed": r.seed, "configuration": label,
                               "table": table, "weights": weights_label(r),
                               "profile": r.record.profile_name,
                               "status": r.record.status,
                               "finished": r.record.finished}
        row.update({k: s.get(k) for k in KEY_SETTINGS})
        test = r.metrics.get("test", {})
        row.update({f"test_{k}": test.get(k, math.nan) for k in METRIC_NAMES})
        cv = r.metrics.get("cv") or {}
        row["cv_folds"] = cv.get("folds", 0)
        row.update({f"cv_{k}": cv.get("mean", {}).get(k, math.nan) for k in METRIC_NAMES})
        row.update({f"external_{n}_auc": (m.get("test") or {}).get("auc", math.nan)
                    for n, (_, m) in sorted(r.external.items())})
        row["settings"] = s
        row["path"] = str(r.path)
        rows.append(row)
    return pd.DataFrame(rows)


def load_runs(runs_dir: str | Path, *, skip_invalid: bool = False) -> pd.DataFrame:
    """Every finished run under ``runs_dir``, one row each, sorted by folder name: ``run`` (the
    folder), ``model``, ``seed``, ``configuration`` (its row's label in the report) and ``table``
    (where that row is, or why the run is in no table), ``weights``, ``profile``, the key settings
    (:data:`KEY_SETTINGS`), ``test_<metric>`` (held-out test, P ≥ 0.5), ``cv_<metric>`` (mean over
    CV folds; NaN without folds), ``external_<set>_auc``, the full ``settings`` and ``path``. A
    run whose files fail their recorded checksums stops with a one-line error unless
    ``skip_invalid``."""
    from bench.reporting.runs import load_runs as load_run_list

    return runs_table(load_run_list(Path(runs_dir).expanduser(), skip_invalid=skip_invalid))


def list_models() -> list[str]:
    """The registered model names (plugins' included), as ``python -m bench.list`` shows them."""
    from models.registry import list_models as names

    return names()


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """A registered model (:func:`models.registry.create_model`): ``kwargs`` go to its
    constructor, e.g. ``pretrained="none"`` (random init), ``"auto"`` or a weights file,
    ``in_chans``. An unknown name is a :class:`BenchError` that lists the names."""
    from bench.core.errors import BenchError
    from models.errors import UserError
    from models.registry import create_model as build

    try:
        return build(name, **kwargs)
    except BenchError:
        raise
    except UserError as exc:
        raise _error(str(exc)) from None


def export_mlflow(runs_dir: str | Path, tracking_uri: str | None = None, *,
                  experiment: str | None = None, skip_invalid: bool = False):
    """Every run under ``runs_dir`` as an MLflow run (:func:`bench.reporting.tracking.export_runs`;
    needs ``pip install -e ".[mlflow]"``). ``tracking_uri`` ``None``: a SQLite store in
    ``mlflow/`` beside ``runs_dir``. Exporting again updates changed runs and skips the rest."""
    from bench.reporting.tracking import export_runs

    return export_runs(Path(runs_dir).expanduser(), tracking_uri, experiment=experiment,
                       skip_invalid=skip_invalid)


__all__ = ["Scores", "create_model", "export_mlflow", "list_models", "load_manifest",
           "load_runs", "manifest_names", "manifest_path", "score_predictions"]
