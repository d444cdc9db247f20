"""Several sites in one run and leave-one-site-out, on the phantom's sites A and B standing in for
real data (docs/protocol.md, Several sites)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.core.errors import BenchError, console_logging
from bench.data.datasets import load_index
from bench.data.manifest import SplitConfig, make_split
from bench.data.multisite import site_of
from bench.data.synthetic import PhantomSpec, generate
from tests.helpers import SMOKE, run_main


@pytest.fixture(scope="module")
def site_b(tmp_path_factory) -> Path:
    """A small phantom of the second site (another scanner), 30 + 30 images."""
    root = tmp_path_factory.mktemp("siteb") / "phantomb"
    generate(PhantomSpec(n_benign=30, n_malignant=30, seed=3, site="B"), root, workers=2)
    return root


@pytest.mark.slow
def test_several_sites_read_as_one_index_with_each_image_keeping_its_site(small_synthetic,
                                                                          site_b):
    index = load_index(Path(f"{small_synthetic},{site_b}"))
    assert index.kind == "phantom+phantomb"  # the sites, by name
    sites = site_of(pd.Series([s.id for s in index.samples]))
    assert sites.value_counts().to_dict() == {"phantom": 120, "phantomb": 60}
    assert all((index.root / s.path).is_file() for s in index.samples)
    assert all((index.root / m).is_file() for s in index.samples for m in s.masks)


def test_bad_site_lists_are_one_clear_error(tiny_synthetic, tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        load_index(Path(f"{tiny_synthetic},{tmp_path / 'nope'}"))
    twin = tmp_path / "x" / "phantom"
    twin.mkdir(parents=True)
    with pytest.raises(BenchError, match="both called 'phantom'"):
        load_index(Path(f"{tiny_synthetic},{twin}"))


@pytest.mark.slow
def test_a_two_site_run_splits_per_site_and_reports_each_site_and_the_pool(
        small_synthetic, site_b, tmp_path, capsys):
    out = tmp_path / "runs"
    code, _, err = run_main(capsys, "--data", f"{small_synthetic},{site_b}", "--out", str(out),
                            *SMOKE[:-1], "10", "--model", "zeimarani_cnn")
    assert code == 0, err
    (run_dir,) = out.iterdir()
    split = pd.read_csv(run_dir / "split.csv", keep_default_na=False)
    split["site"] = site_of(split.id)
    test = split[split.split == "test"]
    # the held-out test is drawn per site, 10 + 10 each, and is each site's own split's test set
    assert test.groupby(["site", "label"]).size().tolist() == [10, 10, 10, 10]
    for site, root in (("phantom", small_synthetic), ("phantomb", site_b)):
        alone, _ = make_split(load_index(root), SplitConfig(test_per_class=10, folds=10))
        own = set(site + "/" + alone.id[alone.split == "test"])
        assert own == set(test.id[test.site == site])
    # no group (patient or lesion, site-prefixed) in train and test; CV folds hold both sites
    used = split[split.split != "excluded"]
    assert (used.groupby("group").split.nunique() == 1).all()
    assert used.group.str.split(":").str[0].eq(used.site).all()
    train = used[used.split == "train"]
    assert (train.groupby("fold").site.nunique() == 2).all()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["test_by_site"]) == {"phantom", "phantomb"}
    assert metrics["test"]["n"] == 40 and metrics["test_by_site"]["phantomb"]["n"] == 20
    config = json.loads((run_dir / "config.json").read_text())
    assert "," in config["data"]["path"] and "phantom: generated" in config["data"]["split_source"]


@pytest.mark.slow
def test_leave_one_site_out_trains_on_each_site_and_writes_the_matrix(small_synthetic, site_b,
                                                                      tmp_path, capsys):
    from bench.cli.suite import main
    out = tmp_path / "loso"
    code = main(["--data", f"{small_synthetic},{site_b}", "--leave-one-site-out", "--profile",
                 "smoke", "--models", "fus2net", "--out", str(out), "--no-progress",
                 "--test-per-class", "5", "--experiments", "off", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["tables", "trained-on-phantom",
                                                     "trained-on-phantomb"]
    matrix = pd.read_csv(out / "tables" / "site_matrix.csv")
    cells = {(r.trained_on, r.scored_on): r for r in matrix.itertuples()}
    assert set(cells) == {("phantom", "phantom"), ("phantom", "phantomb"),
                          ("phantomb", "phantomb"), ("phantomb", "phantom")}
    assert cells["phantom", "phantom"].how == "internal" and cells["phantom", "phantom"].n == 10
    left_out = cells["phantom", "phantomb"]  # the left-out site is scored whole
    assert left_out.how == "external" and left_out.n == 60
    assert cells["phantomb", "phantom"].n == 120
    assert (matrix.auc_lo <= matrix.auc).all() and (matrix.auc <= matrix.auc_hi).all()
    shown = (out / "tables" / "site_matrix.md").read_text()
    assert "whole site" in shown and "held-out test" in shown
    ext = pd.read_csv(out / "trained-on-phantom" / "tables" / "external_comparison.csv")
    assert ext.external_set.tolist() == ["phantomb"]


def test_leave_one_site_out_needs_several_sites(tiny_synthetic, capsys):
    from bench.cli.suite import main
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(tiny_synthetic), "--leave-one-site-out", "--profile", "smoke"])
    assert exc.value.code == 2 and "needs two or more sites" in capsys.readouterr().err


def test_a_toml_list_of_data_sets_is_several_sites(tmp_path):
    import argparse

    from bench.cli.suite import config_defaults
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path)
    got = config_defaults(tmp_path / "s.toml", {"data": ["../a/BUSI", "../a/BrEaST"]}, p)
    assert got == {"data": Path("../a/BUSI,../a/BrEaST")}


# --- one picture at two sites: grouped across sites as within one -----------------------------


def _site(root: Path, n: int, seed: int) -> Path:
    from tests.helpers import write_image

    for cls in ("benign", "malignant"):
        for i in range(n):
            write_image(root / cls / f"{cls}_{i}.png", seed=seed + i + (500 if cls == "malignant"
                                                                        else 0), size=(96, 72))
    return root


def _copy16(src: Path, dst: Path) -> None:
    """The same picture saved as a 16-bit PNG."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(Image.open(src).convert("L"), dtype=np.uint16) * 257
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(dst)


