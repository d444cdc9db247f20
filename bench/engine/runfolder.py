"""The run folder: the one module that writes, records, verifies and reads it (docs/protocol.md,
"Runs and profiles").

A run folder ``<out>/<model>-<data>-<config hash>/`` holds:

* ``config.json``: the record (settings, versions, device, timings, ``status`` running → complete
  or failed) and, once finished, ``outputs``: the SHA-256 of every file in :data:`RUN_OUTPUTS`
  the run wrote;
* ``predictions.csv``, ``metrics.json``, ``cv_metrics.csv``, ``model.safetensors``, ``split.csv``
  and (generated splits) ``split_report.json``; an all-image run (``evaluation`` allcv,
  :mod:`bench.engine.allimage`) has ``allcv_predictions.csv`` (every usable image, scored by
  the fold that held it out) in place of ``predictions.csv``, ``cv_metrics.csv`` and the weights;
* ``stages/<stage>/``: each stage's files and ``done.json`` (the run's config hash and the files'
  SHA-256) or ``failed.json`` (:class:`StageFolder`);
* add-ons written later by other commands: ``external/<set>/`` (predictions, ``metrics.json`` with
  ``predictions_sha256``), ``explain/<method>/`` (``info.json`` with ``files`` checksums),
  ``reliance/`` and ``illustrations.npz``/``.csv``; ``compute.json`` records how long each add-on
  took (:meth:`RunFolder.timed`), so a results set can state its whole compute time.

Every file is written atomically (:mod:`bench.core.atomic`). :meth:`RunFolder.problem` is the one
rule set for recorded checksums, used before a run is reused and when it is read
(:meth:`RunFolder.load`, the :class:`Run` the report and the evaluations use).

Readers get the record typed: :attr:`Run.record` (:class:`RunRecord`, ``config.json``'s fields),
:attr:`Run.spec` (:meth:`bench.engine.spec.RunSpec.from_dict`), and every file through a method
of :class:`RunFolder` or :class:`Run`; no other module builds a path inside a run folder.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.atomic import write_atomic, write_csv, write_json, write_npz
from bench.core.enums import StrEnum
from bench.core.errors import BenchError, plain
from bench.core.provenance import file_sha256
from bench.engine.spec import RecordedSettings, RunSpec

CONFIG = "config.json"
COMPUTE = "compute.json"
PREDICTIONS, METRICS, CV_METRICS = "predictions.csv", "metrics.json", "cv_metrics.csv"
SPLIT, SPLIT_REPORT = "split.csv", "split_report.json"
RELIANCE, RELIANCE_IMAGES = "reliance.json", "images.csv"  # in reliance/
INSERTION, INSERTION_IMAGES = "insertion.json", "insertion.csv"  # in reliance/: with controls
_INSERTION_TEXT = ("direction", "id", "group", "donor", "donor_group", "same_donor", "same_group")
_INSERTION_NUMBERS = ("prob_cleaned", "shift_cross", "shift_same", "shift_random")
CAM_METRICS, MAPS = "cam_metrics.csv", "maps.npz"  # in explain/<method>/
ILLUSTRATIONS = "illustrations"  # .npz (the arrays) and .csv (the views' parameters)
ILLUSTRATED_TRANSFORMS = "illustrations_ultrasound.csv"  # the ultrasound views' names
WEIGHTS = "model.safetensors"
ALLCV_PREDICTIONS = "allcv_predictions.csv"  # an all-image run's predictions
# Every file a finished run promises, checksummed in config.json's ``outputs`` (stage files are
# checksummed in each stage's done.json).
RUN_OUTPUTS = (PREDICTIONS, METRICS, CV_METRICS, WEIGHTS, SPLIT, SPLIT_REPORT, ALLCV_PREDICTIONS)
# the columns of every predictions.csv (the run's, a stage's; an external set's add ``group`` and
# ``training_copy``): ``split`` is val (a CV fold's held-out part) or test, ``fold`` the CV fold
# (-1: the final fit)
PRED_COLUMNS = ["id", "path", "label", "prob_malignant", "split", "fold"]
PRED_DTYPES = {"id": str, "path": str}
SKIP_HINT = "or pass `skip_invalid` to leave it out"


class RunStatus(StrEnum):
    """``config.json``'s ``status`` (and what :func:`bench.engine.runner.run` reports)."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    REUSED = "reused"  # a run result only: an earlier finished run of the same configuration


class InvalidRun(BenchError):
    """A run folder whose recorded outputs were changed after the run."""


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _checksum_state(path: Path, sha: str) -> str | None:
    """``None`` when ``path`` has checksum ``sha``; else how it fails."""
    if not path.is_file():
        return "is missing"
    return None if file_sha256(path) == sha else "does not match its checksum"


