"""Memory a stacked run needs per model, counted on the CPU (evidence for the estimates in docs/engines.md, "Training engines").

    python tools/activation_memory.py [--members 11] [--batch-size 16] [--models a,b]

For each registered model at its input size: parameters, the bytes of the tensors autograd keeps
for backward per training image (counted with ``saved_tensors_hooks`` on a real fp32 forward of 2
images, each storage once; bf16 autocast on CUDA keeps many of them at half that size, so this is
an upper bound), and for ``--members`` models at ``--batch-size`` each: weights + gradients + Adam
state (fp32) and activations. Cached GPU memory, cuDNN workspaces and the image cache come on top.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.core.tablefmt import to_markdown  # noqa: E402
from models import create_model, get_model_config, list_models  # noqa: E402
from models.complexity import count_params  # noqa: E402


def saved_bytes_per_image(model: torch.nn.Module, size: int, n: int = 2) -> float:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train()(torch.randn(n, 3, size, size))
    return sum(storages.values()) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=11)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--models", default=",".join(list_models()))
    args = p.parse_args()
    gib = 2**30
    rows = []
    for name in args.models.split(","):
        cfg = get_model_config(name)
        model = create_model(name, pretrained="none")
        params, trained = count_params(model), count_params(model, trainable_only=True)
        per_image = saved_bytes_per_image(model, cfg.input_size)
        state = args.members * (4 * params + 12 * trained) / gib
        acts = args.members * args.batch_size * per_image / gib
        rows.append({"model": name, "img_size": cfg.input_size, "params_M": round(params / 1e6, 1),
                     "saved_MiB_per_image": round(per_image / 2**20, 1),
                     "state_GiB": round(state, 1), "activations_GiB": round(acts, 1),
                     "total_GiB": round(state + acts, 1)})
        print(rows[-1], flush=True)
    print(f"\n{args.members} members × batch {args.batch_size}, fp32 upper bound\n")
    print(to_markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
