"""BrEaST-Lesions_USG: the official layout read from its spreadsheet, RGBA made grey, the patient
as group, normal cases and other findings kept apart (docs/protocol.md, Data sets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.core.errors import BenchError
from bench.data.breast import IMAGES
from bench.data.datasets import detect_kind, load_index
from bench.data.images import load_resized

BREAST = Path(__file__).resolve().parents[2] / "shared" / "data" / "BrEaST"
SHEET = "BrEaST-Lesions-USG-clinical-data-Dec-15-2023.xlsx"


def _rgba(path: Path, seed: int, size=(96, 72), tint: bool = True) -> None:
    """An RGBA image as the distribution has them: a transparent frame, tinted channels."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(20, 235, (size[1], size[0]), dtype=np.uint8)
    rgba = np.stack([grey, grey, np.clip(grey.astype(int) + (15 if tint else 0), 0, 255)
                     .astype(np.uint8), np.full_like(grey, 255)], axis=-1)
    rgba[:8, :, 3] = 0  # transparent band outside the scan area, colour left underneath
    rgba[:8, :, :3] = 200
    Image.fromarray(rgba, "RGBA").save(path)


def write_breast(root: Path, classes: list[str], others: dict[int, int] | None = None,
                 seed: int = 0) -> Path:
    """A small tree in the official layout: case images, tumour masks, other-finding masks and
    the clinical spreadsheet (first sheet, the official columns, a second sheet as the original)."""
    others = others or {}
    folder = root / IMAGES
    folder.mkdir(parents=True)
    rows = []
    for k, cls in enumerate(classes, start=1):
        name = f"case{k:03d}"
        _rgba(folder / f"{name}.png", seed * 1000 + k)
        tumour = ""
        if cls != "normal":
            tumour = f"{name}_tumor.png"
            mask = np.zeros((72, 96), np.uint8)
            mask[30:50, 40:60] = 255
            Image.fromarray(np.stack([mask] * 3 + [np.full_like(mask, 255)], -1), "RGBA").save(
                folder / tumour)
        other = []
        for j in range(1, others.get(k, 0) + 1):
            other.append(f"{name}_other{j}.png")
            Image.fromarray(np.full((72, 96, 4), 255, np.uint8), "RGBA").save(folder / other[-1])
        rows.append({"CaseID": k, "Image_filename": f"{name}.png", "Mask_tumor_filename":
                     tumour or None, "Mask_other_filename": "&".join(other) or None,
                     "Pixel_size": 0.0078, "Age": 50, "BIRADS": "4a", "Classification": cls})
    with pd.ExcelWriter(root / SHEET, engine="openpyxl") as xl:
        pd.DataFrame(rows).to_excel(xl, sheet_name="BrEaST-Lesions-USG clinical dat", index=False)
        pd.DataFrame({"Column": ["CaseID"]}).to_excel(xl, sheet_name="Data Dictionary", index=False)
    return root


@pytest.fixture()
def breast_tree(tmp_path) -> Path:
    return write_breast(tmp_path / "BrEaST", ["benign", "malignant", "normal", "benign",
                                              "malignant"], others={2: 2})


def test_breast_layout_is_detected_and_read_from_the_spreadsheet(breast_tree):
    assert detect_kind(breast_tree) == "breast"
    index = load_index(breast_tree)
    assert index.kind == "breast" and index.counts() == {"benign": 2, "malignant": 2}
    by_id = {s.id: s for s in index.samples}
    assert set(by_id) == {"case001", "case002", "case004", "case005"}  # normal case003 left out
    assert by_id["case002"].group == "case:2"
    assert by_id["case002"].masks == (f"{IMAGES}/case002_tumor.png",)
    assert by_id["case002"].findings == (f"{IMAGES}/case002_other1.png",
                                         f"{IMAGES}/case002_other2.png")
    assert (f"{IMAGES}/case003.png", "normal tissue (not part of the benign/malignant task)") \
        in index.ignored


def test_breast_rgba_images_become_grey_with_the_transparent_frame_black(breast_tree):
    img = load_resized(breast_tree / IMAGES / "case001.png", 96, 3)
    assert np.array_equal(img[0], img[1]) and np.array_equal(img[1], img[2])  # grey replicated
    grey = load_resized(breast_tree / IMAGES / "case001.png", 96, 1)[0]
    assert grey[:4].max() == 0  # transparent: black, not the colour left underneath
    assert grey[20:].mean() > 50


