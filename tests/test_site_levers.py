"""Levers against the site gap (docs/protocol.md, "Closing the site gap"): the ultrasound
augmentation's transforms on images with known answers, the paper policy unchanged byte for byte,
BatchNorm adaptation that never reads a label, the leave-one-site-out choice that never reads the
target, and the site-gap report section (silent without levers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.core.errors import BenchError
from bench.core.provenance import file_sha256
from bench.data import augment as aug
from bench.engine.adaptation import adapt_batchnorm, adaptation_folder
from bench.engine.spec import RunOptions
from bench.evaluation.levers import BASELINE, choose_lever
from models import get_model_config
from tests.helpers import write_fixture_run

# --- the paper policy, as the code before the ultrasound policy computed it (a frozen copy) ------


def _reference_paper_params(n: int, cfg: aug.AugmentConfig, gen: torch.Generator) -> dict:
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    return {
        "angle": uniform(-cfg.rotation_deg, cfg.rotation_deg) * math.pi / 180,
        "shear": uniform(-cfg.shear_deg, cfg.shear_deg) * math.pi / 180,
        "tx": uniform(-cfg.shift, cfg.shift),
        "ty": uniform(-cfg.shift, cfg.shift),
        "flip": (torch.rand(n, generator=gen) < 0.5) if cfg.hflip else torch.zeros(n, dtype=torch.bool),
        "brightness": uniform(*cfg.brightness),
    }


def _reference_paper_augment(x: torch.Tensor, p: dict) -> torch.Tensor:
    a, s = p["angle"], p["shear"]
    cos, sin = torch.cos(a), torch.sin(a)
    fwd = torch.zeros(len(a), 3, 3)
    fwd[:, 0, 0], fwd[:, 0, 1] = cos, -sin + cos * torch.tan(s)
    fwd[:, 1, 0], fwd[:, 1, 1] = sin, cos + sin * torch.tan(s)
    fwd[:, 0, 2], fwd[:, 1, 2] = 2 * p["tx"], 2 * p["ty"]
    fwd[:, 2, 2] = 1
    flip = torch.where(p["flip"], -1.0, 1.0)
    fwd[:, :, 0] = fwd[:, :, 0] * flip.view(-1, 1)
    theta = torch.linalg.inv(fwd)[:, :2, :].to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x * p["brightness"].to(x.device, x.dtype).view(-1, 1, 1, 1)
    return x.clamp_(0, 255)


def _batch(n: int = 8, size: int = 32, seed: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 255


def test_the_paper_policy_draws_and_computes_byte_for_byte_what_it_did_before():
    cfg = aug.augment_policy("paper")
    assert type(cfg) is aug.AugmentConfig
    for seed in range(3):
        new = aug.sample_params(8, cfg, torch.Generator().manual_seed(seed))
        old = _reference_paper_params(8, cfg, torch.Generator().manual_seed(seed))
        assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in old)
        x = _batch(seed=seed)
        assert torch.equal(aug.augment(x.clone(), new), _reference_paper_augment(x.clone(), old))


def test_the_ultrasound_policy_draws_the_paper_parameters_first_and_one_row_per_image():
    p_us = aug.sample_params(6, aug.UltrasoundAugment(), torch.Generator().manual_seed(1))
    p_pa = aug.sample_params(6, aug.AugmentConfig(), torch.Generator().manual_seed(1))
    assert all(torch.equal(p_us[k], p_pa[k]) for k in p_pa)  # the same paper draws
    # every parameter has one row per image (the stacked engine concatenates members' draws)
    assert {k for k in p_us if k.startswith("us_")} and all(v.shape[0] == 6 for v in p_us.values())
    out = aug.augment(_batch(6), p_us)
    assert out.shape == (6, 3, 32, 32) and out.min() >= 0 and out.max() <= 255


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="policies are paper, ultrasound"):
        aug.augment_policy("speckle")


def test_gamma_on_a_constant_image_gives_the_power_law_value():
    x = torch.full((2, 1, 8, 8), 64.0)
    out = aug.gamma_curve(x, torch.tensor([0.5, 2.0]))
    assert torch.allclose(out[0], torch.full_like(out[0], 255 * (64 / 255) ** 0.5))
    assert torch.allclose(out[1], torch.full_like(out[1], 255 * (64 / 255) ** 2.0))
    assert torch.equal(aug.gamma_curve(x, torch.ones(2)), x)  # gamma 1: the identity


def test_speckle_is_multiplicative_and_keeps_the_mean():
    noise = torch.randn(4, 32, 32, generator=torch.Generator().manual_seed(0))
    sigma = torch.full((4,), 0.2)
    flat = torch.full((4, 1, 64, 64), 100.0)
    out = aug.speckle(flat, sigma, noise)
    assert abs(float(out.mean()) - 100.0) < 2.0  # the factor has mean 1
    assert float(out.std()) > 5.0  # and it does add speckle
    assert torch.equal(aug.speckle(torch.zeros_like(flat), sigma, noise), torch.zeros_like(flat))
    assert torch.allclose(aug.speckle(2 * flat, sigma, noise), 2 * out)  # multiplicative
    assert torch.equal(aug.speckle(flat, torch.zeros(4), noise), flat)  # sigma 0: the identity


def test_a_tgc_curve_scales_rows_monotonically_with_depth():
    x = torch.full((2, 1, 16, 8), 50.0)
    out = aug.gain_curve(x, torch.zeros(2), torch.tensor([6.0, -6.0]))
    rows_up, rows_down = out[0, 0, :, 0], out[1, 0, :, 0]
    assert bool((rows_up.diff() > 0).all()) and bool((rows_down.diff() < 0).all())
    assert torch.allclose(out[0, 0, 0], torch.full((8,), 50.0 * 10 ** (-3 / 20)))  # -6 dB / 2 on top
    gain = aug.gain_curve(x, torch.tensor([6.0, 0.0]), torch.zeros(2))
    assert torch.allclose(gain[0], x[0] * 10 ** (6 / 20)) and torch.equal(gain[1], x[1])


def test_a_sector_mask_zeroes_outside_the_sector_and_keeps_the_inside():
    x = torch.full((1, 1, 64, 64), 200.0)
    out = aug.sector_border_mask(x, torch.tensor([math.radians(30)]), torch.tensor([0.0]),
                                 torch.tensor([0.0]))[0, 0]
    assert out[2, 0] == 0 and out[2, 63] == 0  # top corners: outside a fan from the top centre
    assert out[60, 32] == 200 and out[10, 32] == 200  # the centre line is inside
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5 - 32, indexing="ij")
    inside = torch.atan2(xs.abs(), ys) <= math.radians(30)
    assert torch.equal(out > 0, inside)
    none = aug.sector_border_mask(x, torch.tensor([math.pi]), torch.tensor([0.0]),
                                  torch.tensor([0.0]))
    assert torch.equal(none, x)
    framed = aug.sector_border_mask(x, torch.tensor([math.pi]), torch.tensor([0.0]),
                                    torch.tensor([0.1]))[0, 0]
    assert framed[0].eq(0).all() and framed[:, -1].eq(0).all() and framed[32, 32] == 200


def _high_frequency_energy(x: torch.Tensor) -> float:
    spectrum = torch.fft.fft2(x - x.mean()).abs() ** 2
    h = x.shape[-1]
    f = torch.fft.fftfreq(h).abs()
    high = (f.view(-1, 1) > 0.25) | (f.view(1, -1) > 0.25)
    return float(spectrum[..., high].sum())


def test_down_up_sampling_and_blur_lower_the_high_frequency_energy():
    x = _batch(2, 64)
    before = _high_frequency_energy(x)
    down = aug.down_up(x, torch.tensor([2.0, 3.0]))
    assert _high_frequency_energy(down) < 0.3 * before
    assert torch.equal(aug.down_up(x, torch.ones(2)), x)  # factor 1: the identity
    blurred = aug.gaussian_blur(x, torch.tensor([0.02, 0.02]))
    assert _high_frequency_energy(blurred) < 0.3 * before
    assert torch.allclose(aug.gaussian_blur(x, torch.zeros(2)), x)  # sigma 0: the identity
    # a constant image stays constant (the kernel sums to 1, edges replicated)
    flat = torch.full((1, 1, 16, 16), 77.0)
    assert torch.allclose(aug.gaussian_blur(flat, torch.tensor([0.05])), flat)


def test_depth_zoom_enlarges_the_shallow_top_centre():
    depth = torch.arange(64, dtype=torch.float32).view(1, 1, 64, 1).expand(1, 1, 64, 64).contiguous()
    out = aug.depth_zoom(depth, torch.tensor([0.5]))[0, 0]
    assert float(out[0, 32]) < 1.0  # the top stays at the top
    assert 30 <= float(out[-1, 32]) <= 33  # the bottom now shows half the depth
    assert torch.equal(aug.depth_zoom(depth, torch.tensor([1.0])), depth)


# --- the run's settings ---------------------------------------------------------------------------


def test_the_augmentation_policy_enters_the_run_hash_only_when_not_the_paper_s():
    from bench.engine.spec import RunSpec

    base = dict(model="fus2net", model_kwargs={}, weights="random", img_size=64, batch_size=16,
                epochs=1, folds=0, train_limit=None, val_limit=None, optimizer="adam", lr=None,
                augment=True, channels=3, seed=0, data_kind="busi", manifest_sha256="a",
                skip_bad_images=False, code_version="c", data_sha256="d")
    paper = RunSpec(**base)
    assert "augment_policy" not in paper.to_dict()
    us = RunSpec(**base, augment_policy="ultrasound")
    assert us.to_dict()["augment_policy"] == "ultrasound" and us.hash() != paper.hash()


def test_ultrasound_augmentation_with_augmentation_off_is_one_line_naming_the_flags(tmp_path):
    from bench.engine.runner import augment_policy

    with pytest.raises(BenchError, match="--no-augment"):
        augment_policy(RunOptions(augment=False, augment_policy="ultrasound", out=tmp_path))
    with pytest.raises(BenchError, match="policies are paper, ultrasound"):
        augment_policy(RunOptions(augment_policy="gamma", out=tmp_path))
    assert augment_policy(RunOptions(augment_policy="ultrasound", out=tmp_path)) == "ultrasound"


def test_bench_run_takes_augment_and_adapt_bn_and_checks_adapt_bn_needs_external():
    from bench.cli.run import options_from_argv
    from bench.engine.runner import check_adapt_bn

    o = options_from_argv(["--augment", "ultrasound", "--external", "x", "--adapt-bn",
                           "none,target,source"])
    assert o.augment_policy == "ultrasound" and o.adapt_bn == ("none", "target", "source")
    with pytest.raises(BenchError, match="`external`"):
        check_adapt_bn(("target",), ())
    with pytest.raises(BenchError, match="choose from none, target, source"):
        check_adapt_bn(("both",), ("x",))
    with pytest.raises(BenchError, match="at most once"):
        check_adapt_bn(("target", "target"), ("x",))


# --- BatchNorm adaptation -------------------------------------------------------------------------


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(torch.relu(self.bn(self.conv(x))), 1).flatten(1))


class _NoLabels:
    """A scored set whose labels cannot be read."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    @property
    def labels(self) -> torch.Tensor:
        raise AssertionError("BatchNorm adaptation read a label")


