"""The annotation-insertion test with its same-class and random-shape controls
(bench/evaluation/insertion.py; docs/protocol.md, "Burnt-in annotations"): the design, the control
images, the two-way (targets and donors) bootstrap against a hand computation, and stand-in models
that read any overlay or only one class's marks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.data.annotations import mark_intensity, random_marks
from bench.evaluation.insertion import (
    control_image,
    donor_weights,
    insertion_design,
    insertion_effects,
    insertion_shifts,
    mean_over_seeds,
)
from bench.stats.calibration import cluster_weights

SIZE = 40


def _plus(img: np.ndarray, y: int, x: int, arm: int = 5) -> None:
    img[y - arm:y + arm + 1, x] = 255
    img[y, x - arm:x + arm + 1] = 255


def _bar(img: np.ndarray, y: int, x: int, length: int = 21) -> None:
    img[y, x - length // 2:x + length // 2 + 1] = 255


def _phantom(n: int = 32, seed: int = 0):
    """``n`` benign and ``n`` malignant images (two per same-lesion group) on a speckle below 120
    grey levels; benign images carry 1-2 "+" crosses, malignant ones as many horizontal bars of
    the same pixel count (21 px each). Cleaned = without the marks."""
    rng = np.random.default_rng(seed)
    ids, labels, groups, originals, masks, cleaned = [], [], [], [], [], []
    for label in (0, 1):
        for i in range(n):
            base = rng.integers(0, 120, (SIZE, SIZE)).astype(np.uint8)
            img = base.copy()
            for _ in range(int(rng.integers(1, 3))):
                y, x = (int(v) for v in rng.integers(8, SIZE - 8, 2))
                (_plus if label == 0 else _bar)(img, y, x)
            ids.append(f"{label}-{i}")
            labels.append(label)
            groups.append(f"g{label}-{i // 2}")
            originals.append(img)
            masks.append(img == 255)
            cleaned.append(base)
    return ids, np.array(labels), np.array(groups), originals, masks, cleaned


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def any_overlay(arrays: list[np.ndarray]) -> np.ndarray:
    """Lowers P(malignant) with the number of bright pixels, whatever their shape."""
    return _sigmoid(np.array([1.0 - 0.03 * float((a >= 200).sum()) for a in arrays]))


def _has_plus(a: np.ndarray, arm: int = 4) -> bool:
    b = a >= 200
    c = b[arm:-arm, arm:-arm].copy()
    h, w = b.shape
    for k in range(1, arm + 1):
        for dy, dx in ((k, 0), (-k, 0), (0, k), (0, -k)):
            c &= b[arm + dy:h - arm + dy, arm + dx:w - arm + dx]
    for dy, dx in ((2, 2), (2, -2), (-2, 2), (-2, -2)):
        c &= ~b[arm + dy:h - arm + dy, arm + dx:w - arm + dx]
    return bool(c.any())


def benign_marks_only(arrays: list[np.ndarray]) -> np.ndarray:
    """Reads the benign class's "+" crosses as benign and nothing else."""
    return _sigmoid(np.array([1.0 - 3.0 * _has_plus(a) for a in arrays]))


def test_design_is_deterministic_gives_same_class_donors_outside_the_targets_group():
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    g = np.array(["a", "a", "b", "c", "d", "e", "e"])
    marked = np.array([True, True, False, True, True, False, True])
    design = insertion_design(y, g, marked, seed=3)
    assert design == insertion_design(y, g, marked, seed=3)
    assert {p.target for p in design} == set(range(7))
    for p in design:
        assert y[p.cross] != y[p.target] and marked[p.cross]
        if p.same >= 0:
            assert y[p.same] == y[p.target] and marked[p.same] and g[p.same] != g[p.target]
    # benign targets of group a have one same-class donor outside a: image 3
    assert [p.same for p in design if p.target in (0, 1)] == [3, 3]
    # no marked benign donor? then no malignant target; here the malignant direction has them
    only_benign = insertion_design(y, g, np.array([True] * 4 + [False] * 3), seed=3)
    assert {p.direction for p in only_benign} == {"benign_marks_on_malignant"}


