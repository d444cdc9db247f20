"""User-facing errors: one clear line, exit code 2 (docs/faults.md, "When things go wrong")."""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# The one way the library names a parameter in a message (errors and log lines alike): in
# backticks, as a Python caller passes it (`pretrained`=hub, `img_size` 32, pass `skip_invalid`);
# a command says its flags instead (--pretrained hub, --img-size 32, pass --skip-invalid-runs):
# `cli_main` renders every error and log line with :func:`in_flag_words`. A parameter whose flag
# is not its name with dashes is listed here (a command's own differences: ``cli_main(flags=...)``).
FLAGS = {"in_chans": "--channels", "skip_invalid": "--skip-invalid-runs", "augment_policy": "--augment"}
_PARAM = re.compile(r"`(\w+)`(?:=('?)([^'\s;,)]*)\2)?")


def in_flag_words(message: str, flags: dict[str, str] = FLAGS) -> str:
    """``message`` with each `parameter` (and `parameter`=value) said as the command's flag."""
    def say(m: re.Match) -> str:
        flag = flags.get(m.group(1), "--" + m.group(1).replace("_", "-"))
        return f"{flag} {m.group(3)}" if m.group(3) else flag
    return _PARAM.sub(say, message)


class SettingError(BenchError):
    """A setting that cannot work, named as a Python caller passes it (``gpus_per_job``); the
    message is "`setting`: problem", which a command says with its flag (--gpus-per-job: ...)."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"`{setting}`: {problem}")
        self.setting = setting


class ConsoleHandler(logging.Handler):
    """The library's log lines as a command shows them: INFO on stdout, WARNING and above on
    stderr (the streams of the moment, so captured output sees them), each line as it was logged
    ("%(message)s") with its parameters said as flags."""

    def __init__(self, flags: dict[str, str] = FLAGS) -> None:
        super().__init__(logging.INFO)
        self.flags = flags

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(in_flag_words(record.getMessage(), self.flags) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging never raises into the caller
            self.handleError(record)


# the packages whose module loggers (logging.getLogger(__name__)) a command shows
LIBRARY_LOGGERS = ("bench", "models")


@contextmanager
def console_logging(flags: dict[str, str] = FLAGS) -> Iterator[None]:
    """While a command runs, the library's INFO and higher log lines go to its console
    (:class:`ConsoleHandler`); nested commands share the outer one's."""
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    if any(isinstance(h, ConsoleHandler) for lg in loggers for h in lg.handlers):
        yield
        return
    handler, levels = ConsoleHandler(flags), [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


# what a command that trains says when interrupted (bench.run, bench.suite), and what any other
# command says: every file is written whole or not at all (bench/core/atomic.py)
INTERRUPTED_RUN = "interrupted: finished folds are saved; rerun the same command to resume"
INTERRUPTED = ("interrupted: the files already written are complete (no file is left half "
               "written); rerun the same command to finish")

# a write that failed for want of room or of a writable file system (README, "When things go
# wrong"): said in one line, the work already finished kept
DISK_ERRORS = {errno.ENOSPC: "no space left on the device",
               errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only"}
# the same errors as libraries that write outside Python's file objects raise them (safetensors,
# torch): no errno, only the system's words (strerror)
_DISK_TEXTS = {os.strerror(code): code for code in DISK_ERRORS}
# bench.core.atomic.write_atomic's temporary file (".NAME.<random>.tmp" beside NAME)
_TEMPORARY = re.compile(r"^\.(.+)\.[A-Za-z0-9_]{8}\.tmp$")


def disk_error(exc: BaseException) -> int | None:
    """The errno of a write that failed for want of room (ENOSPC, EDQUOT) or on a read-only file
    system (EROFS), whichever library raised it; ``None`` for any other exception."""
    if isinstance(exc, OSError):
        return exc.errno if exc.errno in DISK_ERRORS else None
    text = str(exc)
    return next((code for words, code in _DISK_TEXTS.items() if words in text), None)


def written_path(exc: BaseException) -> Path | None:
    """The file a failed write names (``exc.filename``), an atomic write's temporary file or folder
    said as the file or folder it was to become; ``None`` when it names none."""
    name = getattr(exc, "filename", None)
    if not name:
        return None
    path = Path(os.fsdecode(name))
    # a folder built beside its target (atomic.output_folder, publish_folder): said as the target
    parts = [m.group(1) if (m := _TEMPORARY.match(part)) else part for part in path.parts]
    return Path(*parts)


def disk_message(exc: BaseException, code: int) -> str:
    """One line for a failed write: the file, what happened and what to do."""
    where = written_path(exc) or "a file"
    todo = ("choose a writable folder (`out`) or make it writable" if code == errno.EROFS
            else "free some space")
    return (f"{where}: cannot write it, {DISK_ERRORS[code]}; {todo} and rerun the same command "
            "(the work already finished is kept: every file is written whole or not at all)")


def cli_main(func: F | None = None, *, interrupted: str = INTERRUPTED,
             flags: dict[str, str] | None = None) -> F:
    """Wrap a CLI ``main``: a :class:`BenchError` prints ``error: ...`` and exits with code 2; so
    does a write that fails on a full disk, a quota or a read-only file system
    (:func:`disk_error`). ``interrupted`` is the line said on Ctrl-C (exit code 130):
    ``@cli_main(interrupted=INTERRUPTED_RUN)`` for a command that trains and resumes. The
    library's log lines are the command's console lines (:func:`console_logging`); errors and log
    lines say parameters as the command's flags (:data:`FLAGS`, updated by ``flags``)."""
    if func is None:
        return lambda f: cli_main(f, interrupted=interrupted, flags=flags)  # type: ignore[return-value]
    said = {**FLAGS, **(flags or {})}

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with console_logging(said):
                return func(*args, **kwargs)
        except UserError as exc:  # BenchError, or the model package's own
            print(f"error: {in_flag_words(str(exc), said)}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            print(interrupted, file=sys.stderr)
            raise SystemExit(130) from None
        except Exception as exc:
            code = disk_error(exc)
            if code is None:
                raise
            print(f"error: {in_flag_words(disk_message(exc, code), said)}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None

    return wrapper  # type: ignore[return-value]


def ensure_writable(folder: Path, option: str = "`out`") -> None:
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
