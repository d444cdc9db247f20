"""Finished runs into an MLflow tracking store (docs/protocol.md, "Runs and profiles"); the command
is ``python -m bench.export mlflow`` (:mod:`bench.cli.export`), the Python call
:func:`export_runs` (also ``bench.api.export_mlflow``). Needs the ``mlflow`` extra
(``pip install -e ".[mlflow]"``: ``mlflow-skinny`` with SQLAlchemy and Alembic for its SQLite
store).

Each run folder becomes one MLflow run of the experiment (by default ``fus2bench/<set>``, the
folder above ``runs/``):

* params: the run's recorded settings, flattened (``model_kwargs.in_chans``), its profile and
  weights;
* metrics: ``test_<metric>`` (held-out test at P ≥ 0.5), ``cv_<metric>`` and ``cv_<metric>_sd``
  (mean and sd over the CV folds) with ``cv_fold_<metric>`` per fold as steps,
  ``external_<set>_<metric>``, and ``report_<column>`` from the run's row of the results set's
  ``tables/table3_per_seed.csv`` where the report was built (its clustered intervals);
* tags: model, seed, training-code version, configuration label (its row in the report),
  profile, data set, git revision, the run folder's name and config hash, and a digest of
  everything exported;
* artefacts: ``config.json``, ``metrics.json``, ``predictions.csv``, ``cv_metrics.csv``,
  ``compute.json``, the external sets', explanations' and reliance's records and tables, and
  under ``report/`` the run's rows of the report's per-seed table and ROC points.

Exporting again is idempotent: a run whose digest is unchanged is skipped, a changed one is
replaced (MLflow params cannot change), a new one added. The default store is SQLite in
``mlflow/`` beside ``runs_dir`` (``mlflow.db``, ``artifacts/``, and a ``.gitignore`` that keeps it
out of git), or ``$MLFLOW_TRACKING_URI`` when set; the run folders are only read.

Usage::

    python -m bench.export mlflow --runs results/busi-cpu/runs
    python -m bench.export mlflow --runs results/busi-cpu/runs --tracking-uri sqlite:////tmp/m.db

    from mlflow import MlflowClient
    MlflowClient("sqlite:///results/busi-cpu/mlflow/mlflow.db").search_runs(
        [exp_id], "tags.model = 'fus2net'")
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from bench.core.errors import BenchError, ensure_writable
from bench.engine.runfolder import Run
from bench.reporting.labels import configuration_labels
from bench.reporting.runs import load_runs
from bench.reporting.tables import flat_settings

INSTALL_HINT = 'pip install -e ".[mlflow]"'
RUN_TAG = "fus2bench.run"  # the run folder's name: what makes an export idempotent
DIGEST_TAG = "fus2bench.digest"  # SHA-256 of everything exported; set last
FORMAT = "1"  # bump when what is exported changes, so a new export replaces the old runs
# the stores MLflow's client writes to (a folder store only with MLFLOW_ALLOW_FILE_STORE)
STORE_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "file",
                 "")
MAX_PARAM = 6000  # MLflow's longest param value
BATCH = 100  # MLflow's most params or tags per log_batch


@dataclass
class ExportResult:
    """What :func:`export_runs` did: the store, the experiment and the runs by outcome."""

    tracking_uri: str
    experiment: str
    experiment_id: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return len(self.created) + len(self.updated) + len(self.skipped)


def default_tracking_uri(runs_dir: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite store in ``mlflow/`` beside ``runs_dir``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return "sqlite:///" + (runs_dir.resolve().parent / "mlflow" / "mlflow.db").as_posix()


def default_experiment(runs_dir: Path) -> str:
    """``fus2bench/<set>``: the folder that holds ``runs/`` (or the runs folder's own name)."""
    folder = runs_dir.resolve()
    return f"fus2bench/{folder.parent.name if folder.name == 'runs' else folder.name}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; ``None`` for other stores."""
    if not uri.startswith("sqlite:"):
        return None
    parsed = urlparse(uri)
    if not uri.startswith("sqlite:///") or not parsed.path.strip("/"):
        raise BenchError(f"`tracking_uri`={uri}: a SQLite store is sqlite:///relative/file.db or "
                         "sqlite:////absolute/file.db")
    return Path(unquote(parsed.path[1:]))


def _client_module():
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise BenchError(f"MLflow is not installed ({exc.name or 'mlflow'} is missing); install "
                         f"the extra with {INSTALL_HINT}") from None
    return MlflowClient, MlflowException, Metric, Param, RunTag


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's and Alembic's INFO lines (creating the SQLite tables) kept off the terminal."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _one_line(exc: BaseException) -> str:
    """The first sentence of an exception's message (MLflow's run on with links and advice)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text.split(". ")[0].rstrip(".")[:300]


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_PARAM]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
    value = float(value)
    return value if math.isfinite(value) else None


def run_params(run: Run) -> dict[str, str]:
    """The run's recorded settings, flattened, with its profile and weights."""
    params = {k: _text(v) for k, v in flat_settings(run.settings).items()}
    params["profile"] = _text(run.record.profile_name)
    params["weights_source"] = _text(run.record.weights)
    return params


def report_rows(run: Run, tables: Path | None) -> dict[str, pd.DataFrame]:
    """The run's rows of the report's per-seed table and ROC points (empty without a report)."""
    if tables is None or not (tables / "table3_per_seed.csv").is_file():
        return {}
    per_seed = pd.read_csv(tables / "table3_per_seed.csv", dtype={"run": str, "model": str})
    mine = per_seed[per_seed.run == run.path.name]
    if not len(mine):
        return {}
    out = {"table3_per_seed.csv": mine}
    roc = tables / "roc_points.csv"
    if roc.is_file():
        points = pd.read_csv(roc, dtype={"model": str})
        key = mine.iloc[0]
        out["roc_points.csv"] = points[(points.model == key.model) & (points.seed == key.seed)]
    return out


def run_metrics(run: Run, report: dict[str, pd.DataFrame]) -> list[tuple[str, float, int]]:
    """(name, value, step) of the run's test, CV, external and report numbers (finite only)."""
    out: list[tuple[str, float, int]] = []

    def add(name: str, value: Any, step: int = 0) -> None:
        v = _number(value)
        if v is not None:
            out.append((name.replace(" ", "_"), v, step))

    for k, v in (run.metrics.get("test") or {}).items():
        add(f"test_{k}", v)
    cv = run.metrics.get("cv") or {}
    for k, v in (cv.get("mean") or {}).items():
        add(f"cv_{k}", v)
    for k, v in (cv.get("sd") or {}).items():
        add(f"cv_{k}_sd", v)
    if len(run.cv) and "fold" in run.cv:
        for rec in run.cv.to_dict("records"):
            for k, v in rec.items():
                if k not in ("fold", "status"):
                    add(f"cv_fold_{k}", v, int(rec["fold"]))
    for name, (_, meta) in sorted(run.external.items()):
        for k, v in (meta.get("test") or {}).items():
            add(f"external_{name}_{k}", v)
    if "table3_per_seed.csv" in report:
        for k, v in report["table3_per_seed.csv"].iloc[0].items():
            if k not in ("seed", "run", "model", "weights", "status", "flag"):
                add(f"report_{k}", v)
    return out


def run_tags(run: Run, label: str, table: str) -> dict[str, str]:
    s, rec = run.record.settings, run.record
    tags = {"model": run.model, "seed": str(s.seed),
            "code_version": str(s.code_version or "unrecorded"),
            "configuration": label, "table": table,
            "profile": str(rec.profile_name),
            "data_kind": str(s.data_kind or ""), "status": str(rec.status),
            "git_revision": str(rec.git_revision or ""),
            RUN_TAG: run.path.name, "fus2bench.config_hash": str(rec.config_hash),
            "mlflow.runName": run.path.name}
    return {k: v[:MAX_PARAM] for k, v in tags.items()}


def artefact_files(run: Run) -> list[tuple[str, Path]]:
    """(path in the MLflow run, file) of the run's files to log, in a fixed order: its record
    files (:meth:`bench.engine.runfolder.RunFolder.record_files`; stages/ and weights are left
    out)."""
    return run.folder.record_files()


def digest(files: list[tuple[str, Path]], report: dict[str, pd.DataFrame], label: str,
           table: str) -> str:
    h = hashlib.sha256(f"fus2bench-mlflow {FORMAT}\0{label}\0{table}\0".encode())
    for name, path in files:
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    for name, frame in sorted(report.items()):
        h.update(name.encode() + b"\0" + frame.to_csv(index=False).encode() + b"\0")
    return h.hexdigest()


def _millis(stamp: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


class _Store:
    """An MLflow client on one tracking URI and experiment, its errors said in one line."""

    def __init__(self, uri: str, experiment: str, artifact_root: Path | None) -> None:
        client_cls, self.error, self.Metric, self.Param, self.RunTag = _client_module()
        self.uri = uri
        with self.calling("open the store"):
            self.client = client_cls(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                location = (artifact_root / "artifacts").as_uri() if artifact_root else None
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=location)
            else:
                if exp.lifecycle_stage == "deleted":
                    self.client.restore_experiment(exp.experiment_id)
                self.experiment_id = exp.experiment_id

    @contextmanager
    def calling(self, what: str) -> Iterator[None]:
        try:
            with _quiet():
                yield
        except BenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - MLflow, SQLAlchemy or the network: one line
            raise BenchError(f"`tracking_uri`={self.uri}: cannot {what} "
                             f"({type(exc).__name__}: {_one_line(exc)})") from None

    def exported(self) -> dict[str, list[Any]]:
        """The experiment's active MLflow runs by run folder name."""
        out: dict[str, list[Any]] = {}
        token = None
        with self.calling("read its runs"):
            while True:
                page = self.client.search_runs([self.experiment_id],
                                               filter_string=f"tags.`{RUN_TAG}` != ''",
                                               max_results=1000, page_token=token)
                for r in page:
                    out.setdefault(r.data.tags.get(RUN_TAG, ""), []).append(r)
                token = page.token
                if not token:
                    return out

    def write(self, run: Run, tags: dict[str, str], params: dict[str, str],
              metrics: list[tuple[str, float, int]], files: list[tuple[str, Path]],
              report: dict[str, pd.DataFrame], sha: str) -> None:
        start = _millis(run.record.started) or _millis(run.record.finished)
        end = _millis(run.record.finished)
        stamp = end or int(time.time() * 1000)
        with self.calling(f"write run {run.path.name}"):
            mr = self.client.create_run(self.experiment_id, start_time=start, tags=tags,
                                        run_name=run.path.name)
            rid = mr.info.run_id
            p = [self.Param(k, v) for k, v in sorted(params.items())]
            m = [self.Metric(k, v, stamp, step) for k, v, step in metrics]
            for i in range(0, len(p), BATCH):
                self.client.log_batch(rid, params=p[i:i + BATCH])
            for i in range(0, len(m), 10 * BATCH):
                self.client.log_batch(rid, metrics=m[i:i + 10 * BATCH])
            with tempfile.TemporaryDirectory(prefix="fus2bench-mlflow-") as tmp:
                stage = Path(tmp)
                for name, path in files:
                    (stage / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, stage / name)
                for name, frame in report.items():
                    (stage / "report").mkdir(exist_ok=True)
                    frame.to_csv(stage / "report" / name, index=False)
                self.client.log_artifacts(rid, str(stage))
            self.client.set_tag(rid, DIGEST_TAG, sha)  # last: a half-written run has none
            self.client.set_terminated(rid, "FINISHED" if run.record.status == "complete"
                                       else "FAILED", end_time=end)

    def delete(self, runs: list[Any]) -> None:
        with self.calling("replace an exported run"):
            for r in runs:
                self.client.delete_run(r.info.run_id)


def _reachable(uri: str, timeout: float = 5.0) -> None:
    """A tracking server answers at ``uri``'s host and port (MLflow itself retries for minutes)."""
    parsed = urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            pass
    except OSError as exc:
        raise BenchError(f"`tracking_uri`={uri}: no server answers at {parsed.hostname}:{port} "
                         f"({type(exc).__name__}); start it (mlflow server) or give "
                         "sqlite:///FILE.db") from None


def open_tracking_uri(uri: str, default: bool) -> Path | None:
    """Checks a tracking URI before MLflow opens it; for a SQLite store its folder (made when
    missing; the default one holds a ``.gitignore`` of everything), else ``None``."""
    uri = uri.strip()
    if not uri:
        raise BenchError("`tracking_uri` is empty; give sqlite:///FILE.db, a server's http(s) "
                         "address or leave it out for the default store")
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("", "file") and not os.environ.get("MLFLOW_ALLOW_FILE_STORE"):
        raise BenchError(f"`tracking_uri`={uri}: MLflow 3 no longer writes folder (file:) "
                         "stores; give sqlite:///FILE.db, or leave it out for the default store")
    if scheme not in STORE_SCHEMES:
        raise BenchError(f"`tracking_uri`={uri}: not a tracking store MLflow writes to; give "
                         f"sqlite:///FILE.db or a server's http(s) address")
    if scheme in ("http", "https"):
        _reachable(uri)
    db = sqlite_path(uri)
    if db is None:
        return None
    folder = db.resolve().parent
    ensure_writable(folder, "`tracking_uri`")
    if db.exists() and not db.is_file():
        raise BenchError(f"`tracking_uri`={uri}: {db} is a folder, not a database file")
    if default and not (folder / ".gitignore").exists():
        (folder / ".gitignore").write_text("# the MLflow store of python -m bench.export\n*\n")
    return folder


def export_runs(runs_dir: Path, tracking_uri: str | None = None, *,
                experiment: str | None = None, skip_invalid: bool = False,
                progress=None) -> ExportResult:
    """Every finished run under ``runs_dir`` into the MLflow store at ``tracking_uri`` (module
    docstring); ``progress(k, n, name, outcome)`` is called after each run."""
    began = time.monotonic()
    runs = load_runs(runs_dir, skip_invalid=skip_invalid)
    _client_module()  # the install hint before anything is written
    uri = tracking_uri if tracking_uri is not None else default_tracking_uri(runs_dir)
    root = open_tracking_uri(uri, default=tracking_uri is None and
                             "MLFLOW_TRACKING_URI" not in os.environ)
    name = experiment if experiment is not None else default_experiment(runs_dir)
    if not name.strip():
        raise BenchError("`experiment` is empty; give an experiment name or leave it out")
    store = _Store(uri, name, root)
    result = ExportResult(uri, name, store.experiment_id)
    existing = store.exported()
    labels = configuration_labels(runs)
    tables = runs_dir.resolve().parent / "tables"
    for k, run in enumerate(runs):
        label, table = labels.get(run.path.name, (run.model, ""))
        report = report_rows(run, tables if tables.is_dir() else None)
        files = artefact_files(run)
        sha = digest(files, report, label, table)
        old = existing.get(run.path.name, [])
        if len(old) == 1 and old[0].data.tags.get(DIGEST_TAG) == sha:
            result.skipped.append(run.path.name)
            outcome = "unchanged"
        else:
            store.delete(old)
            store.write(run, run_tags(run, label, table), run_params(run),
                        run_metrics(run, report), files, report, sha)
            (result.updated if old else result.created).append(run.path.name)
            outcome = "updated" if old else "new"
        if progress is not None:
            progress(k + 1, len(runs), run.path.name, outcome)
    result.seconds = time.monotonic() - began
    return result
