"""One model through the benchmark protocol (docs/protocol.md, Held-out test and cross-validation): the library behind ``python -m bench.run``
(its command line is :mod:`bench.cli.run`).

:func:`prepare` resolves the profile, reads the data and its split manifest (refusing leaky ones), trains the CV
folds and the final fit, evaluates once on the held-out test set and writes, in
``<out>/<model>-<data>-<config hash>/``: ``config.json``, ``predictions.csv``, ``metrics.json``,
``cv_metrics.csv``, ``model.safetensors`` and per-stage folders that make reruns resume (the
format is :mod:`bench.engine.runfolder`'s); :func:`train_run` trains what is missing and
:func:`run` does both, reusing a finished run of the same configuration.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from bench.core.atomic import exclusive
from bench.core.errors import (
    BenchError,
    disk_error,
    ensure_writable,
    written_path,
)
from bench.core.openmp import wait_rule
from bench.core.provenance import (
    code_version,
    device_info,
    file_sha256,
    from_portable,
    git_revision,
    package_versions,
    portable,
    recorded_location,
)
from bench.data.augment import AUGMENT_POLICIES
from bench.data.cache import ImageCache, build_cache
from bench.data.content import content_sha256
from bench.data.datasets import load_index
from bench.data.index import DataIndex
from bench.data.multisite import site_paths
from bench.engine.adaptation import ADAPT_BN, check_mode
from bench.engine.allimage import (
    allcv_folds,
    check_evaluation,
    evaluation_key,
    is_allcv,
    run_allcv,
    summarize_allcv,
    usable,
)
from bench.engine.device import (
    check_fits,
    gpu_peak_gib,
    is_out_of_memory,
    release_memory,
    resolve_device,
)
from bench.engine.external import ExternalSet, resolve_external, score_external
from bench.engine.profiles import Profile, resolve_profile
from bench.engine.protocol import run_protocol, summarize
from bench.engine.runfolder import RunFolder, RunRecord, RunStatus
from bench.engine.sites import per_site_metrics, site_split
from bench.engine.spec import REFERENCE, Execution, RunOptions, RunSpec, check_seed, cleaned
from bench.engine.splits import resolve_split
from bench.engine.stages import StageContext, StageResult, StageStatus
from bench.engine.threads import affinity_cpus, apply_threads, resolve_threads
from models import create_model, get_model_config
from models.complexity import count_params, gflops
from models.config import ModelConfig
from models.errors import UserError
from models.plugins import model_origin, one_line, resolve_model
from models.registry import resolve_weights

log = logging.getLogger(__name__)


def resolve_concurrency(value: str, device: str, stages: int) -> int:
    """``--concurrent-folds``: how many stages train at once (1 = reference engine)."""
    if value == "auto":
        return stages if device == "cuda" else 1
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise BenchError(f"`concurrent_folds`={value!r}: give a positive integer or auto")
    return min(n, stages)


def runs_of_older_code(out: Path, name: str, spec: dict) -> str | None:
    """A finished run in ``out`` whose settings equal ``spec`` except for the code version."""
    def same(settings: dict) -> bool:
        return all(settings.get(k) == v for k, v in spec.items() if k != "code_version") and \
            settings.get("code_version") != spec.get("code_version")

    for cfg_path in sorted(out.glob(f"{name.rsplit('-', 1)[0]}-*/config.json")):
        try:
            cfg = json.loads(cfg_path.read_text())
        except (OSError, ValueError):
            continue
        if cfg.get("status") == "complete" and same(cfg.get("settings", {})):
            return cfg_path.parent.name
    return None


def check_usable(manifest: pd.DataFrame, source: str) -> None:
    """A run needs training images and a held-out test set with both classes (docs/protocol.md, Held-out test and cross-validation)."""
    where = f"`split`={source}" if source != "generated" else "the generated split"
    for part in ("train", "test"):
        labels = set(manifest.label[manifest.split == part].astype(int))
        if labels != {0, 1}:
            have = "no images" if not labels else f"only {'malignant' if 1 in labels else 'benign'}"
            raise BenchError(f"{where}: the {part} set has {have}; a run needs benign and "
                             f"malignant {part} images — rebuild the split with python -m bench.split")


def finished_run(folder: RunFolder, run_hash: str) -> bool:
    """True when ``folder`` holds a complete run of this config whose outputs, stage files
    included, all match their recorded checksums; says what is wrong otherwise."""
    ok, problem = folder.reusable(run_hash)
    if problem:
        log.info(f"note: {folder.name}: {problem}; not reusing it as it is (intact stages are "
                 "kept, the rest is retrained)")
    return ok


def pretrained_request(value: str, name: str, published: str) -> str:
    """What the model factory gets for ``--pretrained value``; a missing file is always an error."""
    if value == "require":
        if published != "imagenet":
            raise BenchError(f"`pretrained`=require: {name} has no ImageNet weights (it trains from "
                             "scratch); leave `pretrained` out")
        return "auto"
    if value not in ("auto", "hub", "none") and not Path(value).is_file():
        raise BenchError(f"`pretrained`={value}: weights file does not exist")
    return value


def check_weights(value: str, name: str, published: str, provenance: str) -> str | None:
    """A warning when a transfer-learning model falls back to random init (``require``: an error)."""
    if published != "imagenet" or provenance != "random" or value == "none":
        return None
    if value == "require":
        raise BenchError(
            f"`pretrained`=require: no ImageNet weights for {name} here (timm's hub is not cached "
            "and not reachable); fetch them once where there is network (they land in the Hugging "
            "Face cache, HF_HOME) or pass `pretrained`=PATH (.safetensors or a PyTorch state dict)")
    return (f"warning: {name} is a transfer-learning baseline but no ImageNet weights are "
            f"available here: it trains from random init, which is not the published method "
            f"(`pretrained` PATH or a hub cache provides them; `pretrained`=require stops instead)")


# what every engine reads a model's output as (bench/engine/train.py: the loss is the cross-entropy
# of the two logits, P(malignant) their softmax's second entry)
EXPECTED_OUTPUT = "a tensor of shape (N, 2): two finite logits per image, benign then malignant"
ONE_LOGIT = ("for one logit z per image return torch.cat([torch.zeros_like(z), z], dim=1), whose "
             "softmax gives P(malignant) = sigmoid(z)")


def check_output(model: torch.nn.Module, name: str, img_size: int, channels: int) -> None:
    """Refuse a model whose output the engines would misread (docs/protocol.md, "Models from
    other packages"): one forward pass of 2 images at the run's input size, on the CPU, in eval
    mode and without gradients, must give :data:`EXPECTED_OUTPUT`. Three logits would train and
    report a softmax over three classes, (N, 1) or (N, 2, 1, 1) and a tuple fail inside the
    engine; here each is one line naming the model, what it returned and what is expected."""
    x = torch.randn(2, channels, img_size, img_size, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train(was_training)
    if not isinstance(out, torch.Tensor):
        what = type(out).__name__ + (f" of {len(out)}" if isinstance(out, (tuple, list, dict))
                                     else "")
        raise BenchError(f"`model`={name}: its forward pass returns a {what}, not "
                         f"{EXPECTED_OUTPUT}; return the logits alone")
    shape = f"({', '.join(map(str, out.shape))})"
    if tuple(out.shape) != (2, 2):
        hint = f"; {ONE_LOGIT}" if tuple(out.shape) == (2, 1) else \
            "; flatten it to (N, 2)" if out.ndim > 2 and out.numel() == 4 else ""
        raise BenchError(f"`model`={name}: its output for 2 images of {img_size} px has shape "
                         f"{shape}, not {EXPECTED_OUTPUT}{hint}")
    if not torch.isfinite(out).all():
        raise BenchError(f"`model`={name}: its output for 2 images of {img_size} px is not "
                         f"finite (NaN or infinite values); expected {EXPECTED_OUTPUT}")


def model_stats(name: str, kwargs: dict, img_size: int, channels: int) -> tuple[dict, str]:
    """Parameter count, forward GFLOPs (2 × multiply-adds) at the run's input size, and the
    weights' provenance (``random``, ``imagenet:hub:…``, ``imagenet:file:…``, ``imagenet:package:…``),
    decided from the model's registered weight source (no weights are loaded into this model);
    its output is checked first (:func:`check_output`)."""
    provenance = resolve_weights(name, kwargs["pretrained"]).provenance
    model = create_model(name, **{**kwargs, "pretrained": "none"}).eval()
    check_output(model, name, img_size, channels)
    return ({"params": count_params(model), "gflops": round(gflops(model, channels, img_size), 4),
             "at_img_size": img_size}, provenance)


@dataclass
class Prepared:
    """Everything a run needs once its options are resolved: the data, the split and the spec."""

    options: RunOptions
    spec: RunSpec
    execution: Execution
    profile: Profile
    index: DataIndex
    manifest: pd.DataFrame
    split_report: dict | None
    split_source: str
    model_stats: dict
    weights_warning: str | None
    external: list[ExternalSet] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.options.out / f"{self.spec.model}-{self.index.kind}-{self.spec.hash()}"

    def settings(self) -> dict:
        """``config.json``'s flat ``settings``: the spec's fields, then the execution's."""
        return {**self.spec.to_dict(), **self.execution.to_dict()}


@dataclass
class RunResult:
    """What :func:`run` returns: where the run is, how it ended, its metrics and wall time."""

    run_dir: Path
    status: RunStatus  # complete | failed | reused
    metrics: dict
    seconds: float
    note: str | None = None
    external: dict[str, dict] = field(default_factory=dict)  # external set name → its metrics

    @property
    def ok(self) -> bool:
        return self.status in (RunStatus.COMPLETE, RunStatus.REUSED)


def as_seen(index: DataIndex, paths: list[str], annotations: str) -> DataIndex:
    """``index`` as a run with this ``annotations`` setting (:attr:`RunSpec.annotations`) sees it:
    itself, or for a run on cleaned images (docs/protocol.md, "Burnt-in annotations") re-rooted on
    the cached copy of ``paths`` with the annotations inpainted by the recorded method. The one
    path of ``bench.run`` and ``bench.score``: a run is scored on the images it would have been
    scored on when it ran. Images cleaned by another detector version than this checkout's cannot
    be made again: refused."""
    if not cleaned(annotations):
        return index
    from bench.data.annotations import cleaned_copy, detector_version

    _, method, version = (str(annotations).split(":") + ["", ""])[:3]
    if version and version != detector_version():
        raise BenchError(f"the run was trained on images cleaned by annotation detector {version} "
                         f"(its settings' annotations {annotations}); this checkout's detector is "
                         f"{detector_version()}, whose cleaned images differ — use the checkout "
                         "that made the run")
    log.info(f"`annotations`=clean: detecting and inpainting annotations of {len(paths)} images "
             "(cached after the first time)")
    return replace(index, root=cleaned_copy(index.root, paths, method))


def cleaned_index(index: DataIndex, paths: list[str]) -> tuple[DataIndex, str]:
    """``index`` re-rooted on a cached copy of its images with the burnt-in annotations inpainted
    (bench/data/annotations.py), and the spec's ``annotations`` value naming method and detector."""
    from bench.data.annotations import CLEAN_METHOD, detector_version

    annotations = f"clean:{CLEAN_METHOD}:{detector_version()}"
    return as_seen(index, paths, annotations), annotations


def read_data(o: RunOptions, folds: int) -> tuple[DataIndex, pd.DataFrame, dict | None, str]:
    """The data set, its split manifest (checked usable, with enough folds), the split report
    (generated splits) and where the split came from."""
    parts = site_paths(o.data)
    if parts is not None:  # --data A,B: each site's own split, joined (bench/engine/sites.py)
        index, manifest, report, split_source = site_split(o, parts, folds)
    else:
        index = load_index(o.data, o.dataset)
        manifest, report, split_source = resolve_split(o, index, folds)
    check_usable(manifest, split_source)
    max_folds = int(manifest.fold.max()) + 1
    if folds > max_folds:
        raise BenchError(f"`folds`={folds}: the split manifest has only {max_folds} folds; "
                         "rebuild it with python -m bench.split --folds N")
    return index, manifest, report, split_source


def augment_policy(o: RunOptions) -> str:
    """The run's augmentation policy (docs/protocol.md, "Ultrasound-aware augmentation"), checked:
    one of :data:`bench.data.augment.AUGMENT_POLICIES`, and only with augmentation on."""
    if o.augment_policy not in AUGMENT_POLICIES:
        raise BenchError(f"`augment_policy`={o.augment_policy!r}: policies are "
                         f"{', '.join(AUGMENT_POLICIES)}")
    if not o.augment and o.augment_policy != "paper":
        raise BenchError(f"`augment_policy`={o.augment_policy} with augmentation off "
                         "(--no-augment): drop one of the two")
    return o.augment_policy


def check_adapt_bn(modes: tuple[str, ...] | list[str], external: tuple[str, ...] | list[str]
                   ) -> None:
    """``adapt_bn`` (:data:`bench.engine.adaptation.ADAPT_BN`, each at most once) scores
    external sets, so an adaptation other than none needs some."""
    for mode in modes:
        check_mode(mode)
    if not modes or len(set(modes)) != len(modes):
        raise BenchError(f"`adapt_bn`={','.join(modes)}: give each of "
                         f"{', '.join(ADAPT_BN)} at most once")
    if set(modes) != {"none"} and not external:
        raise BenchError(f"`adapt_bn`={','.join(modes)} adapts the scoring of external sets: "
                         "give them with `external`")


def model_options(o: RunOptions) -> dict:
    """The model factory's keyword arguments the options set besides channels and weights."""
    extra: dict = {}
    if o.l2 is not None:
        if o.model != REFERENCE:  # Fus2Net, the one model with an FC L2 option
            raise BenchError(f"`l2` applies to fus2net's FC layer only, not to {o.model}")
        extra["l2"] = o.l2
    if o.dropout is not None:
        extra["dropout"] = o.dropout
    return extra


def input_size(o: RunOptions, cfg: ModelConfig, profile: Profile) -> int:
    if o.img_size is not None and o.img_size < cfg.min_input_size:
        raise BenchError(f"`img_size`={o.img_size}: {o.model} needs at least "
                         f"{cfg.min_input_size} px")
    return max(profile.img_size, cfg.min_input_size) if profile.img_size else cfg.input_size


def run_weights(o: RunOptions, cfg: ModelConfig, extra: dict, img_size: int
                    ) -> tuple[dict, dict, str, str | None]:
    """The weights a run starts from: the model's keyword arguments (``pretrained`` as the
    factory gets it), its stats, the weights' provenance (part of the run hash) and a warning
    when a transfer-learning model falls back to random init."""
    model_kwargs = {"in_chans": o.channels,
                    "pretrained": pretrained_request(o.pretrained, o.model, cfg.pretrained), **extra}
    origin = model_origin(o.model)
    try:
        stats, provenance = model_stats(o.model, model_kwargs, img_size, o.channels)
    except Exception as exc:  # noqa: BLE001 - a model from elsewhere that fails to build or run
        if origin is None or isinstance(exc, (UserError, MemoryError)) or is_out_of_memory(exc):
            raise
        raise BenchError(f"`model`={o.model}: the model from {origin.describe()} fails to build "
                         f"or to run a {img_size} px image ({one_line(exc)}); fix it there") from None
    return model_kwargs, stats, provenance, check_weights(o.pretrained, o.model, cfg.pretrained,
                                                          provenance)


def external_sets(values: list[str] | tuple[str, ...], index: DataIndex, manifest: pd.DataFrame,
                  annotations: str) -> list[ExternalSet]:
    """The external sets to score, read now (a bad one stops before any training or scoring):
    each checked not to be the run's own images (``index`` as stored), then as the run sees
    images (:func:`as_seen`: a model trained on cleaned images is scored on cleaned images)."""
    external = resolve_external(list(values))
    for ext in external:
        check_not_own_images(ext, index, manifest)
    return [replace(e, index=as_seen(e.index, [s.path for s in e.index.samples], annotations))
            for e in external]


def check_not_replaced(folder: RunFolder, ext: ExternalSet) -> None:
    """An external set a run already scored on other images (another content SHA-256: images
    changed on disk, or cleaned ones scored as they are) is never replaced silently; the refusal
    says how to replace it or keep both."""
    old = folder.external(ext.name).record()
    recorded = (old or {}).get("content_sha256")
    if not recorded:
        return
    now = content_sha256(ext.index.root, [s.path for s in ext.index.samples])
    if now != recorded:
        raise BenchError(f"`external` {ext.shown}: {folder.name} has external/{ext.name} scored on "
                         f"other images (content SHA-256 {recorded[:12]}, these {now[:12]}); it "
                         f"is not replaced — delete {folder.external(ext.name).path} to score these "
                         f"in its place, or keep both: `external` NAME={ext.given or ext.source}")


def build_shared(o: RunOptions) -> None:
    """Build in this process what the runs of ``o``'s data share on disk: the data (the phantom,
    generated once), the split's same-lesion evidence, the cleaned copies (``annotations`` clean)
    and the external sets. A suite calls it before its jobs start, so they read these caches
    instead of all building them at once (each build is locked too: two jobs never build one
    cache together)."""
    profile = resolve_profile(o.profile, "cpu", folds=o.folds)  # the folds shape no cache
    index, manifest, _, _ = read_data(o, profile.folds)
    annotations = "keep"
    if o.annotations == "clean":
        _, annotations = cleaned_index(index, list(manifest.path[manifest.split != "excluded"]))
    external_sets(o.external, index, manifest, annotations)


def prepare(o: RunOptions) -> Prepared:
    """Check the options, read the data and its split (refusing leaky ones) and build the spec."""
    if o.out is None:
        raise BenchError("out=None: give the folder the run folders go in (RunOptions.out)")
    check_seed(o.seed)
    check_adapt_bn(o.adapt_bn, o.external)
    policy = augment_policy(o)
    cfg = get_model_config(o.model)
    device = resolve_device(o.device)
    profile = resolve_profile(o.profile, device, folds=o.folds, epochs=o.epochs,
                              img_size=o.img_size, batch_size=o.batch_size)
    if profile.folds == 1:
        raise BenchError("`folds`=1 is not cross-validation; use 0 (no CV) or >= 2")
    allcv = check_evaluation(o.evaluation) != "heldout"
    if allcv and o.external:
        raise BenchError("`external` with `evaluation`=allcv: an all-image run keeps no final "
                         "model to score other data sets with; score them with a held-out run")
    ensure_writable(o.out)
    # an all-image run deals every usable image into its own folds (bench/engine/allimage.py):
    # the manifest's CV folds play no part, and no validation subset is drawn (every image is
    # scored once)
    index, manifest, report, split_source = read_data(o, 0 if allcv else profile.folds)
    if allcv:  # a K the data cannot fill stops here, before anything is written
        allcv_folds(usable(manifest), o.allcv_folds)
    extra = model_options(o)
    img_size = input_size(o, cfg, profile)
    model_kwargs, stats, provenance, warning = run_weights(o, cfg, extra, img_size)
    concurrent = resolve_concurrency(o.concurrent_folds, device,
                                     o.allcv_folds if allcv else profile.folds + 1)
    manifest_csv = manifest.to_csv(index=False, lineterminator="\n")
    used = list(manifest.path[manifest.split != "excluded"])
    annotations, stored = "keep", index
    if o.annotations == "clean":  # the split stays the one of the original images
        index, annotations = cleaned_index(index, used)
    origin = model_origin(o.model)
    spec = RunSpec(
        model=o.model, model_kwargs=model_kwargs, weights=provenance, img_size=img_size,
        batch_size=profile.batch_size, epochs=profile.epochs or cfg.recipe.epochs,
        folds=o.allcv_folds if allcv else profile.folds, train_limit=profile.train_limit,
        val_limit=None if allcv else profile.val_limit,
        optimizer=o.optimizer or cfg.recipe.optimizer,
        lr=o.lr if o.lr is not None else cfg.recipe.lr, augment=o.augment, channels=o.channels,
        seed=o.seed, data_kind=index.kind,
        manifest_sha256=hashlib.sha256(manifest_csv.encode()).hexdigest(),
        skip_bad_images=o.skip_bad_images, code_version=code_version(),
        bn_recalibration=o.bn_recalibration, data_sha256=content_sha256(index.root, used),
        stacked=concurrent > 1, model_code=origin.sha256[:12] if origin else "",
        annotations=annotations, augment_policy=policy,
        evaluation=evaluation_key(o.allcv_folds) if allcv else "heldout")
    execution = Execution(device=device, channels_last=cfg.channels_last(device),
                          save_fold_weights=o.save_fold_weights, concurrent=concurrent,
                          progress=o.progress)
    return Prepared(o, spec, execution, profile, index, manifest, report, split_source, stats,
                    warning, external_sets(o.external, stored, manifest, annotations))


def outside_model_record(name: str) -> dict:
    """``config.json``'s ``model_origin`` for a model from a plugin or a local file (paths made
    portable); nothing for the models in ``models/``."""
    origin = model_origin(name)
    if origin is None:
        return {}
    # a file as given is relative to the current directory: recorded resolved, then portable
    where = recorded_location(origin.where) if origin.kind == "file" else origin.where
    return {"model_origin": {**origin.to_dict(), "where": where,
                             "source": portable(origin.source)}}


def run_model(config: RunRecord | dict, run: str) -> str:
    """The model of a finished run (its ``config.json`` as ``config``; ``run`` names it in
    errors), registered in this process: the one path of every reader that builds a run's model
    (``bench.explain``, ``bench.reliance``, ``bench.score``, the suite's add-on steps). A model
    from a local file or module is imported again from the ``model_origin`` that
    :func:`outside_model_record` wrote (a file relative to the project or absolute), a plugin's
    from its installed package; a source file that is gone or whose SHA-256 differs from the
    recorded one (another model than the run trained) is refused in one line naming the run and
    the file (docs/protocol.md, "Models from other packages")."""
    rec = config if isinstance(config, RunRecord) else RunRecord.from_dict(config)
    name, record = rec.settings.model, rec.model_origin
    if not record:
        try:  # a built-in model; an unknown name is one line
            get_model_config(name)
        except UserError as exc:
            raise BenchError(f"{run}: {exc}") from None
        return name
    kind, where, sha = record.get("kind"), str(record.get("where", "")), record.get("sha256", "")
    source = from_portable(record["source"]).resolve() if record.get("source") else None
    path = from_portable(where).resolve() if kind == "file" else None
    said = f"{run}: its model {name} came from {kind} {path or where}"
    if path is not None:
        if not path.is_file():
            raise BenchError(f"{said}, which is not there any more; put the file back where the "
                             "run found it")
        if source is not None and source.is_file() and sha and file_sha256(source) != sha:
            raise BenchError(f"{said}: {'it' if source == path else source} changed since the "
                             f"run (SHA-256 {file_sha256(source)[:12]}, recorded {sha[:12]}); "
                             "restore the file the run was trained with, or train the changed "
                             "model in a new run")
        spec = f"{path}:{name}"
    elif kind == "module":
        spec = f"{where}:{name}"
    else:  # an installed plugin registers itself when the registry is first asked
        spec = name
    try:
        resolve_model(spec)
        origin = model_origin(name)
    except UserError as exc:
        raise BenchError(f"{said}: {str(exc).removeprefix(f'`model` {spec}: ')}") from None
    if origin is None or origin.kind != kind:
        package = " ".join(where.split(" ")[:2]).replace(" ", "==")
        raise BenchError(f"{said}, which is not installed here; pip install {package} as the run "
                         "had it" if kind == "plugin" else f"{said}, which no longer registers "
                         "it here; restore it as the run had it")
    if sha and origin.sha256 != sha:
        raise BenchError(f"{said}: {origin.source} is not the file the run was trained with "
                         f"(SHA-256 {origin.sha256[:12]}, recorded {sha[:12]}); restore it, or "
                         "train the changed model in a new run")
    return name


def check_not_own_images(ext: ExternalSet, index: DataIndex, manifest: pd.DataFrame,
                         most: float = 0.5) -> None:
    """External validation scores images from elsewhere (docs/protocol.md, External validation): a set whose images are mostly
    the run's own (the same files, or files with the same bytes as the manifest's training and
    test images) is refused; it would report the leftover internal images as "external"."""
    own_paths = {(index.root / p).resolve() for p in manifest.path[manifest.split != "excluded"]}
    ext_paths = [(ext.index.root / s.path).resolve() for s in ext.index.samples]
    same = sum(p in own_paths for p in ext_paths)
    if same <= most * len(ext_paths):
        own = {file_sha256(p) for p in own_paths if p.is_file()}
        same = sum(file_sha256(p) in own for p in ext_paths if p not in own_paths) + same
    if same > most * len(ext_paths):
        raise BenchError(f"`external`={ext.shown}: {same} of its {len(ext_paths)} images are the "
                         "run's own training or test images (same files or same bytes); an "
                         "external set must come from elsewhere (another hospital, scanner or "
                         "data set)")


@contextmanager
def write_errors_said(run_dir: Path):
    """A file that cannot be written while a run trains or scores (disk full, quota, a file where
    the run keeps a folder) is one line naming it and how to resume, not a traceback; what was
    finished stays (stages are atomic), and ``config.json`` keeps status ``running``."""
    try:
        yield
    except Exception as exc:  # an OSError, or a library's write error with the system's words
        code = disk_error(exc)
        if code is None and not isinstance(exc, OSError):
            raise
        where = written_path(exc) or run_dir
        if code is not None:
            what, todo = (("the file system is read-only", "choose another `out`")
                          if code == errno.EROFS else ("no space left on the device",
                                                       "free some space"))
            raise BenchError(f"{where}: {what} ({os.strerror(code)}); the run {run_dir.name} is "
                             "unfinished (status running in its config.json) "
                             f"— {todo} and rerun the same command: finished stages are "
                             "reused") from None
        if exc.errno in (errno.ENOTDIR, errno.EEXIST):
            raise BenchError(f"{where}: a file stands where the run keeps a folder (e.g. "
                             f"{run_dir.name}/stages); move it away and rerun the same command"
                             ) from None
        raise BenchError(f"{where}: cannot write it ({exc.strerror or type(exc).__name__}); the "
                         f"run {run_dir.name} is unfinished — fix that and rerun the same "
                         "command: finished stages are reused") from None


@contextmanager
def memory_errors_said(o: RunOptions):
    """An allocation that fails (an image size or batch too large for the device) is one line
    naming the options to lower, not a traceback; finished stages stay."""
    try:
        yield
    except (RuntimeError, MemoryError) as exc:
        if not isinstance(exc, MemoryError) and not is_out_of_memory(exc):
            raise
        release_memory(resolve_device(o.device))
        size = f"`img_size`={o.img_size}" if o.img_size is not None else "the profile's image size"
        raise BenchError(f"{size}: {o.model} does not fit in memory at this size and batch "
                         "(an allocation failed); give a smaller `img_size` or `batch_size` "
                         "(finished stages are kept)") from None


def run(o: RunOptions) -> RunResult:
    """One model through the protocol (the library call behind ``python -m bench.run``, used by
    ``bench.jobs.suite``): reuses a finished run of the same configuration, else trains what is missing.
    Bad input raises :class:`BenchError`."""
    t_start = time.perf_counter()
    # before any parallel work: torch's inter-op pool can be sized only then
    threads = apply_threads(resolve_threads(o.threads, source=o.threads_from))
    with memory_errors_said(o):
        p = prepare(o)
    if p.weights_warning:
        log.warning(p.weights_warning)
    folder = RunFolder(p.run_dir)
    for ext in p.external:  # before any training: never replaced silently
        check_not_replaced(folder, ext)
    ensure_writable(folder.path)
    with exclusive(folder.lock_file, f"waiting: another process is training {folder.name}; "
                   "this one goes on when it ends"), write_errors_said(folder.path), \
            memory_errors_said(o):
        if finished_run(folder, p.spec.hash()):
            log.info(f"{o.model}: reusing the finished run {folder.path} (same configuration)")
            result = RunResult(folder.path, RunStatus.REUSED, folder.read_metrics(),
                               time.perf_counter() - t_start, p.weights_warning)
        else:
            result = train_run(p, t_start, threads)
        for ext in p.external:  # after training: a bad set stops here with the result kept
            for mode in o.adapt_bn:
                key = ext.name if mode == "none" else f"{ext.name}/adapt-bn-{mode}"
                result.external[key] = score_external(folder, p.spec, p.execution, ext,
                                                      p.index, p.manifest, mode)
    return result


def announce(p: Prepared, threads: dict | None) -> None:
    """What is about to train, where and how (printed)."""
    o, ex = p.options, p.execution
    older = runs_of_older_code(o.out, p.run_dir.name, p.settings())
    if older:
        log.info(f"note: {older} is a finished run of this configuration made by other training "
                 "code (its code_version differs); it is not reused, this run trains anew")
    log.info(f"profile {p.profile.name}: {p.profile.description}")
    if is_allcv(p.spec.evaluation):
        log.info(f"evaluation: every usable image scored once ({p.spec.folds} folds by whole "
                 "same-lesion groups, test images included; no final model)")
    if o.overrides():
        log.info(f"overrides: {o.overrides()}")
    if ex.concurrent > 1 and ex.device == "cpu":
        log.info("note: on a CPU the stacked engine measured 1.2-1.4x slower than the reference "
                 "engine (`concurrent_folds` 1); it is meant for GPUs")
    log.info(f"model {o.model} | data {p.index.kind} at {p.index.root} | split {p.split_source} | "
             f"device {ex.device} | engine "
             f"{f'stacked, {ex.concurrent} stages at once' if ex.concurrent > 1 else 'reference'} | "
             f"{threads['threads'] if threads else '?'} thread(s) "
             f"({threads['threads_from'] if threads else '?'}) | run {p.run_dir}")
    if threads and ex.device == "cpu":
        log.info(f"OpenMP wait: {wait_rule().describe()}; load average at start "
                 f"{threads.get('load_at_start')} on {affinity_cpus()} CPU(s)")


def start_record(p: Prepared, threads: dict | None) -> dict:
    """``config.json`` of a run that starts (status running)."""
    o, spec = p.options, p.spec
    return {
        "run_id": p.run_dir.name, "config_hash": spec.hash(), "status": RunStatus.RUNNING,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": o.command or f"python -m bench.run --model {o.model}",
        "settings": p.settings(), "profile": p.profile.to_dict(), "overrides": o.overrides(),
        "model_config": get_model_config(o.model).to_dict(), "weights": spec.weights,
        **outside_model_record(o.model),
        "model_stats": p.model_stats,
        "data": {"kind": p.index.kind, "name": p.index.root.name,
                 "path": None if o.data is None else recorded_location(o.data),
                 "counts": p.index.counts(),
                 "split_source": p.split_source, "ignored_files": len(p.index.ignored)},
        "versions": package_versions(), "git_revision": git_revision(),
        "device": {**device_info(p.execution.device), **(threads or {})},
    }


def load_images(p: Prepared, used: pd.DataFrame) -> tuple[ImageCache, list, float]:
    """The run's image cache (on the GPU for CUDA runs), the images skipped and the seconds."""
    t0 = time.perf_counter()
    cache, skipped = build_cache(p.index.root, used, p.spec.img_size, p.spec.channels,
                                 skip_bad=p.spec.skip_bad_images)
    if p.execution.device == "cuda":  # resident on the GPU as uint8: batches never cross PCIe
        cache = cache.to(p.execution.device)
    if skipped:
        log.info(f"skipped {len(skipped)} bad image(s): " + "; ".join(q for q, _ in skipped[:5]))
    return cache, skipped, time.perf_counter() - t0


def write_results(folder: RunFolder, results: list[StageResult], by_site: bool) -> dict:
    """The run-level predictions, CV table, metrics and weights from the stages' results."""
    preds, cv, metrics = summarize(results)
    if by_site and metrics["test_status"] == "ok":
        metrics["test_by_site"] = per_site_metrics(preds)  # "test" is pooled over the sites
    folder.write_results(preds, cv, metrics)
    folder.keep_final_weights()
    reused = [r.name for r in results if r.status == StageStatus.REUSED]
    if reused:
        trained = [r.name for r in results if r.status != StageStatus.REUSED]
        log.info(f"resumed: reused {', '.join(reused)} (checksums verified); trained "
                 f"{', '.join(trained) or 'nothing'}")
    return metrics


def write_allcv_results(folder: RunFolder, results: list[StageResult]) -> dict:
    """An all-image run's predictions (every image once) and metrics from its folds
    (:func:`bench.engine.allimage.summarize_allcv`); no final model."""
    preds, metrics = summarize_allcv(results)
    folder.write_allcv_results(preds, metrics)
    reused = [r.name for r in results if r.status == StageStatus.REUSED]
    if reused:
        trained = [r.name for r in results if r.status != StageStatus.REUSED]
        log.info(f"resumed: reused {', '.join(reused)} (checksums verified); trained "
                 f"{', '.join(trained) or 'nothing'}")
    return metrics


def train_run(p: Prepared, t_start: float, threads: dict | None = None) -> RunResult:
    """Write the record, load the images, run the protocol and write the run's outputs."""
    spec, ex, folder = p.spec, p.execution, RunFolder(p.run_dir)
    announce(p, threads)
    used = p.manifest[p.manifest.split != "excluded"]  # refused before anything is written
    check_fits(len(used) * spec.channels * spec.img_size ** 2, ex.device,
               f"`img_size`={spec.img_size}", f"the image cache of {len(used)} images at "
               f"{spec.img_size} px")
    record = start_record(p, threads)
    folder.write_config(record)
    folder.write_split(p.manifest, p.split_report)
    cache, skipped, load_s = load_images(p, used)
    ctx = StageContext(spec, ex, cache, folder)
    if is_allcv(spec.evaluation):
        results = run_allcv(ctx)
        metrics = write_allcv_results(folder, results)
        failed = metrics["allcv_status"] == "failed"
    else:
        results = run_protocol(ctx)
        metrics = write_results(folder, results, site_paths(p.options.data) is not None)
        failed = metrics["test_status"] == "failed"
    total = time.perf_counter() - t_start
    record.update(
        status=RunStatus.FAILED if failed else RunStatus.COMPLETE,
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        skipped_bad_images=[{"path": q, "reason": r} for q, r in skipped],
        timings={"total_s": round(total, 2), "image_loading_s": round(load_s, 2),
                 "gpu_peak_gib": gpu_peak_gib(ex.device),
                 "stages": {r.name: {"status": r.status, "seconds": round(r.seconds, 2)}
                            for r in results}},
        outputs=folder.record_outputs(),
    )
    folder.write_config(record)
    return RunResult(folder.path, record["status"], metrics, total, p.weights_warning)
