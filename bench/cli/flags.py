"""Library messages in command-line words: the library names a parameter as `name` (backticks)
or `name`=value; a command says ``--name`` / ``--name value`` instead."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from bench.core.errors import BenchError
from models.errors import UserError

F = TypeVar("F", bound=Callable[..., int | None])


def flag_words(message: str) -> str:
    """``"`profile`=cpu: no runs"`` → ``"--profile cpu: no runs"``; ``"`n_boot`"`` → ``"--n-boot"``."""
    def flag(m: re.Match) -> str:
        return "--" + m.group(1).replace("_", "-") + (" " if m.group(2) else "")

    return re.sub(r"`([a-z][a-z0-9_]*)`(=?)", flag, message)


def flag_errors(func: F) -> F:
    """Wrap a command's ``main`` (inside :func:`bench.core.errors.cli_main`): a library error is
    re-raised in the command's words."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            raise BenchError(flag_words(str(exc))) from None

    return wrapper  # type: ignore[return-value]
