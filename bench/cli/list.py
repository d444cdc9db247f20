"""``python -m bench.list``: every registered model with its size, cost and weight availability;
``--datasets``: every supported data set (the table in :mod:`bench.data.datasets`)."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from bench.core.errors import cli_main
from bench.core.tablefmt import to_markdown
from bench.data.datasets import INFO
from models import create_model, get_model_config, list_models
from models.complexity import count_params, gflops
from models.plugins import model_origin, one_line, resolve_model
from models.registry import resolve_weights


def offline_weights(name: str) -> str:
    """'yes (<source>)' when ImageNet weights load with no network, else 'no'."""
    cfg = get_model_config(name)
    if cfg.pretrained == "none":
        return "n/a (from scratch)"
    provenance = resolve_weights(name, "auto").provenance
    return f"yes ({provenance})" if provenance != "random" else "no"


def model_table(names: list[str] | None = None) -> pd.DataFrame:
    rows = []
    for name in names or list_models():
        cfg = get_model_config(name)
        origin = model_origin(name)
        try:
            model = create_model(name, pretrained="none")
            size = {"params (M)": f"{count_params(model) / 1e6:.2f}",
                    "GFLOPs": f"{gflops(model, cfg.in_chans, cfg.input_size):.2f}"}
            weights = offline_weights(name)
        except Exception as exc:  # noqa: BLE001 - a model from elsewhere may fail; say which
            if origin is None:
                raise
            print(f"warning: model {name!r} from {origin.describe()} cannot be built "
                  f"({one_line(exc)}); listed without its size", file=sys.stderr)
            size, weights = {"params (M)": "—", "GFLOPs": "—"}, "—"
        rows.append({"name": name, "family": cfg.family, **size,
                     "input": f"{cfg.input_size} px", "offline weights": weights,
                     "from": "models/" if origin is None else origin.describe(),
                     "reference": cfg.reference})
    return pd.DataFrame(rows)


def dataset_table() -> pd.DataFrame:
    return pd.DataFrame([{"kind": d.kind, "what": d.description, "layout": d.layout,
                          "groups": d.groups, "counts": d.counts or "—",
                          "licence": d.licence or "—", "card": d.card or "—"}
                         for d in INFO.values()])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.list", description=__doc__)
    p.add_argument("--models", default=None,
                   help="comma-separated subset (default: all, installed plugins' included); "
                        "path/to/file.py:NAME or package.module:NAME adds a model from there")
    p.add_argument("--datasets", action="store_true", help="list the supported data sets instead")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.datasets:
        print(to_markdown(dataset_table()), end="")
        return 0
    names = [resolve_model(m) for m in args.models.split(",")] if args.models else None
    for name in names or []:
        get_model_config(name)  # clear error for an unknown name
    print(to_markdown(model_table(names)), end="")
    return 0
