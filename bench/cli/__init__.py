"""Command-line front ends: parse arguments, call the library, translate errors. Here: the
argparse types of their numbers (checked where they are parsed; the error names the option and the
rule, exit code 2 as for any bad option)."""

from __future__ import annotations

import argparse
import math


def number(name: str, kind: type = int, minimum: float = 0, *, above: bool = False,
           below: float | None = None):
    """An argparse type for ``name``: a finite ``kind`` >= ``minimum`` (> with ``above``),
    < ``below`` when given; the error names the option and the rule."""
    rule = f"{'>' if above else '>='} {minimum:g}" + (f" and < {below:g}" if below else "")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < minimum or \
                (above and value == minimum) or (below is not None and value >= below):
            what = "an integer" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"{name} must be {what} {rule}, not {text!r}")
        return value
    return parse
