"""The training device: choosing it, autocast, memory (shared by runs, engines and bench.engine.speed).

bf16 autocast is used on CUDA only: on the development CPU it measured about 7× slower than fp32.
"""

from __future__ import annotations

import gc
import os

import torch

from bench.core.errors import BenchError


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchError("`device`=cuda: no CUDA GPU is available here; use `device`=cpu or auto")
    return name


def autocast(device: torch.device | str):
    """bf16 autocast on CUDA, disabled elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work (timings); a no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure on the GPU or the host."""
    text = str(exc).lower()
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text \
        or "can't allocate memory" in text


def available_bytes(device: torch.device | str) -> int | None:
    """Memory free for new allocations on ``device`` (host: available physical memory); ``None``
    when it cannot be told."""
    try:
        if torch.device(device).type == "cuda":
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, RuntimeError, AttributeError):
        return None


def check_fits(nbytes: int, device: torch.device | str, option: str, what: str) -> None:
    """Refuse before allocating what cannot fit (an image cache of ``nbytes`` on ``device``):
    a one-line error naming ``option``, instead of a traceback or the system killing the process."""
    free = available_bytes(device)
    if free is not None and nbytes > free:
        raise BenchError(f"{option}: {what} needs {nbytes / 2**30:.1f} GiB but {device} has "
                         f"{free / 2**30:.1f} GiB free; give a smaller {option.split()[0]}")


def release_memory(device: torch.device | str) -> None:
    """Give freed memory back (after an out-of-memory error, before retrying smaller)."""
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def gpu_peak_gib(device: str) -> float | None:
    """Peak memory PyTorch allocated on the GPU since the last reset, in GiB (None off CUDA)."""
    if torch.device(device).type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**30, 2)
