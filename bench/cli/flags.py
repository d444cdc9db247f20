"""Library messages in command-line words: the library names its parameters (``img_size=32``,
``pretrained=require``); a command line says ``--img-size 32``, ``--pretrained require``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import wraps
from typing import TypeVar

from bench.core.errors import BenchError

F = TypeVar("F", bound=Callable[..., int | None])


def flag_words(message: str, names: Iterable[str]) -> str:
    """``message`` with each ``name=`` of ``names`` as its flag: ``name=value`` → ``--name value``
    and a bare ``name=`` (a parameter mentioned, no value) → ``--name``."""
    names = sorted(set(names), key=len, reverse=True)
    if not names:
        return message
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")=(\s|$|[),;:])?")

    def flag(m: re.Match) -> str:
        word = "--" + m.group(1).replace("_", "-")
        return word + m.group(2) if m.group(2) is not None else word + " "

    return pattern.sub(flag, message)


def translated(names: Iterable[str]) -> Callable[[F], F]:
    """Wrap a CLI ``main`` (inside :func:`bench.core.errors.cli_main`): a library
    :class:`BenchError` is re-raised with its parameter names as flags."""
    names = tuple(names)

    def wrap(func: F) -> F:
        @wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except BenchError as exc:
                raise BenchError(flag_words(str(exc), names)) from None

        return wrapper  # type: ignore[return-value]

    return wrap
