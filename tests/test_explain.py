"""Where the models look (docs/protocol.md, Where the models look): Grad-CAM maps against lesion masks."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.cli.explain import main as explain_main
from bench.evaluation.camlayer import choose_cam_layer
from bench.evaluation.explain import gradcam
from bench.stats.localization import cam_measures, frame_band
from models import create_model, get_model_config, list_models
from tests.helpers import BUSI, SMOKE, run_main


def test_measures_match_hand_computed_values_on_a_toy_map():
    cam = np.zeros((10, 10))
    cam[4:6, 4:6] = 1.0  # all energy in a 2×2 block at the centre
    mask = np.zeros((10, 10), bool)
    mask[3:7, 3:7] = True  # a 4×4 lesion: 16% of the image
    m = cam_measures(cam, mask, tolerance=0.0, band=0.1)
    assert m["pointing_hit"] == 1.0
    assert m["lesion_energy_ratio"] == pytest.approx(1.0 / 0.16)
    assert m["frame_energy_ratio"] == 0.0  # nothing in the outer ring
    cam = np.zeros((10, 10))
    cam[0, :] = 1.0  # all energy in the top row, part of the 1-pixel frame band (36 pixels)
    m = cam_measures(cam, mask, tolerance=0.1, band=0.1)
    assert frame_band(10, 0.1).sum() == 36
    assert m["frame_energy_ratio"] == pytest.approx(1.0 / 0.36)
    assert m["lesion_energy_ratio"] == 0.0 and m["pointing_hit"] == 0.0  # 3 px away > 1 px
    assert np.isnan(cam_measures(cam, None)["lesion_energy_ratio"])  # no mask: said, not guessed
    assert np.isnan(cam_measures(np.zeros((10, 10)), mask)["frame_energy_ratio"])  # empty map


def test_explanations_see_images_as_bench_run_did_and_refuse_another_detector_s_cleaning(
        tiny_synthetic, monkeypatch):
    """bench.explain reads a run's images through bench.engine.runner.as_seen, as bench.run and
    bench.score do: as they are for a run on uncleaned images, and a run cleaned by another
    annotation detector version is refused for that run alone (NotExplained), not re-cleaned."""
    from types import SimpleNamespace

    from bench.data.datasets import load_index
    from bench.engine.spec import RecordedSettings
    from bench.evaluation import explain

    index = load_index(tiny_synthetic)
    rows = pd.DataFrame({"id": [s.id for s in index.samples], "path": [s.path for s in index.samples],
                         "label": [s.label for s in index.samples], "prob_malignant": 0.5})
    def record(annotations: str) -> SimpleNamespace:
        return SimpleNamespace(settings=RecordedSettings("fus2net", annotations=annotations))

    run = SimpleNamespace(path=tiny_synthetic.parent / "run-A", test=rows, record=record("keep"),
                          external={"site_b": (rows, {"source": str(tiny_synthetic)})})
    seen = []
    monkeypatch.setattr(explain, "as_seen", lambda ix, paths, ann: seen.append(ann) or ix)
    parts = explain.image_sets(run, index, index)
    assert [p.name for p in parts] == ["test", "site_b"] and seen == ["keep"]
    monkeypatch.undo()
    run.record = record("clean:ns:000000000000")
    with pytest.raises(explain.NotExplained, match="run-A: the run was trained on images cleaned "
                                                   "by annotation detector 000000000000"):
        explain.image_sets(run, index, index)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_gradcam_works_on_every_registered_model_at_the_input_size(name):
    cfg = get_model_config(name)
    size = max(64, cfg.min_input_size)
    model = create_model(name, pretrained="none").eval()
    layer = choose_cam_layer(model, cfg.cam_layer, size, cfg.in_chans)
    assert layer.measurable, layer  # every model has a stage of at least 7×7 at the cpu sizes
    maps = gradcam(model, layer.name, torch.randn(2, cfg.in_chans, size, size),
                   torch.tensor([1, 0]))
    assert maps.shape == (2, size, size) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1


def _mark(folder):
    """A bright marker in the dark bottom-left corner (inside the frame band) of every malignant
    image: a shortcut, like a caliper or label that only malignant cases carry."""
    for path in sorted(folder.glob("syn_malignant_*.png")):
        if "_mask" in path.name:
            continue
        a = np.asarray(Image.open(path)).copy()
        a[a.shape[0] - 20:a.shape[0] - 4, 6:38] = 255
        Image.fromarray(a).save(path)


@pytest.mark.slow
def test_a_model_trained_on_a_corner_shortcut_looks_at_the_frame(synthetic_copy, small_synthetic,
                                                                 tmp_path, capsys):
    _mark(synthetic_copy / "malignant")
    seen = {}
    for name, data in (("clean", small_synthetic), ("shortcut", synthetic_copy)):
        out = tmp_path / name
        code, _, err = run_main(capsys, "--model", "zeimarani_cnn", "--data", str(data), "--out",
                                str(out), "--profile", "cpu", "--img-size", "96", "--epochs",
                                "8", "--folds", "0", "--no-progress", "--test-per-class", "20")
        assert code == 0, err
        assert explain_main(["--runs", str(out), "--data", str(data)]) == 0
        (run_dir,) = out.iterdir()
        cam = pd.read_csv(run_dir / "explain" / "gradcam" / "cam_metrics.csv")
        assert cam.has_mask.all() and len(cam) == 40  # the phantom writes lesion masks
        malignant = cam[cam.label == 1]
        seen[name] = (malignant.frame_energy_ratio.mean(), malignant.lesion_energy_ratio.mean())
        info = json.loads((run_dir / "explain" / "gradcam" / "info.json").read_text())
        assert info["cam_layer"] == "features.12" and info["map_size"] == "12x12"
        assert json.loads((run_dir / "compute.json").read_text())["explain/gradcam"]["seconds"] > 0
        assert set(cam.status) <= {"measured", "empty map"}
        with np.load(run_dir / "explain" / "gradcam" / "maps.npz") as npz:
            assert npz["test/maps"].shape == (40, 64, 64) and npz["test/maps"].dtype == np.float16
    # measured (2026-11-30, split by the same-lesion rule, features.12 at 12×12, 8 epochs):
    # frame 0.43 -> 0.95, lesion 4.24 -> 1.38
    assert seen["shortcut"][0] > 1.5 * seen["clean"][0], seen
    assert seen["shortcut"][1] < 0.75 * seen["clean"][1], seen


@pytest.mark.slow
@pytest.mark.skipif(not BUSI.is_dir(), reason="BUSI not available")
def test_explain_on_busi_measures_every_test_image_against_its_masks(tmp_path, capsys):
    code, _, err = run_main(capsys, "--data", str(BUSI), "--out", str(tmp_path), *SMOKE,
                            "--folds", "0")
    assert code == 0, err
    assert explain_main(["--runs", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    cam = pd.read_csv(run_dir / "explain" / "gradcam" / "cam_metrics.csv")
    assert len(cam) == 100 and cam.has_mask.all()
    # a map with no energy (no evidence for malignancy at all) has undefined ratios, never 0
    has_energy = cam.frame_energy_ratio.notna()
    assert has_energy.mean() > 0.5 and cam.pointing_hit.isin([0, 1]).any()
    assert (cam.lesion_energy_ratio.notna() == has_energy).all()


@pytest.mark.slow
def test_a_run_trained_on_cleaned_images_is_explained_on_its_cleaned_external_images(
        small_synthetic, tmp_path, capsys, monkeypatch):
    """A model trained with ``--annotations clean`` scored its external sets on cleaned copies:
    its explanations read those copies, not the originals it never saw, and measure them against
    the original lesion masks."""
    from bench.data.synthetic import PhantomSpec, generate

    monkeypatch.setenv("FUS2BENCH_CACHE", str(tmp_path / "cache"))
    site_b = generate(PhantomSpec(n_benign=8, n_malignant=8, seed=12, site="B"),
                      tmp_path / "site_b", workers=1)
    code, _, err = run_main(capsys, "--data", str(small_synthetic), "--out", str(tmp_path / "runs"),
                            *SMOKE, "--folds", "0", "--annotations", "clean",
                            "--external", str(site_b))
    assert code == 0, err
    assert explain_main(["--runs", str(tmp_path / "runs")]) == 0, capsys.readouterr().err
    (run_dir,) = (tmp_path / "runs").iterdir()
    cam = pd.read_csv(run_dir / "explain" / "gradcam" / "cam_metrics.csv")
    assert (cam.set == "site_b").sum() == 16 and (cam.set == "test").sum() == 40
    # the lesion masks are the originals' (a cleaned copy holds only the images)
    assert cam.has_mask.all()
