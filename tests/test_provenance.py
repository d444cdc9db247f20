"""What a run records about the checkout it came from (docs/protocol.md, "Runs and profiles")."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.core import provenance


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.csv").write_text("a\n1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    monkeypatch.setattr(provenance, "PROJECT_ROOT", tmp_path)
    return tmp_path


def test_clean_checkout_records_the_bare_revision(checkout: Path) -> None:
    assert not provenance.git_revision().endswith("+dirty")
    assert len(provenance.git_revision()) == 40


def test_rewritten_results_do_not_make_the_revision_dirty(checkout: Path) -> None:
    (checkout / "results" / "table.csv").write_text("a\n2\n")
    (checkout / "results" / "new.csv").write_text("b\n")
    assert not provenance.git_revision().endswith("+dirty")


def test_changed_code_makes_the_revision_dirty(checkout: Path) -> None:
    (checkout / "bench" / "code.py").write_text("x = 2\n")
    assert provenance.git_revision().endswith("+dirty")
