"""A string-valued enum that reads as its value in JSON, CSV and f-strings alike (the standard
library's ``StrEnum`` from Python 3.11, here also on 3.10, which the project supports)."""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """Members are their values: ``str(m) == f"{m}" == m.value``."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
