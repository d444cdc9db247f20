"""The model package stands alone and in layers: ``models/`` imports nothing from ``bench/``, its
modules import one another without a cycle (none hidden in a function), plugins reach the registered
table through its public functions, and a factory receives the :class:`Weights` it is typed with."""

from __future__ import annotations

import ast
from pathlib import Path

import torch
from torch import nn

from models import ModelConfig, create_model
from models.entries import register_model, unregister
from models.weights import NO_WEIGHTS, Weights, WeightSource

MODELS = Path(__file__).resolve().parents[1] / "models"


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """The ``models``/``bench`` modules ``path`` imports: at module level, and inside functions."""
    tree = ast.parse(path.read_text())
    top, inner = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != "models" else \
                [f"models.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        names = [n for n in names if n.split(".")[0] in ("models", "bench")]
        (top if node.col_offset == 0 else inner).update(names)
    return top, inner


def test_models_import_nothing_from_bench_and_form_no_cycle():
    graph = {}
    for path in sorted(MODELS.glob("*.py")):
        top, inner = _imports(path)
        name = "models" if path.stem == "__init__" else f"models.{path.stem}"
        assert not [n for n in top | inner if n.startswith("bench")], path.name
        assert not inner, f"{path.name} imports {sorted(inner)} inside a function"
        graph[name] = {n for n in top if n != "models"}

    def visit(node: str, path: list[str]) -> None:
        for dep in graph.get(node, ()):
            assert dep not in path, f"import cycle: {' → '.join(path + [dep])}"
            visit(dep, path + [dep])

    for node in graph:
        if node != "models":
            visit(node, [node])


def test_plugins_use_the_registered_table_only_through_its_public_functions():
    text = (MODELS / "plugins.py").read_text()
    assert _imports(MODELS / "plugins.py")[0] == {"models.entries", "models.errors"}
    for private in ("_FACTORIES", "_CONFIGS", "_SOURCES", "registry._"):
        assert private not in text, private


def test_a_factory_registered_with_a_weight_source_receives_the_resolved_weights():
    got = []

    @register_model(ModelConfig(name="weights_probe", family="test", input_size=32),
                    weights=WeightSource(files="no"))
    def weights_probe(pretrained: Weights = NO_WEIGHTS) -> nn.Module:
        got.append(pretrained)
        return nn.Linear(2, 2)

    try:
        model = create_model("weights_probe", pretrained="none")
        create_model("weights_probe")
    finally:
        unregister("weights_probe")
    assert got == [Weights("random"), Weights("random")] and all(isinstance(w, Weights) for w in got)
    assert model.weights_provenance == "random" and isinstance(model.weight, torch.Tensor)
