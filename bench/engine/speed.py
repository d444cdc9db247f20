"""Training throughput of the common naive pipeline and of ours (the library behind
``python -m bench.speed``, whose command line is :mod:`bench.cli.speed`).

In one run on one device, for each model, side by side:

* **naive** — what most repositories do: PNGs decoded by PIL in a ``DataLoader`` (worker
  processes), torchvision ``RandomAffine``/``ColorJitter``/flip per image, fp32.
* **ours** — the reference engine of ``bench.engine.train``: images decoded and resized once and resident
  on the device as uint8, augmentation in batches on the device, per-image standardisation on the
  device, channels_last, bf16 autocast and fused Adam on CUDA (fp32 on CPU).
* **ours, K stacked** — the stacked engine of ``bench.engine.stacked``: K models (the paper protocol's
  10 folds + final fit) trained at once, each on its own batch of 16; img/s counts all K.

Reported: img/s, ms/step (one optimizer step of every model trained), achieved TFLOP/s (3 ×
forward FLOPs per trained image), its share of the device's peak (CUDA: the bf16 dense peak of
known cards; CPU: a measured fp32 matmul peak), the speed-up over the naive pipeline, and the
projected wall time of the full paper protocol (10 folds × 53 epochs + final fit on BUSI's training
set) and, on CUDA, the peak GPU memory PyTorch allocated (GiB, image cache included). Written to
``speed.csv`` and ``speed.md`` in the given folder with the device, versions and images used.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from bench.core.atomic import write_csv, write_text
from bench.core.errors import BenchError
from bench.core.provenance import device_info, package_versions
from bench.core.tablefmt import to_markdown
from bench.data.augment import AugmentConfig
from bench.data.cache import build_cache
from bench.data.datasets import load_index
from bench.engine.device import (
    check_fits,
    gpu_peak_gib,
    is_out_of_memory,
    release_memory,
    synchronize,
)
from bench.engine.spec import REFERENCE
from bench.engine.stacked import Member, train_stacked
from bench.engine.train import TrainSettings, make_optimizer, train_model
from models import create_model, get_model_config
from models.complexity import gflops

log = logging.getLogger(__name__)

# Datasheet dense bf16 peaks; the first key found in the device name wins (specific ones first).
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def paper_image_steps(n_benign: int = 379, epochs: int = 53, folds: int = 10) -> int:
    """Image-steps of the paper protocol on a flip-balanced training set of ``2 × n_benign``."""
    per_epoch = 2 * n_benign
    return round((folds * per_epoch * (folds - 1) / folds + per_epoch) * epochs)


def peak_tflops(device: str) -> tuple[float, str]:
    """Device peak: bf16 dense from a table on CUDA, measured fp32 matmul on CPU."""
    if device == "cuda":
        name = torch.cuda.get_device_name()
        for key, peak in BF16_PEAK_TFLOPS.items():
            if key in name:
                return peak, f"bf16 dense peak of {key} (datasheet)"
        return float("nan"), f"unknown bf16 peak for {name}"
    a = torch.randn(2048, 2048)
    a @ a
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        a @ a
    tflops = reps * 2 * 2048**3 / (time.perf_counter() - t0) / 1e12
    return tflops, "measured fp32 matmul (2048², torch.mm)"


class PilDataset(Dataset):
    """The naive per-image pipeline: decode PNG, augment with torchvision, standardise."""

    def __init__(self, paths: list[Path], labels: list[int], size: int, aug: AugmentConfig) -> None:
        self.paths, self.labels = paths, labels
        self.tf = transforms.Compose([
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.RandomAffine(aug.rotation_deg, translate=(aug.shift, aug.shift),
                                    shear=aug.shear_deg),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(brightness=(aug.brightness[0], aug.brightness[1])),
            transforms.ToTensor(),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        x = self.tf(Image.open(self.paths[i]).convert("RGB"))
        return (x - x.mean()) / x.std().clamp_min(1e-6), self.labels[i]


def time_naive(model_name: str, paths, labels, size: int, device: str, steps: int, warmup: int,
               workers: int) -> float:
    cfg = get_model_config(model_name)
    model = create_model(model_name, pretrained="none").to(device).train()
    opt = make_optimizer(cfg.recipe.optimizer, model.parameters(), cfg.recipe.lr)
    loader = DataLoader(PilDataset(paths, labels, size, AugmentConfig()), batch_size=16,
                        shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0)
    done, t0 = 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                synchronize(device)
                t0 = time.perf_counter()
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done >= warmup + steps:
                break
    synchronize(device)
    return steps * 16 / (time.perf_counter() - t0)


def _throughput(device: str, prepare, steps: int, warmup: int, images_per_step: int) -> float:
    """img/s of ``prepare(n)()`` (a job training ``n`` steps): the time of ``warmup + steps``
    steps minus that of ``warmup`` steps, so start-up costs cancel. Set-up is not timed."""

    def seconds(n_steps: int) -> float:
        job = prepare(n_steps)
        synchronize(device)
        t0 = time.perf_counter()
        job()
        synchronize(device)
        return time.perf_counter() - t0

    t_warm = seconds(warmup) if warmup else 0.0  # no warm-up: nothing to subtract
    return images_per_step * steps / max(seconds(warmup + steps) - t_warm, 1e-9)


def _settings(cfg, device: str) -> TrainSettings:
    return TrainSettings(epochs=1, batch_size=16, optimizer=cfg.recipe.optimizer,
                         lr=cfg.recipe.lr, device=device,
                         channels_last=cfg.channels_last(device))


def time_ours(model_name: str, cache, device: str, steps: int, warmup: int) -> float:
    """img/s of the reference engine (``cache`` already on ``device``)."""
    cfg = get_model_config(model_name)
    idx = np.arange(len(cache))

    def prepare(n_steps: int):
        model = create_model(model_name, pretrained="none")
        sel = np.resize(idx, n_steps * 16)
        return lambda: train_model(model, cfg, cache, sel, np.zeros(len(sel), dtype=np.int64),
                                   _settings(cfg, device), seed=0, progress=False)

    return _throughput(device, prepare, steps, warmup, 16)


def time_stacked(model_name: str, cache, device: str, steps: int, warmup: int,
                 members: int) -> float:
    """img/s of the stacked engine: ``members`` models (e.g. 10 folds + final fit) at batch 16 each."""
    cfg = get_model_config(model_name)
    idx = np.arange(len(cache))

    def prepare(n_steps: int):
        group = []
        for j in range(members):
            sel = np.resize(np.roll(idx, 16 * j), n_steps * 16)
            group.append(Member(create_model(model_name, pretrained="none"), sel,
                                np.zeros(len(sel), dtype=np.int64), seed=j))
        return lambda: train_stacked(group, cfg, cache, _settings(cfg, device), progress=False)

    return _throughput(device, prepare, steps, warmup, 16 * members)


def parse_members(value: str | None, device: str) -> list[int]:
    """``--members``: the stacked-engine sizes to time (sizes of 1 are the reference engine)."""
    if value is None:
        return [11 if device == "cuda" else 2]
    try:
        counts = [int(v) for v in value.split(",")]
    except ValueError:
        counts = [-1]
    if any(c < 0 for c in counts):
        raise BenchError(f"`members`={value!r}: give non-negative integers, e.g. 4,11 (0 skips "
                         "the stacked engine)")
    return sorted({c for c in counts if c > 1})


@dataclass(frozen=True)
class SpeedOptions:
    """What to time (``python -m bench.speed`` flags)."""

    device: str  # cpu | cuda (resolved)
    models: tuple[str, ...] = (REFERENCE,)
    data: Path | None = None  # images to time on (None: the synthetic phantom)
    img_size: int | None = None  # None: each model's input size
    steps: int = 30
    warmup: int = 5
    workers: int | None = None  # naive DataLoader workers (None: min(8, torch threads))
    members: str | None = None  # stacked-engine widths, e.g. "4,11" (parse_members)


@dataclass
class Images:
    """The images timed on: their index, manifest rows, absolute paths and labels."""

    index: object
    rows: pd.DataFrame
    paths: list[Path]
    labels: list[int]


def time_model(name: str, size: int, images: Images, o: SpeedOptions, workers: int,
               member_counts: list[int], peak: float, total_steps: int) -> list[dict]:
    """The timing rows of one model at ``size`` px: naive, ours and each stacked width."""
    rows, device = [], o.device
    check_fits(len(images.rows) * 3 * size * size, device, f"`img_size`={size}",
               f"the image cache of {len(images.rows)} images at {size} px")
    fwd = gflops(create_model(name), 3, size)
    cache = build_cache(images.index.root, images.rows, size, 3)[0].to(device)
    pipelines = [("naive", 1), ("ours", 1)] + [(f"ours, {k} stacked", k) for k in member_counts]
    for pipeline, members in pipelines:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        if pipeline == "naive":
            ips = time_naive(name, images.paths, images.labels, size, device, o.steps, o.warmup,
                             workers)
        elif pipeline == "ours":
            ips = time_ours(name, cache, device, o.steps, o.warmup)
        else:
            ips = time_stacked(name, cache, device, o.steps, o.warmup, members)
        tflops = 3 * fwd * ips / 1000
        per_step = 16 * members
        rows.append({"model": name, "pipeline": pipeline, "img_size": size, "img_per_s": round(ips, 1),
                     "ms_per_step": round(per_step / ips * 1000, 1), "tflops": round(tflops, 3),
                     "share_of_peak": round(tflops / peak, 4) if peak == peak else float("nan"),
                     "paper_protocol_s": round(total_steps / ips, 1),
                     "gpu_peak_gib": gpu_peak_gib(device)})
        log.info(f"{name:>28} {pipeline:>14}: {ips:8.1f} img/s, {tflops:7.3f} TFLOP/s")
    return rows


def timing_images(o: SpeedOptions) -> Images:
    index = load_index(o.data)
    samples = index.samples[:min(len(index.samples), (o.steps + o.warmup) * 16)]
    rows = pd.DataFrame({"path": [s.path for s in samples], "label": [s.label for s in samples]})
    return Images(index, rows, [index.abspath(s) for s in samples], [s.label for s in samples])


def time_one(name: str, images: Images, o: SpeedOptions, workers: int, member_counts: list[int],
             peak: float, total_steps: int) -> list[dict]:
    """:func:`time_model` at the model's size; out of memory is one line naming the size."""
    cfg = get_model_config(name)
    size = max(o.img_size, cfg.min_input_size) if o.img_size is not None else cfg.input_size
    if o.img_size is not None and size != o.img_size:
        log.info(f"note: {name} needs at least {cfg.min_input_size} px; timed at {size} px")
    try:
        return time_model(name, size, images, o, workers, member_counts, peak, total_steps)
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc) and not isinstance(exc, MemoryError):
            raise
        release_memory(o.device)
        raise BenchError(f"`img_size`={size}: {name} does not fit in {o.device} memory at "
                         f"{size} px ({len(images.rows)} images, batch 16); give a smaller "
                         "`img_size` or `steps`") from None