def test_random_shape_control_has_the_marks_pixel_count_intensity_and_place():
    rng = np.random.default_rng(0)
    donor = rng.integers(0, 100, (60, 80)).astype(np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[10:13, 10:40] = True  # a 90-px line
    mask[45:50, 60:64] = True  # a 20-px blob
    donor[mask] = 230
    shape = random_marks(mask, np.random.default_rng(1))
    assert shape.sum() == mask.sum()
    assert not (shape == mask).all()
    target = np.full((60, 80), 50, np.uint8)
    out = control_image(donor, mask, target, np.random.default_rng(1))
    painted = out != target
    assert painted.sum() == mask.sum() and (out[painted] == 230).all()
    assert mark_intensity(donor, mask, target) == 230
    ys, xs = np.nonzero(painted & (np.arange(60)[:, None] < 30))  # the line's stroke
    assert abs(ys.mean() - 11) < 8 and abs(xs.mean() - 24.5) < 10
    # a target of another size gets the marks at its scale, like a paste
    big = control_image(donor, mask, np.full((120, 160), 50, np.uint8), np.random.default_rng(1))
    assert (big != 50).sum() == 4 * mask.sum()


def _table(shift_cross, shift_same, shift_random, groups, donor_groups, same_groups,
           direction="benign_marks_on_malignant") -> pd.DataFrame:
    n = len(groups)
    return pd.DataFrame({"direction": direction, "id": [f"t{i}" for i in range(n)],
                         "group": groups, "label": 1, "donor": [f"d{i}" for i in range(n)],
                         "donor_group": donor_groups, "same_donor": [f"s{i}" for i in range(n)],
                         "same_group": same_groups, "mark_pixels": 10, "prob_cleaned": 0.5,
                         "shift_cross": shift_cross, "shift_same": shift_same,
                         "shift_random": shift_random})


def test_two_way_bootstrap_matches_a_hand_computation():
    # three targets in two groups, donors in two groups; benign marks: "towards" = −ΔP
    t = _table([-0.3, -0.1, -0.2], [-0.05, 0.0, -0.1], [-0.2, -0.1, -0.1],
               ["A", "A", "B"], ["x", "y", "y"], ["u", "u", "v"])
    n_boot, seed = 50, 7
    effects = {e.control: e for e in insertion_effects(t, n_boot=n_boot, seed=seed)}
    tw = cluster_weights(t.group, n_boot, seed)
    cw = donor_weights(t.donor_group, n_boot, seed)
    sw = donor_weights(t.same_group, n_boot, seed, stream=4)
    cross, same, rand = -t.shift_cross.to_numpy(), -t.shift_same.to_numpy(), -t.shift_random.to_numpy()
    by_hand = {"none": [], "same_class": [], "random_shape": []}
    for b in range(n_boot):
        def mean(x, donor_w, b=b):
            w = [tw[b, i] * donor_w[b, i] for i in range(3)]
            return sum(wi * xi for wi, xi in zip(w, x, strict=True)) / sum(w) if sum(w) else np.nan
        by_hand["none"].append(mean(cross, cw))
        by_hand["same_class"].append(mean(cross, cw) - mean(same, sw))
        by_hand["random_shape"].append(mean(cross, cw) - mean(rand, cw))
    for control, reps in by_hand.items():
        reps = np.array(reps)
        lo, hi = np.quantile(reps[np.isfinite(reps)], [0.025, 0.975])
        e = effects[control]
        assert (e.lo, e.hi) == pytest.approx((lo, hi))
    assert effects["none"].effect == pytest.approx(0.2)
    assert effects["same_class"].effect == pytest.approx(0.2 - 0.05)
    assert effects["random_shape"].control_shift == pytest.approx(0.4 / 3)
    # a group's images weigh alike in every replicate: targets 0 and 1 share group A
    assert (tw[:, 0] == tw[:, 1]).all() and (cw[:, 1] == cw[:, 2]).all()
    assert effects["none"].target_groups == 2 and effects["none"].donor_groups == 2


def test_donors_of_one_group_leave_the_interval_the_targets_only_one():
    rng = np.random.default_rng(0)
    n = 30
    t = _table(rng.normal(-0.05, 0.05, n), rng.normal(-0.01, 0.05, n), rng.normal(0, 0.05, n),
               [f"g{i // 3}" for i in range(n)], ["one"] * n, ["two"] * n)
    for e in insertion_effects(t, n_boot=500, seed=1):
        assert (e.lo, e.hi) == (e.lo_targets, e.hi_targets)
    # donors of many groups widen it
    wide = _table(t.shift_cross, t.shift_same, t.shift_random, t.group,
                  [f"d{i}" for i in range(n)], [f"s{i}" for i in range(n)])
    e = next(e for e in insertion_effects(wide, n_boot=500, seed=1) if e.control == "none")
    assert e.hi - e.lo > e.hi_targets - e.lo_targets


def _effects(score):
    ids, y, g, originals, masks, cleaned = _phantom()
    table = insertion_shifts(score, ids, y, g, originals, masks, cleaned, seed=0)
    assert table.equals(insertion_shifts(score, ids, y, g, originals, masks, cleaned, seed=0))
    return table, {(e.direction, e.control): e for e in insertion_effects(table, 1000, seed=0)}


def test_a_model_that_reacts_to_any_overlay_shows_no_effect_beyond_the_controls():
    table, effects = _effects(any_overlay)
    for direction in ("benign_marks_on_malignant", "malignant_marks_on_benign"):
        none = effects[(direction, "none")]
        assert abs(none.effect) > 0.1  # the cross-class paste alone looks like reliance
        for control in ("same_class", "random_shape"):
            e = effects[(direction, control)]
            assert abs(e.effect) < abs(none.effect) / 3 and e.lo <= 0 <= e.hi, (control, e)
    # measured: the same-class controls' donors are another sample of marks (1-2 marks each);
    # their −0.02 to +0.12 interval with donors resampled holds 0, the targets-only one does not
    same = effects[("malignant_marks_on_benign", "same_class")]
    assert same.hi - same.lo > same.hi_targets - same.lo_targets
    # same pixel count, same intensity: the random shape moves it exactly as much
    assert np.allclose(table.shift_random, table.shift_cross)


def test_a_model_that_reads_only_benign_marks_shows_a_positive_effect_beyond_the_controls():
    _, effects = _effects(benign_marks_only)
    for control in ("none", "same_class", "random_shape"):
        e = effects[("benign_marks_on_malignant", control)]
        assert e.effect > 0.3 and e.lo > 0, (control, e)
    # its malignant marks do nothing
    assert effects[("malignant_marks_on_benign", "none")].effect == pytest.approx(0.0)


def test_seeds_are_averaged_only_over_one_design():
    ids, y, g, originals, masks, cleaned = _phantom(8)
    a = insertion_shifts(any_overlay, ids, y, g, originals, masks, cleaned, seed=0)
    b = a.assign(shift_cross=a.shift_cross + 0.1)
    mean = mean_over_seeds([a, b])
    assert np.allclose(mean.shift_cross, a.shift_cross + 0.05)
    assert mean_over_seeds([a, insertion_shifts(any_overlay, ids, y, g, originals, masks, cleaned,
                                                seed=1)]) is None


# --- run folder and report ------------------------------------------------------------------


def _measured_runs(root, controls: bool):
    """Two seeds of one configuration with saved reliance measures and, with ``controls``, the
    insertion test with its controls (the any-overlay stand-in, the second seed shifted)."""
    import json

    from bench.engine.runfolder import RunFolder
    from bench.evaluation.insertion import effects_record
    from bench.reporting.runs import load_runs
    from tests.helpers import write_fixture_run

    ids, y, g, originals, masks, cleaned = _phantom(12)
    base = insertion_shifts(any_overlay, ids, y, g, originals, masks, cleaned, seed=0)
    shift = {"n": 12, "mean_shift": -0.1, "lo": -0.2, "hi": -0.05}
    for seed in (0, 1):
        folder = RunFolder(write_fixture_run(root, "zeimarani_cnn", 0.5, 20 + seed, seed=seed))
        test = {"images": 24, "benign": 12, "malignant": 12, "marked_benign": 12,
                "marked_malignant": 12, "malignant_marks_on_benign": shift,
                "benign_marks_on_malignant": shift}
        head = {"run": folder.path.name, "model": "zeimarani_cnn", "seed": seed,
                "annotations": "keep"}
        folder.write_reliance({"info": {}, **head, "sets": {"test": test}},
                              pd.DataFrame({"id": ids, "path": "x.png", "label": y, "group": g,
                                            "prob_original": 0.5, "prob_cleaned": 0.5,
                                            "marked": 1, "mask_fraction": 0.01,
                                            "inserted_from": "", "insertion_shift": -0.1,
                                            "set": "test"}))
        if controls:
            table = base.assign(shift_cross=base.shift_cross - 0.02 * seed,
                                shift_random=base.shift_random - 0.02 * seed)
            folder.write_insertion({"info": {}, **head, "sets": {
                "test": effects_record(insertion_effects(table, 200))}}, table.assign(set="test"))
            json.loads((folder.reliance_dir / "insertion.json").read_text())
    return load_runs(root), base


def test_run_folder_keeps_the_insertion_table_and_an_older_folder_has_none(tmp_path):
    runs, base = _measured_runs(tmp_path / "runs", controls=True)
    back = runs[0].folder.insertion_images()
    assert back.drop(columns="set").equals(base) or np.allclose(
        back.shift_cross.to_numpy(float), base.shift_cross.to_numpy(float))
    assert back.same_donor.map(type).eq(str).all() and back.shift_same.dtype == float
    assert "reliance/insertion" in runs[0].folder.addon_steps()
    old, _ = _measured_runs(tmp_path / "old", controls=False)
    assert old[0].folder.insertion_record() is None and old[0].folder.insertion_images() is None


def test_report_shows_the_insertion_effects_only_where_measured_with_a_generated_sentence(tmp_path):
    from bench.reporting.sections import reliance
    from bench.reporting.sections.context import ReportContext

    runs, base = _measured_runs(tmp_path / "runs", controls=True)
    ctx = ReportContext(runs=runs, out=tmp_path / "out", n_boot=200)
    ctx.tdir.mkdir(parents=True)
    reliance.write_tables(ctx)
    table = ctx.tables["insertion"]
    assert list(table.direction) == ["malignant_marks_on_benign", "benign_marks_on_malignant"]
    assert list(table.seed) == ["2 (0,1)"] * 2
    mean = base.assign(shift_cross=base.shift_cross - 0.01,  # the two seeds averaged
                       shift_random=base.shift_random - 0.01)
    want = {(e.direction, e.control): e for e in insertion_effects(mean, 200)}
    row = table.iloc[1]
    assert row.cross == pytest.approx(want[("benign_marks_on_malignant", "none")].effect)
    assert (row.random_lo, row.random_hi) == pytest.approx(
        (want[("benign_marks_on_malignant", "random_shape")].lo,
         want[("benign_marks_on_malignant", "random_shape")].hi))
    text = "\n".join(reliance.readme(ctx))
    assert "### Is it the marks, or any overlay?" in text
    # every row's cross-class shift excludes 0 (any overlay moves it); beyond the random shape
    # (the same pixels) none does: the sentence counts the table's intervals
    for sentence in reliance.insertion_sentences(table):
        assert "excludes 0 in 1 of 1 with targets and donors resampled" in sentence
        assert "beyond the random-shape control it excludes 0 in 0 of 1" in sentence
    assert (ctx.tdir / "insertion_per_seed.csv").is_file()

    old, _ = _measured_runs(tmp_path / "old", controls=False)
    octx = ReportContext(runs=old, out=tmp_path / "oldout", n_boot=200)
    octx.tdir.mkdir(parents=True)
    (octx.tdir / "insertion.csv").write_text("stale")
    reliance.write_tables(octx)
    assert "insertion" not in octx.tables and not (octx.tdir / "insertion.csv").exists()
    assert "overlay" not in "\n".join(reliance.readme(octx))


@pytest.mark.slow
def test_reliance_figure_gains_the_insertion_panel_from_the_saved_table(tmp_path):
    from bench.reporting.sections import reliance
    from bench.reporting.sections.context import ReportContext

    runs, _ = _measured_runs(tmp_path / "runs", controls=True)
    ctx = ReportContext(runs=runs, out=tmp_path / "out", n_boot=200)
    ctx.tdir.mkdir(parents=True)
    reliance.write_tables(ctx)
    with_panel = reliance.draw_figures(ctx.tdir, ctx.fdir)
    png = next(p for p in with_panel if p.suffix == ".png").read_bytes()
    (ctx.tdir / "insertion.csv").unlink()
    without = next(p for p in reliance.draw_figures(ctx.tdir, ctx.fdir) if p.suffix == ".png")
    assert without.read_bytes() != png and len(png) > len(without.read_bytes())


def test_bad_bootstrap_counts_are_one_line_with_exit_2(tmp_path, capsys):
    from bench.cli.reliance import main

    for argv, words in ((["--n-boot", "0", "--controls"], "--n-boot must be an integer >= 1"),
                        (["--n-boot", "500"], "--n-boot: sets the insertion controls' bootstrap")):
        with pytest.raises(SystemExit) as exc:
            main(["--runs", str(tmp_path), *argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert words in err[-1]


def test_reproduce_commands_measure_the_controls_only_where_the_runs_have_them(tmp_path):
    from bench.reporting.sections.reproduce import commands

    runs, _ = _measured_runs(tmp_path / "runs", controls=True)
    assert any(line.endswith("--controls") for line in commands(runs, tmp_path / "out"))
    old, _ = _measured_runs(tmp_path / "old", controls=False)
    assert not any("--controls" in line for line in commands(old, tmp_path / "out"))
