"""Library messages in command-line words. The library names a parameter as `name` (backticks),
`name`=value, or, for a command's own parameters, ``name=value``; a command says ``--name`` /
``--name value`` instead (``img_size=32`` → ``--img-size 32``, `in_chans` → ``--channels``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import wraps
from typing import TypeVar

from bench.core.errors import BenchError
from models.errors import UserError

F = TypeVar("F", bound=Callable[..., int | None])

# parameters whose flag has another name
FLAGS = {"in_chans": "--channels"}


def _flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def flag_words(message: str, names: Iterable[str] = ()) -> str:
    """``message`` with every `name` / `name`=value said as a flag, and with ``name=value`` /
    a bare ``name=`` said as a flag for the ``names`` given (the command's own parameters)."""
    message = re.sub(r"`([a-z][a-z0-9_]*)`(=?)",
                     lambda m: _flag(m.group(1)) + (" " if m.group(2) else ""), message)
    names = sorted(set(names), key=len, reverse=True)
    if not names:
        return message
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")=(\s|$|[),;:])?")

    def flag(m: re.Match) -> str:
        return _flag(m.group(1)) + (m.group(2) if m.group(2) is not None else " ")

    return pattern.sub(flag, message)


def translated(names: Iterable[str] = ()) -> Callable[[F], F]:
    """Wrap a command's ``main`` (inside :func:`bench.core.errors.cli_main`): a library error is
    re-raised in the command's words (its own parameters ``names`` included)."""
    names = tuple(names)

    def wrap(func: F) -> F:
        @wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except UserError as exc:
                raise BenchError(flag_words(str(exc), names)) from None

        return wrapper  # type: ignore[return-value]

    return wrap


flag_errors = translated()  # for commands whose messages name parameters in backticks only
