"""Fold AUCs of runs that differ only in engine and seed, side by side (docs/engines.md, "Training engines").

    python tools/compare_engines.py RUNS_DIR OUT.md

Every run folder under RUNS_DIR becomes a column ``<engine> seed <s>``; rows are CV folds, then the
mean and sd. Below the table: the mean absolute per-fold AUC difference between the engines at the
same seed, and between two seeds of the same engine (the run-to-run spread it is compared with).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.core.atomic import write_text  # noqa: E402
from bench.core.tablefmt import to_markdown  # noqa: E402
from bench.reporting.runs import load_runs  # noqa: E402


def main(runs: Path, out: Path) -> None:
    cols, info = {}, []
    found = [r for r in load_runs(runs) if len(r.cv)]
    found.sort(key=lambda r: (r.settings["seed"], "engine" in r.settings))
    for r in found:
        cfg, s = r.config, r.settings
        name = f"{s.get('engine', 'reference')} seed {s['seed']}"
        cols[name] = r.cv.set_index("fold")["auc"]
        test = r.metrics["test"]["auc"]
        info.append(f"* `{name}`: {r.path.name}, {s['folds']} folds × {s['epochs']} epochs at "
                    f"{s['img_size']} px, train limit {s['train_limit']}, wall "
                    f"{cfg['timings']['total_s']:.0f} s on {cfg['device'].get('gpu', cfg['device'].get('cpu'))}"
                    + (f", GPU peak {cfg['timings']['gpu_peak_gib']} GiB"
                       if cfg["timings"].get("gpu_peak_gib") is not None else "")
                    + f", test AUC {test:.3f}")
    table = pd.DataFrame(cols)
    summary = pd.DataFrame({"mean": table.mean(), "sd": table.std()}).T
    shown = pd.concat([table, summary]).round(3).reset_index(names="fold")
    lines = []
    for a, b in itertools.combinations(cols, 2):
        diff = (table[a] - table[b]).abs().mean()
        lines.append(f"* mean |ΔAUC| per fold, `{a}` vs `{b}`: {diff:.3f}")
    write_text(out, "# Stacked vs reference engine: CV fold AUCs\n\n" + "\n".join(info) + "\n\n"
               + to_markdown(shown) + "\n" + "\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