def measure(o: SpeedOptions) -> tuple[pd.DataFrame, str]:
    """The timing table of every model and its header line (device, versions, images)."""
    member_counts = parse_members(o.members, o.device)
    images = timing_images(o)
    workers = o.workers if o.workers is not None else min(8, max(1, (torch.get_num_threads())))
    peak, peak_source = peak_tflops(o.device)
    total_steps = paper_image_steps()
    rows = []
    for name in o.models:
        rows += time_one(name, images, o, workers, member_counts, peak, total_steps)
    naive = {r["model"]: r["img_per_s"] for r in rows if r["pipeline"] == "naive"}
    for r in rows:
        r["speedup_vs_naive"] = round(r["img_per_s"] / naive[r["model"]], 2)
    info = device_info(o.device)
    versions = package_versions()
    header = (f"Device: {info.get('gpu', info.get('cpu'))} ({o.device}, {info['threads']} threads); "
              f"torch {versions['torch']}; peak {peak:.2f} TFLOP/s ({peak_source}); "
              f"images: {images.index.kind} ({len(images.rows)} from {images.index.root.name}); "
              f"{o.steps} timed steps of batch 16 after {o.warmup} warm-up; paper protocol = "
              f"{total_steps:,} image-steps; {datetime.now(timezone.utc).date()}")
    return pd.DataFrame(rows), header


def write_speed(out: Path, table: pd.DataFrame, header: str) -> None:
    """``speed.csv`` and ``speed.md`` in ``out``."""
    write_csv(out / "speed.csv", table)
    write_text(out / "speed.md", f"# Training speed\n\n{header}\n\n{to_markdown(table)}")
