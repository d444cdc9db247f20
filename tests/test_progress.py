"""Long first steps say what they do before doing it (the same-lesion evidence of a data set is
built once, then cached; docs/protocol.md, "Same lesion")."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core.errors import console_logging
from bench.data import lesion


def test_the_same_lesion_evidence_says_what_it_builds_before_building_it(tmp_path, monkeypatch,
                                                                          capsys):
    files = []
    for k in range(3):
        files.append(tmp_path / f"img{k}.png")
        files[-1].write_bytes(b"x")
    done = lesion.PairEvidence(3, np.zeros((0, 2), int), np.zeros((0, len(lesion.FEATURES))))

    def decode():
        print("decoding")
        return []

    def compute(pictures, images, rule):
        print("computing")
        return done

    monkeypatch.setattr(lesion, "compute_evidence", compute)
    cache = tmp_path / "cache"
    with console_logging():  # the lines as a command shows them, in order with the prints
        assert lesion.evidence_for(files, decode, lesion.load_rule(), cache_dir=cache) is done
    out = capsys.readouterr().out.splitlines()
    assert out == [f"building the same-lesion evidence for 3 images (once; cached in {cache})",
                   "decoding", "computing"]
    with console_logging():
        lesion.evidence_for(files, decode, lesion.load_rule(), cache_dir=cache)
    assert capsys.readouterr().out == ""  # cached: nothing to say, nothing rebuilt


def test_looking_for_training_copies_in_an_external_set_is_said_before_it_starts(
        tmp_path, monkeypatch, capsys):
    from bench.data.index import DataIndex, Sample
    from bench.engine import external

    def samples(n):
        return [Sample(id=f"i{k}", path=f"i{k}.png", label=k % 2) for k in range(n)]

    def pictures(paths):
        print(f"decoding {len(paths)}")
        return [None] * len(paths)

    monkeypatch.setattr(external, "pictures", pictures)
    monkeypatch.setattr(external, "find_copies", lambda new, ref: [])
    ext = external.ExternalSet("site_b", "synthetic:B", DataIndex("folders", tmp_path, samples(3)))
    with console_logging():
        assert external._find_training_copies(ext, DataIndex("folders", tmp_path, samples(5)),
                                              False) == ({}, [])  # nothing found: none is a copy
    assert capsys.readouterr().out.splitlines() == [
        "external site_b: looking for copies of the 5 training images among its 3 images (same "
        "picture; once per process)", "decoding 5", "decoding 3"]


class _Stop(Exception):
    pass


def test_a_split_says_it_builds_the_evidence_before_decoding_the_images(tiny_copy, monkeypatch,
                                                                       capsys):
    from bench.data import manifest
    from bench.data.datasets import load_index

    def decode(files, skip_bad):
        print(f"decoding {len(files)}")
        raise _Stop

    monkeypatch.setattr(manifest, "decode", decode)
    with console_logging(), pytest.raises(_Stop):
        manifest.fingerprints(load_index(tiny_copy), False)
    assert capsys.readouterr().out.splitlines() == [
        f"building the same-lesion evidence for 32 images (once; cached in {lesion.CACHE_DIR})",
        "decoding 32"]
    lesion._ANNOUNCED.clear()
