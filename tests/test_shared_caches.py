"""Caches that runs share on disk (the phantom, the cleaned copies, the split's same-lesion
evidence) are built once, under a lock, and published whole (docs/protocol.md, Data sets): jobs
that ask at once never read a half-built cache, and a killed builder's leftovers are never read."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import bench.data.synthetic as synthetic
from bench.core.atomic import publish_folder
from bench.core.errors import console_logging
from bench.data.synthetic import MARKER, PhantomSpec, ensure_synthetic

SPEC = PhantomSpec(n_benign=3, n_malignant=3, seed=5)


def _at_once(n: int, call) -> list:
    """``call(k)`` in ``n`` threads started together; their results in order."""
    results: list = [None] * n
    start = threading.Barrier(n)

    def one(k: int) -> None:
        start.wait()
        results[k] = call(k)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_two_builders_asking_at_once_build_one_folder_once(tmp_path):
    target, built = tmp_path / "cache" / "thing", []

    def build(tmp: Path) -> None:
        built.append(tmp)
        for i in range(5):
            time.sleep(0.05)  # slow enough that the other asks while this one writes
            (tmp / f"{i}.txt").write_text(str(i))
        (tmp / "done").write_text("")

    def ask(_k: int) -> tuple[bool, int]:
        made = publish_folder(target, build, lambda p: (p / "done").is_file(), "waiting")
        return made, len(list(target.glob("*.txt")))  # what the asker reads: all of it

    results = _at_once(2, ask)
    assert sorted(results) == [(False, 5), (True, 5)] and len(built) == 1
    assert not list(target.parent.glob(".thing.*.tmp"))


def test_a_killed_builders_leftovers_are_never_read_as_the_cache(tmp_path):
    target = tmp_path / "thing"
    half = tmp_path / ".thing.x1y2.tmp"  # a builder killed while writing into its temporary
    half.mkdir()
    (half / "0.txt").write_text("half")
    target.mkdir()  # an unfinished folder where the cache goes (no "done" marker)
    (target / "stale.txt").write_text("stale")

    def build(tmp: Path) -> None:
        (tmp / "done").write_text("")

    assert publish_folder(target, build, lambda p: (p / "done").is_file(), "waiting")
    assert sorted(p.name for p in target.iterdir()) == ["done"]
    assert not half.exists() and not list(tmp_path.glob(".thing.*.tmp"))


def test_the_phantom_asked_for_by_two_jobs_at_once_is_generated_once(tmp_path, monkeypatch,
                                                                      capsys):
    real = synthetic.generate

    def slow_generate(spec: PhantomSpec, out: Path, workers: int | None = None) -> Path:
        time.sleep(0.3)  # the other job asks while this one writes
        return real(spec, out, workers=1)

    monkeypatch.setattr(synthetic, "generate", slow_generate)
    with console_logging():
        roots = _at_once(2, lambda _k: ensure_synthetic(SPEC, cache_root=tmp_path))
    assert roots[0] == roots[1] == tmp_path / SPEC.cache_name()
    assert capsys.readouterr().out.count("generating synthetic phantom data") == 1
    assert len(list(roots[0].glob("*/syn_*[0-9].png"))) == 6 and (roots[0] / MARKER).is_file()


def test_a_half_generated_phantom_is_generated_again_not_read(tmp_path):
    target = tmp_path / SPEC.cache_name()
    (target / "benign").mkdir(parents=True)  # a build killed before its marker was written
    (target / "benign" / "syn_benign_0000.png").write_bytes(b"")
    assert ensure_synthetic(SPEC, cache_root=tmp_path, verbose=False) == target
    assert (target / MARKER).is_file()
    assert (target / "benign" / "syn_benign_0000.png").stat().st_size > 0


@pytest.mark.slow
def test_two_processes_asking_for_the_phantom_at_once_share_one_build(tmp_path):
    go = tmp_path / "go"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from bench.core.errors import console_logging
        from bench.data.synthetic import PhantomSpec, ensure_synthetic
        from bench.data.datasets import load_index
        Path(sys.argv[1]).write_text("")
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        with console_logging():  # the progress lines as a command shows them
            root = ensure_synthetic(PhantomSpec(n_benign=12, n_malignant=12, seed=5),
                                    cache_root=Path({str(tmp_path / "cache")!r}))
        print("images", len(load_index(root).samples))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"ready{k}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(2)]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{k}").exists() for k in range(2)) and time.time() < deadline:
        time.sleep(0.05)
    go.write_text("")
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    text = "".join(o for o, _ in outs)
    assert text.count("generating synthetic phantom data") == 1
    assert text.count("images 24") == 2


def test_images_cleaned_by_two_jobs_at_once_are_cleaned_once(tmp_path, monkeypatch):
    import bench.data.annotations as annotations

    src = tmp_path / "src"
    for i in range(4):
        (src / f"{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (src / f"{i}.png").write_bytes(b"x")
    cleaned = []

    def fake_clean(a: Path, b: Path, method: str = "telea") -> None:
        time.sleep(0.05)
        cleaned.append(b.name)
        b.parent.mkdir(parents=True, exist_ok=True)
        b.write_bytes(a.read_bytes())

    monkeypatch.setattr(annotations, "clean_file", fake_clean)
    paths = [f"{i}.png" for i in range(4)]
    roots = _at_once(2, lambda _k: annotations.cleaned_copy(src, paths, cache_root=tmp_path / "c"))
    assert roots[0] == roots[1] and sorted(cleaned) == sorted(paths)
    assert all((roots[0] / p).is_file() for p in paths)


def test_a_suite_builds_the_shared_caches_once_per_data_before_its_jobs(monkeypatch, tmp_path):
    import bench.jobs.suite as suite
    from bench.engine.spec import RunOptions
    from bench.jobs.plan import Job
    from models.errors import UserError

    built = []

    def fake_build(o) -> None:
        built.append(o.model)
        if o.data is not None:
            raise UserError("bad data")  # left for the job to say

    monkeypatch.setattr(suite, "build_shared", fake_build)
    base = RunOptions(model="fus2net", out=tmp_path)
    jobs = [Job(label=m, options=replace(base, model=m, seed=s))
            for m in ("fus2net", "zeimarani_cnn") for s in (0, 1)]
    jobs.append(Job(label="other", options=replace(base, data=tmp_path / "x")))
    suite.build_caches(jobs)
    assert built == ["fus2net", "fus2net"]  # one per distinct data, a failure not raised


def test_one_data_sets_images_are_grouped_by_one_process_at_a_time(tmp_path, monkeypatch):
    import bench.engine.splits as splits
    from bench.data.index import DataIndex

    monkeypatch.setattr(splits, "CACHE_DIR", tmp_path / "cache")
    index = DataIndex(kind="folder", root=tmp_path, samples=[])
    inside, most = [0], [0]

    def group(_k: int) -> None:
        with splits.evidence_lock(index):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.1)
            inside[0] -= 1

    _at_once(2, group)
    assert most[0] == 1
    blocker = tmp_path / "file"  # a cache that cannot be written: nothing is locked, work goes on
    blocker.write_text("")
    monkeypatch.setattr(splits, "CACHE_DIR", blocker)
    with splits.evidence_lock(index):
        pass
