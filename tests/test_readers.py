"""Readers for BUSI, BUS-BRA, plain folders and CSV manifests; layout detection (docs/protocol.md, Data sets)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.core.errors import BenchError
from bench.data.datasets import detect_kind, load_index
from bench.data.images import BadImageError, load_resized, read_image
from tests.helpers import BUSI, write_image


def test_busi_masks_are_never_samples_and_normal_is_excluded(busi_tree):
    index = load_index(busi_tree)
    assert index.kind == "busi"
    assert index.counts() == {"benign": 4, "malignant": 3}
    assert all("_mask" not in s.path for s in index.samples)
    first = next(s for s in index.samples if s.id == "benign (1)")
    assert first.masks == ("benign/benign (1)_mask.png", "benign/benign (1)_mask_1.png")


def test_busi_reads_grey_and_rgb_images(busi_tree):
    grey = load_resized(busi_tree / "benign" / "benign (1).png", 32, 3)
    rgb = load_resized(busi_tree / "malignant" / "malignant (2).png", 32, 1)
    assert grey.shape == (3, 32, 32) and np.array_equal(grey[0], grey[2])
    assert rgb.shape == (1, 32, 32) and rgb.dtype == np.uint8


def test_busbra_uses_patient_case_as_group_and_finds_masks(busbra_tree):
    index = load_index(busbra_tree)
    assert index.kind == "busbra"
    groups = {s.id: s.group for s in index.samples}
    assert groups["bus_0001-r"] == groups["bus_0002-l"] == "case:1"
    assert index.counts() == {"benign": 3, "malignant": 2}
    assert index.samples[0].masks == ("Masks/mask_0001-r.png",)


def test_busbra_missing_image_names_the_file(busbra_tree):
    (busbra_tree / "Images" / "bus_0003-r.png").unlink()
    with pytest.raises(BenchError, match="bus_0003-r.png"):
        load_index(busbra_tree)


def test_plain_folders_any_image_type_and_non_images_ignored(tmp_path):
    write_image(tmp_path / "benign" / "a.jpg")
    write_image(tmp_path / "benign" / "b.bmp")
    write_image(tmp_path / "malignant" / "c.tif")
    (tmp_path / "malignant" / "notes.txt").write_text("x")
    index = load_index(tmp_path)
    assert index.kind == "folder" and index.counts() == {"benign": 2, "malignant": 1}
    assert index.ignored == [("malignant/notes.txt", "not an image file")]


def test_csv_manifest_reads_paths_labels_and_groups(tmp_path):
    write_image(tmp_path / "img" / "a.png")
    write_image(tmp_path / "img" / "b.png")
    csv = tmp_path / "list.csv"
    csv.write_text("path,label,group\nimg/a.png,benign,p1\nimg/b.png,Malignant,p1\n")
    index = load_index(csv)
    assert [(s.path, s.label, s.group) for s in index.samples] == [("img/a.png", 0, "p1"),
                                                                  ("img/b.png", 1, "p1")]


@pytest.mark.parametrize("content, message", [
    ("file,label\nimg/a.png,benign\n", "missing column"),
    ("path,label\nimg/a.png,benign\nimg/b.png,cancer\n", "unknown label 'cancer'"),
    ("path,label\nimg/a.png,benign\nimg/a.png,malignant\n", "duplicate image ID"),
    ("path,label\nimg/a.png,benign\n../outside.png,malignant\n", "outside the data root"),
])
def test_csv_manifest_errors_name_the_problem(tmp_path, content, message):
    write_image(tmp_path / "img" / "a.png")
    write_image(tmp_path / "img" / "b.png")
    write_image(tmp_path.parent / "outside.png")
    csv = tmp_path / "list.csv"
    csv.write_text(content)
    with pytest.raises(BenchError, match=message):
        load_index(csv)


@pytest.mark.slow
def test_layout_detection(busi_tree, busbra_tree, small_synthetic, tmp_path):
    assert detect_kind(busi_tree) == "busi"
    assert detect_kind(busbra_tree) == "busbra"
    assert detect_kind(small_synthetic) == "synthetic"
    with pytest.raises(BenchError, match="unknown layout"):
        detect_kind(tmp_path)


def test_missing_path_and_empty_class_are_clear_errors(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        load_index(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BenchError, match="a file must be a CSV manifest"):
        load_index(tmp_path / "notes.txt")
    with pytest.raises(BenchError, match="not a directory"):
        load_index(tmp_path / "notes.txt", "busi")
    write_image(tmp_path / "benign" / "a.png")
    (tmp_path / "malignant").mkdir()
    with pytest.raises(BenchError, match="class 'malignant' has no images"):
        load_index(tmp_path)


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "P", "CMYK", "LA", "1"])
def test_unusual_image_modes_convert_to_8_bit(tmp_path, mode):
    arr = np.linspace(0, 255, 64 * 48).reshape(48, 64).astype(np.uint8)
    img = Image.fromarray(arr)
    if mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16) * 257)
        path = tmp_path / "x.png"
    else:
        img = img.convert(mode)
        path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    out = read_image(path)
    assert out.mode in ("L", "RGB")
    if mode == "I;16":
        assert np.abs(np.asarray(out, dtype=int) - arr).max() <= 1


def test_corrupt_empty_and_tiny_images_raise_bad_image(tmp_path):
    good = write_image(tmp_path / "good.png")
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes(good.read_bytes()[:100])
    good_jpg = write_image(tmp_path / "good.jpg", size=(200, 160))
    truncated_jpg = tmp_path / "trunc.jpg"
    truncated_jpg.write_bytes(good_jpg.read_bytes()[:300])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    tiny = write_image(tmp_path / "tiny.png", size=(20, 20))
    for path, msg in ((truncated, "cannot decode"), (truncated_jpg, "cannot decode"),
                      (empty, "empty file"), (tiny, "smaller than")):
        with pytest.raises(BadImageError, match=msg):
            read_image(path)


@pytest.mark.skipif(not BUSI.is_dir(), reason="BUSI not present in ../shared/data")
def test_real_busi_counts():
    index = load_index(BUSI)
    assert index.counts() == {"benign": 437, "malignant": 210}
    assert not index.ignored


def test_every_data_set_kind_has_a_reader_detection_and_its_card():
    from bench.cli.list import dataset_table
    from bench.data.datasets import INFO, KINDS

    assert set(KINDS) == {"auto", *INFO}
    project = Path(__file__).resolve().parents[1]
    for info in INFO.values():
        assert callable(info.reader) and callable(info.looks_like) and info.groups
        if info.card:
            assert (project / info.card).is_file(), info.card
    assert list(dataset_table().kind) == list(INFO)