class StageFolder:
    """``stages/<name>/``: one stage's predictions, metrics, weights and ``done.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name

    def valid(self, run_hash: str) -> bool:
        """``done.json`` matches the run and every file its checksum."""
        info = _read_json(self.path / "done.json")
        try:
            return info is not None and info.get("config_hash") == run_hash and all(
                _checksum_state(self.path / n, sha) is None for n, sha in info["files"].items())
        except (KeyError, AttributeError):
            return False

    def read(self) -> tuple[pd.DataFrame, dict]:
        preds = pd.read_csv(self.path / PREDICTIONS, dtype=PRED_DTYPES)
        return preds, json.loads((self.path / METRICS).read_text())

    def record(self) -> dict | None:
        """``done.json`` (``None`` when the stage is not done)."""
        return _read_json(self.path / "done.json")

    def start(self) -> None:
        """A stage about to train is no longer done."""
        (self.path / "done.json").unlink(missing_ok=True)

    def write_failed(self, record: dict) -> None:
        write_json(self.path / "failed.json", record)

    def write_done(self, run_hash: str, preds: pd.DataFrame, metrics: dict, state: dict | None,
                   info: dict) -> None:
        """The stage's files, ``done.json`` last (with their checksums)."""
        from safetensors.torch import save_file

        write_csv(self.path / "predictions.csv", preds)
        write_json(self.path / "metrics.json", metrics)
        files = ["predictions.csv", "metrics.json"]
        if state is not None:
            write_atomic(self.path / WEIGHTS, lambda p: save_file(state, str(p)))
            files.append(WEIGHTS)
        (self.path / "failed.json").unlink(missing_ok=True)
        write_json(self.path / "done.json", {"config_hash": run_hash, "stage": self.name, **info,
                                             "files": {n: file_sha256(self.path / n)
                                                       for n in files}})


class RecordedFolder:
    """An add-on folder whose record (``info.json``) lists its files' SHA-256 under ``files``."""

    def __init__(self, path: Path, record: str = "info.json") -> None:
        self.path, self.record = path, record

    def matches(self, info: dict) -> bool:
        """Written with ``info`` (files aside) and its recorded files intact."""
        old = _read_json(self.path / self.record)
        if old is None:
            return False
        files = old.pop("files", {})
        return old == info and all(_checksum_state(self.path / n, sha) is None
                                   for n, sha in files.items())

    def write(self, info: dict, writers: dict[str, Callable[[Path], object]],
              checksummed: tuple[str, ...]) -> None:
        """Each ``writers[name](path)``, then the record with the ``checksummed`` files' SHA-256."""
        for name, writer in writers.items():
            writer(self.path / name)
        write_json(self.path / self.record,
                   {**info, "files": {n: file_sha256(self.path / n) for n in checksummed}})

    @property
    def name(self) -> str:
        return self.path.name

    def read_table(self, name: str = CAM_METRICS) -> pd.DataFrame | None:
        """A table of the folder (an explanation's ``cam_metrics.csv``: one row per image);
        ``None`` when it was not written."""
        path = self.path / name
        return pd.read_csv(path, dtype={"id": str}) if path.is_file() else None

    def read_arrays(self, *keys: str, name: str = MAPS) -> dict[str, np.ndarray] | None:
        """The arrays ``keys`` of the folder's ``.npz`` (an explanation's ``maps.npz``: per image
        set ``<set>/maps``, ``/images``, ``/masks``, ``/ids``; results sets commit none);
        ``None`` when it is absent."""
        path = self.path / name
        if not path.is_file():
            return None
        with np.load(path) as npz:
            return {k: npz[k] for k in keys}

    def verify(self, where: str, remedy: str) -> None:
        """The files the record lists must still have their SHA-256 (records without the list,
        made by older versions, are not checked)."""
        try:
            files = json.loads((self.path / self.record).read_text()).get("files", {})
        except (OSError, ValueError):
            raise InvalidRun(f"{where}/{self.record}: not valid JSON; {remedy}") from None
        for name, sha in files.items():
            state = _checksum_state(self.path / name, sha)
            if state is not None:
                raise InvalidRun(f"{where}/{name} {state} in {self.record} (changed after it was "
                                 f"written); {remedy}, or pass `skip_invalid` to leave the "
                                 "run out")