@pytest.mark.parametrize("damage, message", [
    ("sheet", "clinical-data spreadsheet .* is missing"),
    ("image", "case004.png: listed in .* row 5 but missing"),
    ("mask", "case002_other2.png: listed in"),
    ("column", "missing column.* Classification"),
    ("label", "unknown Classification 'unsure'"),
])
def test_a_damaged_breast_layout_is_one_clear_error(breast_tree, damage, message):
    sheet = breast_tree / SHEET
    if damage == "sheet":
        sheet.unlink()
    elif damage == "image":
        (breast_tree / IMAGES / "case004.png").unlink()
    elif damage == "mask":
        (breast_tree / IMAGES / "case002_other2.png").unlink()
    else:
        df = pd.read_excel(sheet)
        df = df.drop(columns="Classification") if damage == "column" else \
            df.assign(Classification=["benign", "unsure", "normal", "benign", "malignant"])
        df.to_excel(sheet, index=False)
    with pytest.raises(BenchError, match=message):
        load_index(breast_tree)


def test_the_breast_command_line_error_is_one_line_with_exit_2(breast_tree, capsys):
    from bench.cli.split import main
    (breast_tree / SHEET).write_bytes(b"not a spreadsheet")
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(breast_tree), "--out", str(breast_tree.parent / "s.csv")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "\n" not in err and "cannot read the spreadsheet" in err


@pytest.mark.skipif(not BREAST.is_dir(), reason="../shared/data/BrEaST is not here")
def test_the_shared_breast_copy_reads_as_published():
    index = load_index(BREAST)
    assert index.kind == "breast" and index.counts() == {"benign": 154, "malignant": 98}
    assert len({s.group for s in index.samples}) == 252  # one image per patient
    assert sum(len(s.findings) for s in index.samples) == 14
    assert sum(bool(s.masks) for s in index.samples) == 252
    assert sum("normal tissue" in why for _, why in index.ignored) == 4


def test_the_suite_scores_real_data_on_the_other_real_sites_present(busi_tree, tmp_path):
    from bench.engine.sites import default_external, resolve_external_option
    shared = tmp_path / "shared"
    busi = shared / "BUSI"
    shared.mkdir()
    busi_tree.rename(busi)
    breast = write_breast(shared / "BrEaST", ["benign", "malignant"])
    assert default_external([busi], shared) == [str(breast)]
    assert default_external([breast], shared) == [str(busi)]
    assert default_external(None, shared) == ["synthetic:B"]  # the built-in phantom: its site B
    (tmp_path / "phantom").mkdir()
    (tmp_path / "phantom" / "synthetic.json").write_text("{}")
    assert default_external([tmp_path / "phantom"], shared) == []
    assert resolve_external_option("none", [busi]) == []
    assert resolve_external_option("a,b", [busi]) == ["a", "b"]


@pytest.mark.slow
def test_a_breast_set_is_scored_with_the_copy_check_and_reported_with_clustered_intervals(
        small_synthetic, tmp_path, capsys):
    from bench.cli.report import main as report_main
    from tests.helpers import SMOKE, run_main
    out = tmp_path / "runs"
    code, _, err = run_main(capsys, "--data", str(small_synthetic), "--out", str(out), *SMOKE,
                            "--model", "zeimarani_cnn")
    assert code == 0, err
    (run_dir,) = out.iterdir()
    split = pd.read_csv(run_dir / "split.csv")
    train = split[(split.split == "train")].iloc[0]
    # six BrEaST cases, one of them an RGBA re-save of a training image of the run
    breast = write_breast(tmp_path / "BrEaST", ["benign", "malignant"] * 3)
    src = Image.open(small_synthetic / train.path).convert("RGBA")
    src.save(breast / IMAGES / "case003.png")
    code, _, err = run_main(capsys, "--data", str(small_synthetic), "--out", str(out), *SMOKE,
                            "--model", "zeimarani_cnn", "--external", str(breast))
    assert code == 0, err
    preds = pd.read_csv(run_dir / "external" / "breast" / "predictions.csv",
                        keep_default_na=False)
    assert len(preds) == 6 and preds.group.str.startswith("case:").all()
    assert preds.set_index("id").training_copy.to_dict()["case003"] == train.id
    assert (preds.training_copy != "").sum() == 1
    # bench.evaluation.score: the same scoring path for finished runs of any code version (here: reused)
    from bench.cli.score import main as score_main
    assert score_main(["--runs", str(out), "--external", str(breast), "--device", "cpu"]) == 0
    assert "breast: n=6" in capsys.readouterr().out
    assert report_main(["--runs", str(out), "--out", str(tmp_path / "r"), "--n-boot", "50"]) == 0
    table = pd.read_csv(tmp_path / "r" / "tables" / "external_comparison.csv")
    row = table.iloc[0]
    assert row.external_set == "breast" and row.n_external == 6 and row.training_copies == 1
    assert row.internal_auc_ci.startswith("clustered (Obuchowski)")
    assert row.external_auc_ci == "clustered (Obuchowski), one image per cluster"
    assert row.internal_auc_lo <= row.internal_auc <= row.internal_auc_hi


def test_bench_score_without_runs_is_one_line_with_exit_2(tmp_path, capsys):
    from bench.cli.score import main as score_main
    with pytest.raises(SystemExit) as exc:
        score_main(["--runs", str(tmp_path), "--external", "synthetic:B"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no run folders" in err and "\n" not in err.strip()