@pytest.mark.slow
def test_copies_of_one_sites_pictures_at_another_are_grouped_with_them(tmp_path, capsys):
    import shutil

    from bench.engine.sites import site_split
    from bench.engine.spec import RunOptions
    from bench.engine.splits import resolve_split

    a = _site(tmp_path / "sitea", 16, seed=0)
    b = _site(tmp_path / "siteb", 14, seed=1000)
    o = RunOptions(data=Path(f"{a},{b}"), test_per_class=3, out=tmp_path / "runs")
    own, _, _ = resolve_split(RunOptions(data=a, test_per_class=3), load_index(a), 2)
    test_a = own[own.split == "test"].path.tolist()  # site A's held-out pictures ...
    train_a = own[own.split == "train"].path.tolist()
    copied = {p: f"{Path(p).parent}/copy_{Path(p).name}" for p in test_a[:4] + train_a[:2]}
    for k, (src, dst) in enumerate(copied.items()):  # ... copied into site B, one as 16-bit
        if k == 0:
            _copy16(a / src, b / dst)
        else:
            shutil.copy(a / src, b / dst)
    capsys.readouterr()
    with console_logging():  # the library's lines as a command shows them
        _, manifest, report, _ = site_split(o, [a, b], 2)
    rows = manifest.set_index("id")
    for src, dst in copied.items():
        x, y = rows.loc[f"sitea/{Path(src).with_suffix('').as_posix()}"], \
            rows.loc[f"siteb/{Path(dst).with_suffix('').as_posix()}"]
        assert (x.group, x.split, x.fold) == (y.group, y.split, y.fold), (src, dst)
    assert all(rows.loc[f"siteb/{Path(copied[p]).with_suffix('').as_posix()}"].split == "test"
               for p in test_a[:4])  # a held-out picture is never trained on at the other site
    copies = report["cross_site_copies"]
    assert copies["pairs"] == len(copied) and copies["groups"] == len(copied)
    assert {c["evidence"] for c in copies["copies"]} == {"identical pixels"}  # 16-bit included
    assert f"several sites: {len(copied)} cross-site copies" in capsys.readouterr().out


def test_a_copy_whose_label_differs_at_the_other_site_excludes_both():
    from bench.engine.sites import group_cross_site

    manifest = pd.DataFrame({
        "id": ["a/x", "a/y", "a/z", "b/x", "b/w"], "path": ["p"] * 5, "label": [0, 1, 0, 1, 0],
        "group": ["a:g0", "a:g1", "a:g2", "b:g0", "b:g1"],
        "split": ["train", "test", "train", "train", "train"], "fold": [0, -1, 1, 1, 0]})
    out, summary = group_cross_site(manifest, [(0, 3, "identical pixels"),
                                               (2, 4, "dHash differs in 3 of 256 bits")])
    assert out.split.tolist() == ["excluded", "test", "train", "excluded", "train"]
    assert out.fold.tolist()[2:] == [1, -1, 1] and out.group[4] == "a:g2"  # first site's fold
    assert summary | {"copies": None} == {
        "rule": summary["rule"], "pairs": 2, "groups": 2, "moved_to_test": 0, "moved_fold": 1,
        "excluded": 2, "copies": None}


@pytest.mark.slow
def test_a_several_site_manifest_groups_copies_across_sites_and_says_how_many(tmp_path, capsys):
    import shutil

    from bench.cli.split import main
    from tests.helpers import call_main

    a = _site(tmp_path / "sitea", 8, seed=0)
    b = _site(tmp_path / "siteb", 8, seed=1000)
    shutil.copy(a / "benign" / "benign_0.png", b / "benign" / "copy_0.png")
    _copy16(a / "malignant" / "malignant_1.png", b / "malignant" / "copy_1.png")
    out = tmp_path / "s.csv"
    code, printed, err = call_main(capsys, main, "--data", f"{a},{b}", "--out", str(out),
                                   "--test-per-class", "3", "--folds", "2")
    assert code == 0, err
    report = json.loads((tmp_path / "s_report.json").read_text())
    spanning = report["cross_site_groups"]
    assert ["sitea/benign/benign_0", "siteb/benign/copy_0"] in spanning
    assert ["sitea/malignant/malignant_1", "siteb/malignant/copy_1"] in spanning
    assert f"{len(spanning)} groups span two or more sites" in printed