class ExternalFolder:
    """``external/<set>/``: an external set's ``predictions.csv`` and ``metrics.json`` (which
    records the predictions' SHA-256), and the contact sheet of its training copies."""

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, path.name
        self.metrics_path = path / "metrics.json"
        self.predictions_path = path / "predictions.csv"

    def record(self) -> dict | None:
        return _read_json(self.metrics_path) if self.metrics_path.is_file() else None

    def reusable(self, content_sha: str, weights_sha: str) -> dict | None:
        """The record, when it scored these images with these weights and is intact."""
        old = self.record()
        if old is None or not self.predictions_path.is_file():
            return None
        same = old.get("content_sha256") == content_sha and \
            old.get("weights_sha256") == weights_sha and \
            old.get("predictions_sha256") == file_sha256(self.predictions_path)
        return old if same else None

    def write(self, preds: pd.DataFrame, metrics: dict) -> dict:
        """Predictions, then ``metrics.json`` with their SHA-256 (the readers verify it)."""
        write_csv(self.predictions_path, preds)
        metrics["predictions_sha256"] = file_sha256(self.predictions_path)
        write_json(self.metrics_path, metrics)
        return metrics

    def load(self, where: str) -> tuple[pd.DataFrame, dict]:
        """Verified predictions and record."""
        try:
            meta = json.loads(self.metrics_path.read_text())
            if meta.get("predictions_sha256") != file_sha256(self.predictions_path):
                state = "has no recorded checksum (scored by an older version)" \
                    if "predictions_sha256" not in meta else "does not match its checksum"
                raise InvalidRun(f"{where}/predictions.csv {state} in metrics.json (changed "
                                 "after it was scored?); score it again with `external`, or pass "
                                 "`skip_invalid` to leave the run out")
            preds = pd.read_csv(self.predictions_path,
                                dtype={"id": str, "path": str, "group": str},
                                keep_default_na=False)
        except (OSError, ValueError) as exc:
            raise InvalidRun(f"{where}: cannot read it ({type(exc).__name__}); score it again "
                             "with `external`") from None
        check_predictions(preds, f"{where}/predictions.csv")
        return preds, meta