def _images(n: int, offset: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 16, 16, generator=g) * 100 + offset).round().to(torch.uint8)


def test_bn_adaptation_reads_images_only_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    net, cfg = _Net().eval(), get_model_config("fus2net")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    target = _NoLabels(_images(21, 120))
    adapted = adapt_batchnorm(net, cfg, target.images, device="cpu", batch_size=8)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # unchanged
    assert not torch.equal(adapted.bn.running_mean, net.bn.running_mean)
    assert not adapted.training and adapted.bn.momentum == net.bn.momentum
    # the statistics are those of the images: the mean of the first layer's output over them
    from bench.engine.train import normalize
    with torch.no_grad():
        feats = net.conv(normalize(target.images.float(), cfg))
    assert torch.allclose(adapted.bn.running_mean, feats.mean((0, 2, 3)), atol=1e-5)


def test_bn_adapted_scores_do_not_change_when_the_labels_are_permuted_or_all_one_class():
    from bench.data.cache import ImageCache
    from bench.engine.train import predict

    torch.manual_seed(1)
    net, cfg = _Net().eval(), get_model_config("fus2net")
    images = _images(24, 60, seed=2)
    rows = pd.DataFrame({"id": [f"i{k}" for k in range(24)], "path": "x", "label": [0, 1] * 12})
    results = []
    for labels in (torch.tensor([0, 1] * 12), torch.tensor([0, 1] * 12)[torch.randperm(24)],
                   torch.ones(24, dtype=torch.long)):
        cache = ImageCache(images=images, labels=labels, rows=rows.assign(label=labels.numpy()))
        adapted = adapt_batchnorm(net, cfg, cache.images, device="cpu", batch_size=8)
        results.append(predict(adapted, cfg, cache, np.arange(24), device="cpu",
                               channels_last=False))
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])
    plain = predict(net, cfg, ImageCache(images, torch.zeros(24, dtype=torch.long), rows),
                    np.arange(24), device="cpu", channels_last=False)
    assert not np.allclose(plain, results[0])  # the adaptation did change the scores


