"""User-facing errors: one clear line, exit code 2 (DEVELOPERS.md, Standards)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from models.errors import UserError

EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., int | None])


class BenchError(UserError):
    """A problem with the user's input or environment, reported as one line without traceback."""


def cli_main(func: F) -> F:
    """Wrap a CLI ``main``: a :class:`BenchError` prints ``error: ...`` and exits with code 2."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:  # BenchError, or the model package's own
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            print("interrupted: finished folds are saved; rerun the same command to resume",
                  file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]