class RunFolder:
    """One run folder: every producer and consumer of its files goes through it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name

    @property
    def weights(self) -> Path:
        """``model.safetensors``: the final fit's weights (absent from results sets)."""
        return self.path / WEIGHTS

    @property
    def predictions_file(self) -> Path:
        """``predictions.csv`` (for readers that check it as outside predictions)."""
        return self.path / PREDICTIONS

    @property
    def split_file(self) -> Path:
        """``split.csv``: the manifest the run used (for readers that check it as a manifest)."""
        return self.path / SPLIT

    @property
    def lock_file(self) -> Path:
        """Held while a process trains this run (:func:`bench.core.atomic.exclusive`)."""
        return self.path / ".lock"

    # --- the record and the run's own outputs ---------------------------------------------------

    def has_config(self) -> bool:
        """A run folder: ``config.json`` is here (a run started in it)."""
        return (self.path / CONFIG).is_file()

    def read_config(self) -> dict | None:
        """``config.json``, or ``None`` when it is absent, not JSON or not an object."""
        config = _read_json(self.path / CONFIG)
        return config if isinstance(config, dict) else None

    def write_config(self, record: dict) -> None:
        write_json(self.path / CONFIG, record)

    def write_results(self, preds: pd.DataFrame, cv: pd.DataFrame, metrics: dict) -> None:
        """The run's ``predictions.csv`` (:data:`PRED_COLUMNS`), ``cv_metrics.csv`` and
        ``metrics.json``."""
        write_csv(self.path / PREDICTIONS, preds)
        write_csv(self.path / CV_METRICS, cv)
        write_json(self.path / METRICS, metrics)

    def write_split(self, manifest: pd.DataFrame, report: dict | None) -> None:
        """``split.csv`` and, for a split generated by the run, ``split_report.json``."""
        write_csv(self.path / SPLIT, manifest)
        if report is not None:
            write_json(self.path / SPLIT_REPORT, report)

    def write_allcv_results(self, preds: pd.DataFrame, metrics: dict) -> None:
        """An all-image run's predictions (every usable image once: :mod:`bench.engine.allimage`)
        and its ``metrics.json``."""
        write_csv(self.path / ALLCV_PREDICTIONS, preds)
        write_json(self.path / METRICS, metrics)

    def read_metrics(self) -> dict:
        return json.loads((self.path / METRICS).read_text())

    def read_predictions(self) -> pd.DataFrame:
        """``predictions.csv`` (:data:`PRED_COLUMNS`; ids and paths as text)."""
        return pd.read_csv(self.path / PREDICTIONS, dtype=PRED_DTYPES)

    def read_split_report(self) -> dict | None:
        """``split_report.json`` of a run that generated its split (``None``: a given split)."""
        return _read_json(self.path / SPLIT_REPORT)

    def keep_final_weights(self) -> None:
        """The final fit's weights as the run's ``model.safetensors`` (when it has them)."""
        final = self.stage("final").path / WEIGHTS
        if final.is_file():
            write_atomic(self.path / WEIGHTS, lambda q: shutil.copyfile(final, q))

    def record_outputs(self) -> dict[str, str]:
        """``outputs`` for ``config.json``: SHA-256 of each of :data:`RUN_OUTPUTS` present."""
        return {n: file_sha256(self.path / n) for n in RUN_OUTPUTS if (self.path / n).is_file()}

    def stage(self, name: str) -> StageFolder:
        return StageFolder(self.path / "stages" / name)

    # --- verification: one rule set -------------------------------------------------------------

    def problem(self, config: dict, run_hash: str | None = None) -> tuple[str, str] | None:
        """The first recorded file that is wrong, as ``(file, how)`` (how: ``is missing`` or
        ``does not match its checksum``; a stage: ``stages/<name>``); ``None``: all intact.

        Every output in ``outputs`` must have its SHA-256. The weights may be absent when the run
        is only read (``run_hash`` None: results sets commit none, and readers that need them say
        so); a run to be reused (``run_hash`` given) needs them, and every stage it timed must be
        intact for that hash."""
        for name, sha in config.get("outputs", {}).items():
            if name == WEIGHTS and run_hash is None and not (self.path / name).exists():
                continue
            state = _checksum_state(self.path / name, sha)
            if state is not None:
                return name, state
        if run_hash is not None:
            for stage in config.get("timings", {}).get("stages", {}):
                if not self.stage(stage).valid(run_hash):
                    return f"stages/{stage}", "does not match its checksums"
        return None

    def reusable(self, run_hash: str) -> tuple[bool, str | None]:
        """Whether this folder holds a complete run of ``run_hash`` with every output, stage
        files included, intact; and what is wrong with a complete run that is not."""
        cfg = self.read_config()
        if cfg is None or cfg.get("status") != RunStatus.COMPLETE or \
                cfg.get("config_hash") != run_hash or config_problem(cfg) is not None:
            return False, None
        problem = self.problem(cfg, run_hash)
        if problem is None:
            return True, None
        name, state = problem
        if name.startswith("stages/"):
            return False, (f"stage {name.split('/', 1)[1]}'s files are missing or do not match "
                           "their checksums")
        return False, f"{name} {state.replace('its checksum', 'its recorded checksum')}"

    def verify(self, config: dict) -> None:
        """Raise :class:`InvalidRun` when a recorded output was changed after the run."""
        problem = self.problem(config)
        if problem is not None:
            name, state = problem
            raise InvalidRun(f"{self.name}/{name} {state} in config.json (changed, truncated "
                             "or deleted after the run); rerun that run, or pass "
                             "`skip_invalid` to leave it out of the report")

    # --- add-ons --------------------------------------------------------------------------------

    def external(self, name: str) -> ExternalFolder:
        return ExternalFolder(self.path / "external" / name)

    def external_sets(self) -> list[ExternalFolder]:
        """The scored external sets (those with a ``metrics.json``), by name."""
        return [ExternalFolder(p.parent) for p in sorted(self.path.glob("external/*/metrics.json"))]

    def adapted_sets(self) -> list[tuple[str, str, ExternalFolder]]:
        """The external sets scored with BatchNorm adapted (``external/<set>/adapt-bn-<mode>/``,
        bench.engine.adaptation): (set, mode, folder), by set and mode."""
        return [(p.parent.parent.name, p.parent.name.removeprefix("adapt-bn-"),
                 ExternalFolder(p.parent))
                for p in sorted(self.path.glob("external/*/adapt-bn-*/metrics.json"))]

    def explain(self, method: str) -> RecordedFolder:
        """``explain/<method>/``: ``info.json``, ``cam_metrics.csv`` and ``maps.npz``."""
        return RecordedFolder(self.path / "explain" / method)

    def explanations(self) -> list[RecordedFolder]:
        return [RecordedFolder(p.parent) for p in sorted(self.path.glob("explain/*/info.json"))]

    @property
    def reliance_dir(self) -> Path:
        return self.path / "reliance"

    def reliance_record(self) -> dict | None:
        return _read_json(self.reliance_dir / RELIANCE)

    def reliance_images(self) -> pd.DataFrame | None:
        """The per-image reliance table of a measured run (``None`` when not measured)."""
        if not (self.reliance_dir / RELIANCE).is_file() or \
                not (self.reliance_dir / RELIANCE_IMAGES).is_file():
            return None
        return pd.read_csv(self.reliance_dir / RELIANCE_IMAGES, dtype={"id": str, "group": str},
                           keep_default_na=False, na_values={"insertion_shift": [""]})

    def write_reliance(self, result: dict, images: pd.DataFrame) -> None:
        write_csv(self.reliance_dir / RELIANCE_IMAGES, images)
        write_json(self.reliance_dir / RELIANCE, result)

    def insertion_record(self) -> dict | None:
        """``reliance/insertion.json``: the insertion test with its controls (``None`` when not
        measured): ``info``, ``run``, ``model``, ``seed``, ``annotations`` and per image set
        ``{direction: {control: effect}}`` (:mod:`bench.evaluation.insertion`)."""
        if not (self.reliance_dir / INSERTION_IMAGES).is_file():
            return None
        return _read_json(self.reliance_dir / INSERTION)

    def insertion_images(self) -> pd.DataFrame | None:
        """The per-target table of the insertion test with its controls, with a ``set`` column
        (``None`` when not measured)."""
        if not (self.reliance_dir / INSERTION).is_file() or \
                not (self.reliance_dir / INSERTION_IMAGES).is_file():
            return None
        return pd.read_csv(self.reliance_dir / INSERTION_IMAGES,
                           dtype={c: str for c in (*_INSERTION_TEXT, "set")},
                           keep_default_na=False, na_values={c: [""] for c in _INSERTION_NUMBERS})

    def write_insertion(self, result: dict, table: pd.DataFrame) -> None:
        """The insertion test with its controls: the per-target table first, the record last."""
        write_csv(self.reliance_dir / INSERTION_IMAGES, table)
        write_json(self.reliance_dir / INSERTION, result)

    def compute_record(self) -> dict[str, dict]:
        """``compute.json``: add-on step → ``{"seconds", "finished", "threads"}`` (empty when none ran)."""
        return _read_json(self.path / COMPUTE) or {}

    def addon_steps(self) -> list[str]:
        """The add-on steps this folder holds outputs of, named as :meth:`timed` records them."""
        steps = [f"explain/{f.path.name}" for f in self.explanations()]
        steps += [f"external/{f.path.name}" for f in self.external_sets()]
        steps += [f"external/{name}/{f.path.name}" for name, _, f in self.adapted_sets()]
        if (self.reliance_dir / RELIANCE).is_file():
            steps.append("reliance")
        if (self.reliance_dir / INSERTION).is_file():
            steps.append("reliance/insertion")
        if self.illustrations.with_suffix(".csv").is_file():
            steps.append("illustrations")
        return sorted(steps)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Record in ``compute.json`` how long the add-on ``step`` (``explain/gradcam``,
        ``reliance``, ``reliance/insertion``, ``external/<set>``, ``illustrations``) took when its block finishes; a step
        done again replaces its entry. A block that raises records nothing."""
        import torch  # the add-ons all run torch; the folder's readers need not import it

        t0 = time.perf_counter()
        yield
        record = self.compute_record()
        record[step] = {"seconds": round(time.perf_counter() - t0, 2),
                        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "threads": torch.get_num_threads()}
        write_json(self.path / COMPUTE, dict(sorted(record.items())))

    @property
    def illustrations(self) -> Path:
        return self.path / f"{ILLUSTRATIONS}.npz"

    def illustration_params(self) -> pd.DataFrame | None:
        """``illustrations.csv``: the augmentation parameters of each illustrated view (committed
        with results sets); ``None`` when the run was not illustrated."""
        path = self.illustrations.with_suffix(".csv")
        return pd.read_csv(path, dtype={"id": str}) if path.is_file() else None

    def illustration_arrays(self) -> dict[str, np.ndarray]:
        """``illustrations.npz``'s arrays (empty when absent: results sets commit only the
        table)."""
        if not self.illustrations.is_file():
            return {}
        with np.load(self.illustrations) as z:
            return {k: z[k] for k in z.files}

    def illustration_transforms(self) -> list[str]:
        """What each ``--augment ultrasound`` view of the illustrations shows
        (``illustrations_ultrasound.csv``, committed with results sets like the parameters; the
        arrays' ``ultrasound_names`` for a run illustrated before it was written); empty when the
        run's illustrations have no ultrasound views."""
        path = self.path / ILLUSTRATED_TRANSFORMS
        if path.is_file():
            return pd.read_csv(path, dtype=str, keep_default_na=False)["transform"].tolist()
        return [str(n) for n in self.illustration_arrays().get("ultrasound_names", [])]

    def write_illustrations(self, arrays: dict[str, np.ndarray], params: pd.DataFrame) -> Path:
        write_npz(self.illustrations, arrays)
        write_csv(self.illustrations.with_suffix(".csv"), params)  # committed; the arrays are not
        names = [str(n) for n in arrays.get("ultrasound_names", [])]
        if names:  # committed too: the report says which transforms its figure shows without them
            write_csv(self.path / ILLUSTRATED_TRANSFORMS, pd.DataFrame({"transform": names}))
        else:
            (self.path / ILLUSTRATED_TRANSFORMS).unlink(missing_ok=True)
        return self.illustrations

    def record_files(self) -> list[tuple[str, Path]]:
        """``(name in the folder, file)`` of every file that records the run and its add-ons (the
        JSON and CSV files: no weights, arrays or stage files), in a fixed order (what an export
        logs)."""
        files = [(n, self.path / n) for n in (CONFIG, METRICS, PREDICTIONS, CV_METRICS, COMPUTE,
                                              f"{ILLUSTRATIONS}.csv", ILLUSTRATED_TRANSFORMS)
                 if (self.path / n).is_file()]
        for folder in ("external", "explain", "reliance"):
            base = self.path / folder
            if base.is_dir():
                files += [(f.relative_to(self.path).as_posix(), f) for f in sorted(base.rglob("*"))
                          if f.is_file() and f.suffix in (".json", ".csv")]
        return files

    def read_split(self) -> pd.DataFrame:
        """``split.csv`` (empty for runs without one)."""
        path = self.path / SPLIT
        if not path.is_file():
            return pd.DataFrame()
        try:
            return pd.read_csv(path, dtype={"id": str, "path": str, "group": str},
                               keep_default_na=False)
        except (OSError, ValueError):
            raise InvalidRun(f"{self.name}: cannot read split.csv; rerun that run, or pass "
                             "`skip_invalid` to leave it out") from None

    # --- reading --------------------------------------------------------------------------------

    def load(self) -> Run | None:
        """A finished run (complete or failed), verified; ``None`` when there is none here."""
        cfg_path = self.path / CONFIG
        if not cfg_path.is_file():
            return None
        try:
            config = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as exc:
            what = "not valid JSON (truncated?)" if isinstance(exc, ValueError) else \
                f"cannot read it ({exc.strerror})"
            raise InvalidRun(f"{self.name}/{CONFIG}: {what}; rerun that run or delete its "
                             f"folder, {SKIP_HINT}") from None
        if not isinstance(config, dict):
            raise InvalidRun(f"{self.name}/{CONFIG}: a JSON {_json_type(config)}, not a run's "
                             f"record (an object); rerun that run or delete its folder, "
                             f"{SKIP_HINT}")
        if config.get("status") not in (RunStatus.COMPLETE, RunStatus.FAILED):
            return None
        problem = config_problem(config)
        if problem is not None:
            raise InvalidRun(f"{self.name}/{CONFIG}: {problem}; rerun that run or delete its "
                             f"folder, {SKIP_HINT}")
        self.verify(config)
        metrics, preds, cv = self._read_results(
            ALLCV_PREDICTIONS if _allcv(config) else PREDICTIONS)
        test = preds[preds.split == "test"]
        if len(test) and test.label.nunique() < 2:
            raise InvalidRun(f"{self.name}: its test set has only "
                             f"{'malignant' if test.label.iloc[0] == 1 else 'benign'} images, so "
                             "AUC, sensitivity and specificity are undefined; rerun it on a split "
                             "with both classes, or pass `skip_invalid` to leave it out")
        check_predictions(preds, f"{self.name}/{ALLCV_PREDICTIONS if _allcv(config) else PREDICTIONS}")
        split = self.read_split()
        external = {e.name: e.load(f"{self.name}/external/{e.name}") for e in self.external_sets()}
        adapted = {(name, mode): e.load(f"{self.name}/external/{name}/{e.name}")
                   for name, mode, e in self.adapted_sets()}
        for folder in self.explanations():
            folder.verify(f"{self.name}/explain/{folder.path.name}",
                          "rerun python -m bench.explain on it")
        return Run(self.path, config, metrics, attach_groups(preds, split), cv, external, split,
                   adapted)

    def _read_results(self, predictions: str = "predictions.csv"
                      ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
        try:
            metrics = self.read_metrics()
            preds = pd.read_csv(self.path / predictions, dtype=PRED_DTYPES)
            cv_path = self.path / CV_METRICS
            cv = pd.read_csv(cv_path) if cv_path.is_file() and cv_path.stat().st_size > 1 \
                else pd.DataFrame()
        except (OSError, ValueError) as exc:
            name = getattr(exc, "filename", None) or "a result file"
            raise InvalidRun(f"{self.name}: cannot read {Path(name).name} "
                             f"({type(exc).__name__}); rerun that run, or pass "
                             "`skip_invalid` to leave it out of the report") from None
        return metrics, preds, cv

    def unloaded_reason(self) -> str:
        """Why :meth:`load` gave ``None`` (said by the report, never silent)."""
        cfg = self.read_config()
        if cfg is None:
            return (f"{self.name}: no config.json (not a run folder, or a run that never started "
                    "or whose record was deleted); left out")
        return (f"{self.name}: not finished (status {cfg.get('status')!r}: interrupted, or still "
                "running); left out — rerun its command to finish it")


@dataclass(frozen=True)
class RunRecord:
    """``config.json`` as typed fields (what :class:`bench.engine.runner` records): the run's
    settings (:class:`RecordedSettings`; the full :class:`RunSpec` is :attr:`Run.spec`), its status
    and times, the command, provenance and the records of its profile, model and device. A key
    the record lacks (older versions, hand-made records) reads as the field's default."""

    settings: RecordedSettings
    status: str | None = None
    config_hash: str = ""
    started: str | None = None
    finished: str = ""
    command: str = ""  # as typed (paths portable)
    git_revision: str | None = None
    weights: str = "random"  # the provenance of the initial weights (RunSpec.weights)
    profile: dict = field(default_factory=dict)  # the profile's settings, with its ``name``
    overrides: dict | None = None  # the profile and recipe settings the request overrode
    model_config: dict = field(default_factory=dict)  # models.ModelConfig as recorded
    model_origin: dict | None = None  # a model from a file, module or plugin: where from
    model_stats: dict = field(default_factory=dict)  # params, gflops
    device: dict = field(default_factory=dict)  # device, threads, CPU …
    versions: dict = field(default_factory=dict)  # python, torch, … (bench.core.provenance)
    timings: dict = field(default_factory=dict)  # total_s, stages
    data: dict = field(default_factory=dict)  # name, path, split_source …
    outputs: dict = field(default_factory=dict)  # file → SHA-256 (RUN_OUTPUTS)

    @classmethod
    def from_dict(cls, config: dict) -> RunRecord:
        """A ``config.json`` that passed :func:`config_problem`."""
        names = {f.name for f in fields(cls)} - {"settings"}
        return cls(settings=RecordedSettings.from_dict(config["settings"]),
                   **{k: v for k, v in config.items() if k in names})

    @property
    def profile_name(self) -> str | None:
        return self.profile.get("name")

    @property
    def pretrained(self) -> str | None:
        """The model's own pretraining (``imagenet`` for transfer models; ``none``)."""
        return self.model_config.get("pretrained")


@dataclass
class Run:
    """One finished run folder, as read by :meth:`RunFolder.load`: its typed record
    (:attr:`record`, :attr:`spec`) beside the raw ``config.json`` and its results."""

    path: Path
    config: dict
    metrics: dict
    predictions: pd.DataFrame
    cv: pd.DataFrame
    # external set name → (its predictions, its metrics.json), see bench.engine.external
    external: dict[str, tuple[pd.DataFrame, dict]] = field(default_factory=dict)
    # the split manifest the run used (``split.csv``; empty for runs without one)
    split: pd.DataFrame = field(default_factory=pd.DataFrame)
    # (external set, BatchNorm adaptation) → (its predictions, its metrics.json), for the sets
    # scored with ``--adapt-bn target|source`` (bench.engine.adaptation)
    adapted: dict[tuple[str, str], tuple[pd.DataFrame, dict]] = field(default_factory=dict)

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def model(self) -> str:
        return self.record.settings.model

    @property
    def settings(self) -> dict:
        """The recorded ``settings`` as they are (typed: :attr:`record`'s, :attr:`spec`)."""
        return self.config["settings"]

    @cached_property
    def record(self) -> RunRecord:
        return RunRecord.from_dict(self.config)

    @cached_property
    def spec(self) -> RunSpec:
        """The :class:`RunSpec` the run recorded (:meth:`RunSpec.from_dict`; a record without
        one, of an older format, raises :class:`BenchError`)."""
        return RunSpec.from_dict(self.config["settings"])

    @property
    def seed(self) -> int:
        return int(self.record.settings.seed)

    @property
    def weights(self) -> Path:
        """The final fit's ``model.safetensors`` (absent from results sets)."""
        return self.folder.weights

    def explanations(self, method: str = "gradcam") -> pd.DataFrame | None:
        """The run's explanation measures (``explain/<method>/cam_metrics.csv``, one row per
        image); ``None`` when it was not explained."""
        return self.folder.explain(method).read_table()

    def explanation_arrays(self, *keys: str, method: str = "gradcam") -> dict[str, np.ndarray] | None:
        """Arrays of ``explain/<method>/maps.npz`` (``test/ids``, ``test/images``, ``test/maps``,
        ``test/masks`` …); ``None`` when absent."""
        return self.folder.explain(method).read_arrays(*keys)

    @property
    def evaluation(self) -> str:
        """``heldout`` (the paper's protocol: CV folds, final fit, the held-out test) or ``allcv``
        (every usable image scored once: ``predictions`` holds them all, :attr:`test` none)."""
        return "allcv" if _allcv(self.config) else "heldout"

    @property
    def data_arg(self) -> str | None:
        """Where the run's data are, as recorded (portable: relative to the project, see
        :func:`bench.core.provenance.from_portable`); ``None``: the built-in phantom.

        Runs record the resolved location in ``config.json``'s ``data.path``; for older runs it is
        the ``--data`` of the recorded command, read as the shell would (``--data=PATH`` and
        quoted paths included)."""
        data = self.record.data
        if "path" in data:
            return data["path"]
        try:
            words = shlex.split(str(self.record.command))
        except ValueError:
            words = str(self.record.command).split()
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


def _allcv(config: dict) -> bool:
    """The record is an all-image run's (settings' ``evaluation`` allcv:…, absent in others)."""
    return str(config.get("settings", {}).get("evaluation", "heldout")).startswith("allcv")


def _json_type(value: object) -> str:
    """How JSON names the type of a parsed ``value``."""
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
             list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def config_problem(config: dict) -> str | None:
    """What makes a finished run's ``config.json`` unreadable as a run (``None``: nothing): the
    fields every reader uses must have their types: ``settings`` an object with the ``model``
    (text) and, when present, the ``seed`` (an integer); ``outputs`` (the checksums) an object of
    texts; ``timings`` and ``profile``, when present, objects."""
    settings = config.get("settings")
    if not isinstance(settings, dict):
        return "no settings (an object with the run's model, seed and options)" \
            if settings is None else f"settings is a JSON {_json_type(settings)}, not an object"
    if not isinstance(settings.get("model"), str) or not settings["model"]:
        return "settings has no model name"
    seed = settings.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"settings' seed {seed!r} is not an integer"
    outputs = config.get("outputs", {})
    if not isinstance(outputs, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in outputs.items()):
        return "outputs is not an object of file name → SHA-256"
    for key in ("timings", "profile", "data", "model_stats"):
        if not isinstance(config.get(key, {}), dict):
            return f"{key} is a JSON {_json_type(config[key])}, not an object"
    return None


def load_run(folder: Path) -> Run | None:
    """:meth:`RunFolder.load` of ``folder``."""
    return RunFolder(folder).load()


def attach_groups(preds: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Predictions with each image's cluster in ``group`` (docs/protocol.md, "Images that belong
    together"): the same-lesion or patient group of the run's manifest; ``""`` where the manifest
    has none (the statistics then treat the image as its own cluster,
    :func:`bench.stats.contrasts.groups_of`). The one place the report's statistics get their groups."""
    if "group" in preds:
        return preds.assign(group=preds.group.fillna("").astype(str))
    if not len(split) or "group" not in split:
        return preds.assign(group="")
    groups = dict(zip(split.id.astype(str), split.group.astype(str), strict=True))
    return preds.assign(group=preds.id.astype(str).map(groups).fillna(""))


def check_predictions(preds: pd.DataFrame, where: str) -> None:
    """Predictions the tables can use: labels 0/1 and probabilities finite in [0, 1] (a file
    whose checksum was re-recorded after an edit is still refused here)."""
    try:
        prob = pd.to_numeric(preds["prob_malignant"], errors="coerce").to_numpy(dtype=float)
        label = pd.to_numeric(preds["label"], errors="coerce").to_numpy(dtype=float)
    except KeyError as exc:
        raise InvalidRun(f"{where}: no column {exc.args[0]!r}; rerun that run, or pass "
                         "`skip_invalid` to leave it out") from None
    bad = ~np.isfinite(prob) | (prob < 0) | (prob > 1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InvalidRun(f"{where} line {k + 2}: prob_malignant {plain(prob[k])} is not a "
                         f"probability in [0, 1] ({int(bad.sum())} such row(s)); rerun that run, "
                         "or pass `skip_invalid` to leave it out")
    wrong = ~np.isin(label, (0, 1))
    if wrong.any():
        k = int(np.flatnonzero(wrong)[0])
        raise InvalidRun(f"{where} line {k + 2}: label {plain(label[k])} is not 0 or 1; rerun "
                         "that run, or pass `skip_invalid` to leave it out")