def test_each_adaptation_writes_its_own_folder_and_an_unknown_one_is_refused():
    assert adaptation_folder("none") == ""
    assert adaptation_folder("target") == "adapt-bn-target"
    assert adaptation_folder("source") == "adapt-bn-source"
    with pytest.raises(BenchError, match="--adapt-bn"):
        from bench.core.errors import in_flag_words
        try:
            adaptation_folder("both")
        except BenchError as exc:
            raise BenchError(in_flag_words(str(exc))) from None


# --- choosing without the target ------------------------------------------------------------------


def _results(rng: np.random.Generator, sites=("A", "B", "C"), levers=("l1", "l2", "l3")
             ) -> pd.DataFrame:
    return pd.DataFrame([{"lever": lv, "site": s, "delta_auc": float(rng.normal(0, 0.05))}
                         for lv in levers for s in sites])


def test_the_choice_for_a_site_never_changes_when_that_site_s_numbers_change():
    rng = np.random.default_rng(0)
    for _ in range(60):
        table = _results(rng)
        target = str(rng.choice(["A", "B", "C"]))
        first = choose_lever(table, target)
        changed = table.copy()
        at = changed.site == target
        changed.loc[at, "delta_auc"] = rng.normal(0, 1, int(at.sum()))  # anything at all
        if rng.random() < 0.3:
            changed = changed[~at | (rng.random(len(changed)) < 0.5)]  # or some rows gone
        assert choose_lever(changed, target) == first
        assert target not in first.sites


