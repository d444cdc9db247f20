"""What a run records about the checkout it came from (docs/protocol.md, "Runs and profiles")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
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


def test_the_regeneration_scripts_drop_runs_of_another_code_version_and_keep_this_ones(
        tmp_path: Path) -> None:
    """tools/drop_other_code_runs.py, which both regeneration scripts call before they train."""
    root = Path(__file__).resolve().parents[1]
    for name, version in (("old", "0" * 12), ("now", provenance.code_version())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(
            json.dumps({"settings": {"code_version": version}}))
    done = subprocess.run([sys.executable, str(root / "tools" / "drop_other_code_runs.py"),
                           str(tmp_path)], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["now"]
    assert done.stdout == "removed old: another training-code version\n"
    for script in ("regenerate_busi_cpu.sh", "site_table_cpu.sh"):
        assert "tools/drop_other_code_runs.py" in (root / "tools" / script).read_text()
