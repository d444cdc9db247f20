"""Write a table as CSV (raw numbers) plus Markdown and LaTeX (formatted), deterministically."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.core.atomic import write_csv, write_text

# Report tables keep 10 significant digits: the 16th-17th digit of a sum depends on the CPU's vector
# paths (summation order), so full precision would make a committed table differ from one rebuilt
# on another machine; 10 digits are far below every interval the tables show (docs/protocol.md,
# "Metrics").
TABLE_DIGITS = 10
TABLE_FLOAT_FORMAT = f"%.{TABLE_DIGITS}g"


def write_table_csv(path: Path, df: pd.DataFrame) -> Path:
    """A report table's raw numbers as CSV, each float at :data:`TABLE_DIGITS` significant digits
    (the same bytes on every machine)."""
    return write_csv(path, df, float_format=TABLE_FLOAT_FORMAT)


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def with_ci(value, lo, hi, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _cell(value) -> str:
    """A Markdown cell: missing values (None, NaN) as "—", pipes escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return str(value).replace("|", "\\|")


def to_markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("<", r"$<$"), ("Δ", r"$\Delta$"), ("—", "--"), ("±", r"$\pm$"),
                 ("×", r"$\times$")):
        text = text.replace(a, b)
    return text


def to_latex(df: pd.DataFrame, caption: str = "") -> str:
    cols = "l" * len(df.columns)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}",
             r"\hline", " & ".join(_tex(str(c)) for c in df.columns) + r" \\", r"\hline"]
    lines += [" & ".join(_tex(str(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\hline", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_tex(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(raw: pd.DataFrame, display: pd.DataFrame, base: Path, caption: str = "") -> list[Path]:
    """``base.csv`` (raw), ``base.md`` and ``base.tex`` (display)."""
    paths = [base.with_suffix(".csv"), base.with_suffix(".md"), base.with_suffix(".tex")]
    write_table_csv(paths[0], raw)
    write_text(paths[1], (f"**{caption}**\n\n" if caption else "") + to_markdown(display))
    write_text(paths[2], to_latex(display, caption))
    return paths
