"""The layer order is written once, as the import-linter contract in pyproject.toml
(``./run_all.sh test`` runs ``lint-imports``); ARCHITECTURE.md draws the same order."""

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]


def _contract(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == contract_id]
    return contract


def test_architecture_diagram_draws_the_contracts_layer_order():
    layers = [[name.strip() for name in re.split(r"[|:]", layer)]
              for layer in _contract("layers")["layers"]]
    packages = [layer for layer in layers if all((ROOT / "bench" / name).is_dir() or
                                                 name == "api" for name in layer)]
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    diagram = text.split("```")[1]
    drawn = [re.findall(r"bench/(\w+)", line) for line in diagram.splitlines()
             if re.match(r"bench/\w+ ", line)]
    assert drawn == [sorted(layer, key=lambda n: n != "cli") for layer in packages]