def test_the_choice_is_the_best_mean_on_the_other_sites_or_the_baseline():
    table = pd.DataFrame([
        {"lever": "speckle", "site": "A", "delta_auc": 0.05},
        {"lever": "speckle", "site": "B", "delta_auc": 0.03},
        {"lever": "bn", "site": "A", "delta_auc": 0.10},
        {"lever": "bn", "site": "B", "delta_auc": -0.05},
        {"lever": "bn", "site": "T", "delta_auc": 0.90},  # the target's own: never read
    ])
    c = choose_lever(table, "T")
    assert c.lever == "speckle" and c.sites == ("A", "B") and c.score == pytest.approx(0.04)
    assert "never chosen on T" in c.reason and "leave-one-site-out on A, B" in c.reason
    worse = table.assign(delta_auc=-table.delta_auc.abs())
    assert choose_lever(worse, "T").lever == BASELINE
    alone = choose_lever(table[table.site == "T"], "T")
    assert alone.lever == BASELINE and "no site other than T" in alone.reason


# --- the report section ---------------------------------------------------------------------------


def _add_scoring(run: Path, name: str, quality: float, seed: int, adapt: str = "none",
                 n: int = 80) -> None:
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * (n // 2))
    p = np.clip(0.5 + quality * (y - 0.5) + rng.normal(0, 0.25, n), 0.001, 0.999)
    folder = run / "external" / name / ("" if adapt == "none" else f"adapt-bn-{adapt}")
    folder.mkdir(parents=True, exist_ok=True)
    preds = pd.DataFrame({"id": [f"e{k:03d}" for k in range(n)], "path": "e.png", "label": y,
                          "prob_malignant": p, "split": "external", "fold": -1,
                          "group": [f"pt{k // 2}" for k in range(n)], "training_copy": ""})
    preds.to_csv(folder / "predictions.csv", index=False)
    meta = {"external_set": name, "predictions_sha256": file_sha256(folder / "predictions.csv")}
    if adapt != "none":
        meta["adapt_bn"] = {"mode": adapt}
    (folder / "metrics.json").write_text(json.dumps(meta))


def _lever_runs(root: Path) -> Path:
    runs = root / "runs"
    for seed in (0, 1):
        paper = write_fixture_run(runs, "fus2net", 0.6, 10 + seed, seed=seed)
        _add_scoring(paper, "site-b", 0.2, 100 + seed)
        _add_scoring(paper, "site-b", 0.5, 200 + seed, adapt="target")
        _add_scoring(paper, "site-b", 0.2, 300 + seed, adapt="source")
        us = write_fixture_run(runs, "fus2net", 0.6, 20 + seed, seed=seed,
                               augment_policy="ultrasound")
        _add_scoring(us, "site-b", 0.3, 400 + seed)
    return runs


def test_the_site_gap_section_measures_each_lever_against_the_baseline(tmp_path):
    from bench.reporting.runs import load_runs
    from bench.reporting.sections.sitegap import display, paragraph, site_gap_table

    t = site_gap_table(load_runs(_lever_runs(tmp_path)), n_boot=20)
    levers = set(t.lever)
    assert {BASELINE, "BN adapted on the target (unlabelled)",
            "BN re-estimated on the source (control)", "ultrasound augmentation"} <= levers
    base = t[t.lever == BASELINE].iloc[0]
    assert base.n_seeds == 2 and base.n == 80 and math.isnan(base.delta_auc)
    target = t[t.lever == "BN adapted on the target (unlabelled)"].iloc[0]
    assert target.delta_auc > 0 and target.delta_lo <= target.delta_auc <= target.delta_hi
    assert target.auc_lo <= target.auc <= target.auc_hi and not math.isnan(target.slope)
    # one target site only: nothing to choose on but it, so the choice is the baseline
    chosen = t[t.lever.str.startswith("chosen")].iloc[0]
    assert chosen.lever == f"chosen: {BASELINE}" and "no site other than site-b" in chosen.chosen_by
    shown = display(t)
    assert "synthetic → site-b" in shown.columns and "Chosen by" in shown.columns
    words = paragraph(t)
    assert "never trained on" in words and "Chosen without looking at site-b" in words


def test_the_site_gap_section_is_silent_without_levers(tmp_path):
    from bench.reporting.runs import load_runs
    from bench.reporting.sections import SECTIONS, sitegap
    from bench.reporting.sections.context import ReportContext

    assert sitegap in SECTIONS
    runs = tmp_path / "runs"
    run = write_fixture_run(runs, "fus2net", 0.6, 1)
    _add_scoring(run, "site-b", 0.3, 5)
    ctx = ReportContext(load_runs(runs), tmp_path / "report", n_boot=50)
    ctx.tdir.mkdir(parents=True)
    (ctx.tdir / "sitegap.csv").write_text("stale\n")  # an earlier report's: removed
    sitegap.write_tables(ctx)
    assert not (ctx.tdir / "sitegap.csv").exists() and sitegap.readme(ctx) == []
    levers = ReportContext(load_runs(_lever_runs(tmp_path / "with")), tmp_path / "r2", n_boot=20)
    levers.tdir.mkdir(parents=True)
    sitegap.write_tables(levers)
    part = sitegap.readme(levers)
    assert part[0] == "## Closing the site gap" and part[-2].startswith("*In plain words:*")


@pytest.mark.slow
def test_the_committed_busi_cpu_runs_hold_no_lever_so_their_readme_rebuilds_byte_for_byte():
    """The section adds nothing to results/busi-cpu: its README rebuilds byte for byte as far
    as this section goes (it writes no table and no README part for those runs)."""
    from bench.reporting.runs import load_runs
    from bench.reporting.sections.sitegap import has_levers

    runs_dir = Path(__file__).resolve().parents[1] / "results" / "busi-cpu" / "runs"
    if not runs_dir.is_dir():
        pytest.skip("results/busi-cpu is not in this checkout")
    assert not has_levers(load_runs(runs_dir, skip_invalid=True))
    assert "Closing the site gap" not in (runs_dir.parent / "README.md").read_text()


def test_a_suite_passes_the_levers_to_its_compared_runs_only(tmp_path):
    from bench.engine.experiments import EXPERIMENTS
    from bench.jobs.plan import suite_jobs

    variants = [v for e in EXPERIMENTS.values() for v in e["variants"]]
    base = RunOptions(augment_policy="ultrasound", adapt_bn=("none", "target"), out=tmp_path)
    jobs = suite_jobs(base, ["fus2net", "resnet50"], [0], [0], variants, ["synthetic:B"])
    compared = [j.options for j in jobs if j.compared]
    assert all(o.augment_policy == "ultrasound" and o.adapt_bn == ("none", "target")
               for o in compared)
    for o in (j.options for j in jobs if not j.compared):
        assert o.adapt_bn == ("none",)  # no external set to adapt to
        assert o.augment_policy == ("ultrasound" if o.augment else "paper")


@pytest.mark.slow
def test_the_section_chooses_each_target_s_lever_on_the_other_target_only(tmp_path):
    from bench.reporting.runs import load_runs
    from bench.reporting.sections.sitegap import site_gap_table

    chosen = {}
    for trial, target_quality in enumerate((0.05, 0.9)):  # site-b's adapted numbers: bad, good
        runs = _lever_runs(tmp_path / str(trial))
        for r in sorted(runs.iterdir()):
            if "augment_policy" in (r / "config.json").read_text():
                continue
            seed = int(json.loads((r / "config.json").read_text())["settings"]["seed"])
            _add_scoring(r, "site-b", target_quality, 700 + seed, adapt="target")  # replaced
            _add_scoring(r, "site-c", 0.2, 500 + seed)
            _add_scoring(r, "site-c", 0.6, 600 + seed, adapt="target")
        t = site_gap_table(load_runs(runs), n_boot=20)
        row = t[(t.target == "site-b") & t.lever.str.startswith("chosen")].iloc[0]
        chosen[trial] = (row.lever, row.chosen_by)
        assert "leave-one-site-out on site-c" in row.chosen_by
    assert chosen[0] == chosen[1]
    assert chosen[0][0] == "chosen: BN adapted on the target (unlabelled)"


def test_an_image_is_blurred_the_same_whatever_else_is_in_its_batch():
    x = _batch(3, 32)
    alone = aug.gaussian_blur(x[:1], torch.tensor([0.01]))
    together = aug.gaussian_blur(x, torch.tensor([0.01, 0.05, 0.0]))
    torch.testing.assert_close(together[:1], alone, rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(together[2:], x[2:], rtol=1e-6, atol=1e-4)


def test_the_paper_augmentation_stays_a_model_s_main_row_beside_more_seeds_of_a_lever(tmp_path):
    from bench.reporting.runs import load_runs
    from bench.reporting.tables import comparison_sets

    runs = tmp_path / "runs"
    write_fixture_run(runs, "fus2net", 0.6, 1, seed=0)
    for seed in (0, 1, 2):
        write_fixture_run(runs, "fus2net", 0.6, 5 + seed, seed=seed, augment_policy="ultrasound")
    sets = dict(comparison_sets(load_runs(runs)))
    assert all(r.settings.get("augment_policy", "paper") == "paper" for r in sets["fus2net"])
    assert [len(rs) for label, rs in sets.items() if "ultrasound" in label] == [3]


@pytest.mark.slow
def test_bench_score_adapts_batchnorm_without_labels_and_writes_each_adaptation_apart(
        tiny_synthetic, tmp_path, capsys, monkeypatch):
    """End to end: a run scored with --adapt-bn none,target,source gets three folders; the
    target-adapted scores of a set are the same when its labels are permuted (the adaptation
    sees pixels only), and differ from the unadapted ones."""
    import shutil

    from bench.cli.score import main as score_main
    from bench.data.synthetic import PhantomSpec, generate
    from tests.helpers import TINY, call_main, run_main

    monkeypatch.setenv("FUS2BENCH_CACHE", str(tmp_path / "cache"))
    phantom = generate(PhantomSpec(n_benign=8, n_malignant=8, seed=12, site="B"),
                       tmp_path / "site_b", workers=1)
    images = sorted(p for p in phantom.rglob("*.png") if not p.stem.endswith("_mask"))
    rng = np.random.default_rng(0)
    for name, labels in (("given", [p.parent.name for p in images]),
                         ("permuted", list(rng.permutation([p.parent.name for p in images])))):
        for k, (src, cls) in enumerate(zip(images, labels, strict=True)):
            (tmp_path / name / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, tmp_path / name / cls / f"img_{k:02d}.png")
    runs = tmp_path / "runs"
    code, _, err = run_main(capsys, "--data", str(tiny_synthetic), "--out", str(runs), *TINY,
                            "--folds", "0")
    assert code == 0, err
    (run_dir,) = runs.iterdir()
    sets = f"given={tmp_path / 'given'},permuted={tmp_path / 'permuted'}"
    code, out, err = call_main(capsys, score_main, "--runs", str(runs), "--external", sets,
                               "--adapt-bn", "none,target,source", "--device", "cpu")
    assert code == 0, err
    probs = {}
    for name in ("given", "permuted"):
        for mode, sub in (("none", ""), ("target", "adapt-bn-target"),
                          ("source", "adapt-bn-source")):
            folder = run_dir / "external" / name / sub
            record = json.loads((folder / "metrics.json").read_text())
            assert ("adapt_bn" in record) == (mode != "none")
            if mode != "none":
                assert record["adapt_bn"]["mode"] == mode
                assert record["adapt_bn"]["labels_read"] is False
            preds = pd.read_csv(folder / "predictions.csv")
            probs[name, mode] = preds.set_index(preds.path.str[-10:]).prob_malignant.sort_index()
    pd.testing.assert_series_equal(probs["given", "target"], probs["permuted", "target"])
    pd.testing.assert_series_equal(probs["given", "source"], probs["permuted", "source"])
    assert not np.allclose(probs["given", "none"], probs["given", "target"])
    from bench.reporting.runs import load_runs
    (run,) = load_runs(runs)
    assert set(run.adapted) == {(n, m) for n in ("given", "permuted") for m in ("target", "source")}


@pytest.mark.slow
def test_a_run_with_ultrasound_augmentation_records_its_policy_and_gets_its_own_hash(
        tiny_synthetic, tmp_path, capsys):
    from bench.reporting.sections.reproduce import run_flags
    from tests.helpers import TINY, run_main

    for policy in ("paper", "ultrasound"):
        code, _, err = run_main(capsys, "--data", str(tiny_synthetic), "--out", str(tmp_path),
                                *TINY, "--folds", "0", "--augment", policy)
        assert code == 0, err
    configs = {json.loads((d / "config.json").read_text())["settings"].get("augment_policy"): d
               for d in tmp_path.iterdir()}
    assert set(configs) == {None, "ultrasound"}  # the paper's is not recorded: hashes kept
    from bench.reporting.runs import load_runs
    us = next(r for r in load_runs(tmp_path) if r.path == configs["ultrasound"])
    assert "--augment ultrasound" in " ".join(run_flags(us))
