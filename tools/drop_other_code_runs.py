"""Remove from a runs folder every run made by another training-code version.

A committed set is reported from one training-code version (docs/protocol.md, "Runs and profiles"), so
the regeneration scripts call this before they train: the runs of the previous version leave the
folder (git keeps them) and the new ones take their place. Runs of this version, finished or
resumable, stay.

    python tools/drop_other_code_runs.py RUNS_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from bench.core.provenance import code_version


def main(runs: Path) -> int:
    now = code_version()
    for cfg in sorted(runs.glob("*/config.json")):
        if json.loads(cfg.read_text()).get("settings", {}).get("code_version") != now:
            shutil.rmtree(cfg.parent)
            print(f"removed {cfg.parent.name}: another training-code version")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python tools/drop_other_code_runs.py RUNS_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
