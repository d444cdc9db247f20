"""Messages say their values: no plain string literal carries an f-string placeholder such as
``{name}`` or ``{int(bad.sum())}`` that a missing ``f`` prefix would print as it stands
(README, "When things go wrong": the one line names the file or option and what to do)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pandas as pd
import pytest

from bench.engine.runfolder import InvalidRun, check_predictions

ROOT = Path(__file__).resolve().parents[1]
# {name}, {obj.attr}, {call(...)}, {x[k]}, with an optional !r and format spec
PLACEHOLDER = re.compile(r"(?<!\{)\{[A-Za-z_][\w.]*(\([^{}]*\))?(\[[^{}]*\])?(![rsa])?(:[^{}]*)?\}")
LATEX = re.compile(r"\\[A-Za-z]+\{")  # \end{tabular}: a TeX argument, not a placeholder


def formatted_names(tree: ast.AST) -> set[str]:
    """Names whose value is formatted later: ``T.format(...)``, ``module.T.format(...)``."""
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                n.func.attr in ("format", "format_map"):
            value = n.func.value
            if isinstance(value, ast.Name):
                names.add(value.id)
            elif isinstance(value, ast.Attribute):
                names.add(value.attr)
    return names


def _template_lines(tree: ast.AST, formatted: set[str]) -> set[int]:
    """Lines of docstrings and of strings used as ``str.format`` templates (formatted where they
    stand, or assigned to a name of ``formatted``)."""
    lines: set[int] = set()

    def mark(node: ast.AST) -> None:
        lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            mark(body[0])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("format", "format_map"):
            mark(node.func.value)
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in formatted for t in targets):
                mark(node)
    return lines


def plain_placeholders(source: str, formatted: set[str] = frozenset()) -> list[tuple[int, str]]:
    """``(line, literal)`` of each plain (not f-) string literal with a placeholder that is not a
    docstring or a ``.format`` template (``formatted``: names formatted in other modules)."""
    tree = ast.parse(source)
    skip = _template_lines(tree, formatted_names(tree) | set(formatted))
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.STRING or tok.start[0] in skip:
            continue
        prefix = tok.string[:tok.string.index(tok.string[-1])].lower()
        if "f" in prefix:
            continue
        text = LATEX.sub("", tok.string)
        if PLACEHOLDER.search(text):
            found.append((tok.start[0], tok.string))
    return found


def test_the_scan_finds_a_missing_f_prefix_and_spares_templates_and_docstrings():
    source = '''
"""Module {docstring}."""
T = "{title}. Caption"
def f(bad, where):
    """Docs {x}."""
    t = T.format(title="x")
    s = "{a} and {b}".format(a=1, b=2)
    raise ValueError(f"{where}: bad "
                     "({int(bad.sum())} such row(s))")
tex = r"\\end{tabular}"
ok = f"{{literal}}"
'''
    assert [line for line, _ in plain_placeholders(source)] == [9]


def test_no_plain_string_of_bench_or_models_carries_an_f_string_placeholder():
    files = [p for folder in ("bench", "models", "tools") for p in sorted((ROOT / folder).rglob("*.py"))]
    sources = {p: p.read_text(encoding="utf-8") for p in files}
    formatted = set().union(*(formatted_names(ast.parse(s)) for s in sources.values()))
    found = [f"{path.relative_to(ROOT)}:{line}: {text}" for path, source in sources.items()
             for line, text in plain_placeholders(source, formatted)]
    assert not found, "a missing f prefix prints the placeholder as it stands:\n" + "\n".join(found)


def test_a_run_with_bad_probabilities_says_how_many_rows_are_bad():
    preds = pd.DataFrame({"label": [0, 1, 1, 0], "prob_malignant": [0.2, 1.5, float("nan"), 0.3]})
    with pytest.raises(InvalidRun, match=r"\(2 such row\(s\)\)"):
        check_predictions(preds, "run x: predictions.csv")
