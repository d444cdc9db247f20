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


@pytest.mark.slow  # 4 to 8 s of CPU (a report twice; the script on a folder)
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


def _script_commands(script: Path, module: str, values: dict[str, str]) -> list[list[str]]:
    """The arguments of every ``step ... -m MODULE`` line of a shell script, its variables
    replaced by ``values`` (continuation lines joined)."""
    import shlex

    text = script.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("step ") or f"-m {module} " not in line:
            continue
        for name, value in values.items():
            line = line.replace(f'"${name}"', value).replace(f"${name}", value)
        words = shlex.split(line)
        out.append(words[words.index(module) + 1:])
    return out


def test_the_regeneration_s_later_suite_steps_reuse_the_first_one_s_held_out_runs(tmp_path):
    """tools/regenerate_busi_cpu.sh: a later suite step (the all-image one) plans every held-out
    run exactly as the first step did (Fus2Net with the experiments' CV folds included), so it
    trains none of them again under other settings (a second Fus2Net row in Table 3)."""
    from bench.cli import suite as suite_cli
    from bench.jobs.plan import suite_jobs

    root = Path(__file__).resolve().parents[1]
    values = {"PY": "python", "DATA": str(tmp_path), "PROFILE": "cpu", "EXTERNAL": "synthetic:B",
              "OUT": str(tmp_path / "set")}
    steps = _script_commands(root / "tools" / "regenerate_busi_cpu.sh", "bench.suite", values)
    assert len(steps) >= 2

    def held_out(argv: list[str]) -> list:
        args, passthrough = suite_cli.parse_args(argv)
        s = suite_cli.settings_from_args(args, passthrough, "test", Path(args.out),
                                         suite_cli.cluster_config(args))
        jobs = suite_jobs(s.base, s.models, s.seeds, s.experiment_seeds, s.variants, s.external,
                          s.experiment_folds, s.evaluations)
        return [j.options for j in jobs if j.options.evaluation != "allcv"]

    first = held_out(steps[0])
    fus2net_folds = {o.folds for o in first if o.model == "fus2net"}
    for later in steps[1:]:
        again = held_out(later)
        assert again and all(o in first for o in again), [
            (o.model, o.seed, o.folds) for o in again if o not in first]
    # the cleaned Fus2Net runs keep the reference's CV folds (their row differs in the images only)
    assert fus2net_folds == {2}
    text = (root / "tools" / "regenerate_busi_cpu.sh").read_text()
    assert '[ "$model" = fus2net ] && folds=(--folds 2)' in text
    (clean,) = [a for a in _script_commands(root / "tools" / "regenerate_busi_cpu.sh", "bench.run",
                                            values) if "clean" in a]
    assert "${folds[@]}" in clean
