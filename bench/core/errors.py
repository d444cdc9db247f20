"""User-facing errors: one clear line, exit code 2 (docs/faults.md, "When things go wrong")."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TypeVar

from models.errors import UserError

EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., int | None])


def plain(value: object) -> object:
    """A value as a message shows it: numpy scalars as plain numbers (``2``, not ``np.int64(2)``),
    whole floats as integers."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class BenchError(UserError):
    """A problem with the user's input or environment, reported as one line without traceback."""


# The library names parameters in backticks (`pretrained`=hub, `img_size`); a command says its
# flags instead: --pretrained hub, --img-size (a parameter whose flag has another name is listed).
FLAGS = {"in_chans": "--channels"}
_PARAM = re.compile(r"`(\w+)`(?:=('?)([^'\s;,)]*)\2)?")


def in_flag_words(message: str, flags: dict[str, str] = FLAGS) -> str:
    """``message`` with each `parameter` (and `parameter`=value) said as the command's flag."""
    def say(m: re.Match) -> str:
        flag = flags.get(m.group(1), "--" + m.group(1).replace("_", "-"))
        return f"{flag} {m.group(3)}" if m.group(3) else flag
    return _PARAM.sub(say, message)


def cli_main(func: F) -> F:
    """Wrap a CLI ``main``: a :class:`BenchError` prints ``error: ...`` and exits with code 2."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:  # BenchError, or the model package's own
            print(f"error: {in_flag_words(str(exc))}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            print("interrupted: finished folds are saved; rerun the same command to resume",
                  file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]


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


def ensure_writable(folder: Path, option: str = "--out") -> None:
    """``folder`` exists (made when missing) and takes a new file; else a one-line error."""
    try:
        if folder.exists() and not folder.is_dir():
            raise BenchError(f"{option} {folder}: is a file, not a folder; choose another folder "
                             f"with {option}")
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"{option} {folder}: cannot write there ({exc.strerror}); choose "
                         f"another folder with {option}") from None
