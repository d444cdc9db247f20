"""``bench.reporting.report``: tables from saved runs, deterministic rebuilds, every figure written."""

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.cli.report import main
from bench.core.atomic import git_tracked
from bench.core.errors import console_logging
from bench.core.tablefmt import TABLE_DIGITS, write_table
from bench.reporting import figures
from bench.reporting.report import ReportOptions, build_report
from bench.reporting.runs import load_runs
from bench.reporting.sections.errors import misclassified
from bench.reporting.sections.heldout import comparison_table, per_seed_table
from tests.helpers import write_fixture_run


@pytest.fixture()
def fixture_runs(tmp_path) -> Path:
    runs = tmp_path / "runs"
    write_fixture_run(runs, "fus2net", 0.6, 1)
    write_fixture_run(runs, "fus2net", 0.4, 2, optimizer="rmsprop")
    write_fixture_run(runs, "fus2net", 0.3, 3, channels=1)
    write_fixture_run(runs, "resnet50", 0.5, 4)
    write_fixture_run(runs, "zeimarani_cnn", 0.2, 5)
    return runs


@pytest.mark.slow
def test_report_is_byte_identical_when_rebuilt(fixture_runs, tmp_path):
    out = tmp_path / "out"
    assert main(["--runs", str(fixture_runs), "--out", str(out), "--n-boot", "300"]) == 0
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(first) > 20
    assert main(["--runs", str(fixture_runs), "--out", str(out), "--n-boot", "300"]) == 0
    second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    for rel, content in first.items():
        assert second[rel] == content, rel


def _has_colour(png: Path, rgb: tuple[float, float, float], tol: int = 12) -> bool:
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    target = np.array([round(255 * c) for c in rgb])
    return bool((np.abs(img - target).max(axis=2) <= tol).any())


@pytest.mark.slow
def test_every_figure_is_written_and_shows_every_model(fixture_runs, tmp_path):
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "200"]) == 0
    for name in ("fig2_roc", "confusion_matrices", "cv_folds", "calibration", "fig1_optimizers"):
        assert (tmp_path / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
        img = np.asarray(Image.open(tmp_path / "figures" / f"{name}.png").convert("L"))
        assert img.std() > 10, name  # not blank
    # one mean ROC curve per model, each in its own colour and Fus2Net in black
    models = list(dict.fromkeys(pd.read_csv(tmp_path / "tables" / "roc_points.csv").model))
    assert models == ["fus2net", "resnet50", "zeimarani_cnn"]
    styles = figures.model_styles(models)
    assert styles["fus2net"][0] == "black"
    assert len({(c if isinstance(c, str) else tuple(c), ls) for c, ls in styles.values()}) == 3
    assert all(_has_colour(tmp_path / "figures" / "fig2_roc.png", styles[m][0])
               for m in models if m != "fus2net")
    readme = (tmp_path / "README.md").read_text()
    assert "figures/fig2_roc.png" in readme and "| fus2net |" in readme


def test_model_styles_stay_distinct_for_every_registered_model():
    from models import list_models
    names = ["fus2net", *[m for m in list_models() if m != "fus2net"]]
    styles = figures.model_styles(names)
    keys = [(c if isinstance(c, str) else tuple(round(v, 4) for v in c), ls)
            for c, ls in styles.values()]
    assert len(set(keys)) == len(names)


@pytest.mark.slow
def test_misclassified_table_lists_the_seed_averaged_errors_most_confident_first(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_fixture_run(runs, "fus2net", 0.3, 30 + seed, seed=seed)
    loaded = load_runs(runs)
    wrong, images = misclassified(loaded)
    tests = [r.test.sort_values("id") for r in loaded]
    mean = np.mean([t.prob_malignant.to_numpy() for t in tests], axis=0)
    y = tests[0].label.to_numpy()
    assert len(wrong) == int(((mean >= 0.5) != y).sum()) > 0
    assert (wrong.predicted != wrong.label).all()
    conf = (wrong.prob_malignant - 0.5).abs().to_numpy()
    assert (np.diff(conf) <= 1e-12).all()
    assert {"prob_seed_0", "prob_seed_1"} <= set(wrong.columns)
    assert images == {}  # fixture runs have no explanation thumbnails
    assert main(["--runs", str(runs), "--out", str(tmp_path / "out"), "--n-boot", "100"]) == 0
    assert (tmp_path / "out" / "figures" / "fig3_misclassified.png").is_file()
    assert "Fig. 3 analogue" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.slow
def test_figures_redraw_from_saved_tables_alone(fixture_runs, tmp_path):
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "200"]) == 0
    roc = (tmp_path / "figures" / "fig2_roc.png").read_bytes()
    (tmp_path / "figures" / "fig2_roc.png").unlink()
    assert main(["--runs", str(tmp_path / "nowhere"), "--out", str(tmp_path), "--figures-only"]) == 0
    assert (tmp_path / "figures" / "fig2_roc.png").read_bytes() == roc


@pytest.mark.slow
def test_comparison_table_rows_tests_and_paper_row(fixture_runs, tmp_path):
    per_seed = per_seed_table(load_runs(fixture_runs), n_boot=200)
    assert list(per_seed.model) == ["fus2net", "resnet50", "zeimarani_cnn"]  # paper recipe only
    t = per_seed
    assert np.isnan(t.delong_p[0]) and (t.delong_p_holm[1:] >= t.delong_p[1:]).all()
    assert (t.auc_lo <= t.auc).all() and (t.auc <= t.auc_hi).all()
    assert t.mcnemar_p[1:].between(0, 1).all()
    main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "200"])
    csv = pd.read_csv(tmp_path / "tables" / "table3_comparison.csv")
    assert csv.model.iloc[-1].startswith("Fus2Net — paper") and csv.ppv.iloc[-1] == pytest.approx(0.9565, abs=1e-4)
    fig1 = pd.read_csv(tmp_path / "tables" / "fig1_optimizers.csv")
    assert list(fig1.evaluated_on) == ["CV: 3 folds over 1 seed(s) (3 per seed)"] * 2 + ["not run"]
    t1 = (tmp_path / "tables" / "table1_channels.md").read_text()
    assert "1-channel" in t1 and "±" in t1


@pytest.mark.slow
def test_failed_run_shows_failure_not_a_number(fixture_runs, tmp_path):
    folder = next(fixture_runs.glob("resnet50-*"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["status"] = "failed"
    (folder / "config.json").write_text(json.dumps(cfg))
    preds = pd.read_csv(folder / "predictions.csv")
    preds[preds.split != "test"].to_csv(folder / "predictions.csv", index=False)
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "200"]) == 0
    md = (tmp_path / "tables" / "table3_comparison.md").read_text()
    assert "| resnet50 | random init — ImageNet weights unavailable" in md
    assert "1 seed(s) failed" in md


@pytest.mark.slow
def test_mixed_profiles_need_a_choice(fixture_runs, tmp_path):
    folder = next(fixture_runs.glob("resnet50-*"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["profile"]["name"] = "paper"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SystemExit) as exc:
        main(["--runs", str(fixture_runs), "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--profile", "cpu",
                 "--n-boot", "200"]) == 0


PROJECT = Path(__file__).resolve().parents[1]
COMMITTED = Path(__file__).resolve().parents[1] / "results" / "busi-cpu"


@pytest.mark.slow
@pytest.mark.skipif(not (COMMITTED / "runs").is_dir(), reason="no committed results set")
def test_committed_runs_regenerate_the_committed_tables_and_readme_exactly(tmp_path):
    # what a clean clone has: the committed files only (no git-ignored arrays)
    assert main(["--runs", str(COMMITTED / "runs"), "--out", str(tmp_path)]) == 0
    committed = sorted(p for p in (COMMITTED / "tables").iterdir() if p.suffix != ".npz")
    assert committed
    for path in committed:
        assert (tmp_path / "tables" / path.name).read_bytes() == path.read_bytes(), path.name
    readme = (tmp_path / "README.md").read_text().replace(f"--out {tmp_path}",
                                                          "--out results/busi-cpu")
    assert readme == (COMMITTED / "README.md").read_text()


def test_table_csvs_do_not_depend_on_the_last_digits_of_a_cpus_summation(tmp_path):
    # the same numbers summed in another order differ in the 16th-17th digit (another CPU's
    # vector path); the committed tables must not
    values = pd.DataFrame({"model": ["a", "b"], "v": [0.7177202440131799, 1 / 3]})
    moved = values.assign(v=[0.71772024401318, 1 / 3 + 2e-16])
    write_table(values, values, tmp_path / "one")
    write_table(moved, moved, tmp_path / "other")
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "other.csv").read_bytes()
    written = pd.read_csv(tmp_path / "one.csv")
    assert written.v[0] == pytest.approx(0.7177202440131799, rel=10 ** -(TABLE_DIGITS - 1))
    assert "0.717720244" in (tmp_path / "one.csv").read_text()


def test_intervals_are_clustered_by_the_manifest_groups(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        for model, q in (("fus2net", 0.6), ("resnet50", 0.4)):
            folder = write_fixture_run(runs, model, q, 30 + seed + (model == "resnet50") * 5,
                                       seed=seed)
            preds = pd.read_csv(folder / "predictions.csv", dtype={"id": str})
            test = preds.split == "test"
            for col in ("prob_malignant", "label"):  # each test image twice, as one group
                preds.loc[test, col] = preds[col][test].to_numpy()[::2].repeat(2)
            preds.to_csv(folder / "predictions.csv", index=False)
            preds[["id", "path", "label", "split", "fold"]].assign(
                group=[f"g{i // 2}" for i in range(len(preds))]).to_csv(folder / "split.csv",
                                                                        index=False)
    t = comparison_table(load_runs(runs), n_boot=200).set_index("model")
    row = t.loc["resnet50"]
    assert row.n_clusters == 50 and row.matched_seeds == "0,1"
    # pairs of identical images: the clustered interval is wider than the image-level one
    assert row.auc_cl_hi - row.auc_cl_lo > 1.2 * (row.auc_img_hi - row.auc_img_lo)
    assert row.delta_auc_cl_hi - row.delta_auc_cl_lo > 1.2 * (row.delta_auc_img_hi
                                                               - row.delta_auc_img_lo)
    assert t.loc["fus2net"].prevalence == pytest.approx(0.5, abs=0.1)


@pytest.mark.slow
def test_seeds_are_aggregated_and_compared_paired_by_seed(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1, 2):
        write_fixture_run(runs, "fus2net", 0.6, 10 + seed, seed=seed)
        write_fixture_run(runs, "resnet50", 0.3, 20 + seed, seed=seed)
    per_seed = per_seed_table(load_runs(runs), n_boot=100)
    assert sorted(per_seed.seed[per_seed.model == "resnet50"]) == [0, 1, 2]
    t = comparison_table(load_runs(runs), n_boot=100, per_seed=per_seed)
    row = t.set_index("model").loc["resnet50"]
    aucs = per_seed.auc[per_seed.model == "resnet50"]
    assert row.n_seeds == 3 and row.auc == pytest.approx(aucs.mean())
    assert row.auc_sd == pytest.approx(aucs.std(ddof=1)) and row.auc_min == aucs.min()
    deltas = per_seed.delta_auc[per_seed.model == "resnet50"]
    # matched seeds: ΔAUC is the mean of the per-seed differences, one contrast per row
    assert row.delta_auc == pytest.approx(deltas.mean()) and row.seeds_significant.endswith("/3")
    assert row.matched_seeds == "0,1,2" and row.delta_auc_cl_lo < row.delta_auc < row.delta_auc_cl_hi
    assert 0 <= row.delta_auc_p_holm <= 1
    assert row.ensemble_seeds == 3 and 0 <= row.ensemble_auc <= 1
    assert main(["--runs", str(runs), "--out", str(tmp_path / "out"), "--n-boot", "100"]) == 0
    roc = pd.read_csv(tmp_path / "out" / "tables" / "roc_points.csv")
    assert set(roc.seed[roc.model == "fus2net"]) == {-1, 0, 1, 2}  # every seed and the mean
    md = (tmp_path / "out" / "tables" / "table3_comparison.md").read_text()
    assert "(seeds 0,1,2)" in md and "[" in md  # the compact table: matched seeds, clustered CI
    tex = (tmp_path / "out" / "tables" / "table3_comparison.tex").read_text()
    assert r"$\pm$" in tex and "Ensemble" in tex  # the full table: spread over seeds, ensemble


@pytest.mark.slow
def test_degenerate_and_random_init_rows_are_flagged_not_ranked(fixture_runs, tmp_path):
    write_fixture_run(fixture_runs, "inception_v3_tl", 0.0, 6, constant=True)
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "100"]) == 0
    t = pd.read_csv(tmp_path / "tables" / "table3_comparison.csv").set_index("model")
    assert "constant output" in t.flag["inception_v3_tl"]
    assert np.isnan(t.delta_auc_p["inception_v3_tl"]) and np.isnan(t.delta_auc["inception_v3_tl"])
    md = (tmp_path / "tables" / "table3_comparison.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| inception_v3_tl ⚠"))
    assert "— (degenerate)" in line and "ImageNet weights unavailable (not the published method)" in line
    readme = (tmp_path / "README.md").read_text()
    assert "Flagged rows" in readme and "constant output (P(malignant) = 0.620" in readme
    assert "Not the published methods:** inception_v3_tl, resnet50" in readme


@pytest.mark.slow
def test_report_warns_when_runs_mix_code_versions(fixture_runs, tmp_path, capsys):
    folder = next(fixture_runs.glob("resnet50-*"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["settings"]["code_version"] = "0123456789ab"
    cfg["git_revision"] = "abc+dirty"
    (folder / "config.json").write_text(json.dumps(cfg))
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "100"]) == 0
    err = capsys.readouterr().err
    assert "2 training-code versions" in err and "uncommitted changes" in err
    assert "**Warning:**" in (tmp_path / "README.md").read_text()


def test_a_run_committed_without_its_weights_still_reports_but_altered_weights_do_not(tmp_path):
    from bench.core.provenance import file_sha256
    runs = tmp_path / "runs"
    folder = write_fixture_run(runs, "fus2net", 0.6, 1)
    (folder / "model.safetensors").write_bytes(b"weights")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["outputs"] = {"model.safetensors": file_sha256(folder / "model.safetensors"),
                      "metrics.json": file_sha256(folder / "metrics.json")}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").unlink()  # results sets are committed without weights
    assert len(load_runs(runs)) == 1
    (folder / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(SystemExit):
        main(["--runs", str(runs), "--out", str(tmp_path / "out"), "--n-boot", "50"])


def _reliance_record(folder: Path) -> None:
    """A run's saved reliance measures, as bench.evaluation.reliance.reliance_run writes them."""
    shift = {"mean_shift": 0.05, "lo": 0.01, "hi": 0.09}
    test = {"images": 100, "benign": 50, "malignant": 50, "marked_benign": 7,
            "marked_malignant": 9, "auc_original": 0.81, "auc_cleaned": 0.78, "delta_auc": 0.03,
            "delta_lo": -0.01, "delta_hi": 0.07, "delta_p": 0.2,
            "malignant_marks_on_benign": shift, "benign_marks_on_malignant": shift}
    (folder / "reliance").mkdir()
    (folder / "reliance" / "reliance.json").write_text(json.dumps(
        {"info": {}, "run": folder.name, "model": "fus2net", "seed": 0, "annotations": "keep",
         "sets": {"test": test}}))


@pytest.mark.slow
def test_sections_appear_in_order_and_a_section_without_data_leaves_no_stale_files(fixture_runs,
                                                                                   tmp_path):
    folder = next(fixture_runs.glob("fus2net-fixture-1-*"))
    _reliance_record(folder)
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "50"]) == 0
    readme = (tmp_path / "README.md").read_text()
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    assert headings == ["## Held-out comparison (Table 3 analogue)",
                        "## Do the models read the annotations?",
                        "## Fus2Net's errors (Fig. 3 analogue)",
                        "## The paper's Fus2Net experiments (chosen by cross-validation)",
                        "## Reproduce"]
    assert "| fus2net | 0 | original | test | 7/50, 9/50 | 0.810 | 0.780 |" in readme
    assert (tmp_path / "figures" / "reliance.png").is_file()
    (folder / "reliance" / "reliance.json").unlink()
    assert main(["--runs", str(fixture_runs), "--out", str(tmp_path), "--n-boot", "50"]) == 0
    assert not (tmp_path / "tables" / "reliance.csv").exists()
    assert "read the annotations" not in (tmp_path / "README.md").read_text()


def test_library_errors_are_said_in_the_command_s_flags(tmp_path, capsys):
    from bench.core.errors import in_flag_words

    assert in_flag_words("`profile`=cpu: no runs; give `n_boot` or `runs`") == \
        "--profile cpu: no runs; give --n-boot or --runs"
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["--runs", str(tmp_path), "--out", str(tmp_path / "file")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: --out {tmp_path / 'file'}: is a file")


def _timed_run(runs: Path, model: str, seed: int, total_s: float, threads: int | None) -> Path:
    folder = write_fixture_run(runs, model, 0.5, seed)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(started=f"2026-11-2{seed}T10:00:00+00:00", finished=f"2026-11-2{seed}T11:00:00+00:00",
               timings={"total_s": total_s})
    cfg["device"]["threads"] = threads
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "reliance").mkdir()
    (folder / "reliance" / "reliance.json").write_text("{}")
    return folder


def test_header_states_dates_and_compute_and_counts_untimed_add_ons_apart(tmp_path):
    from bench.engine.runfolder import RunFolder
    from bench.reporting.sections.provenance import compute_line
    runs = tmp_path / "runs"
    timed = _timed_run(runs, "fus2net", 1, 3600.0, 2)
    _timed_run(runs, "zeimarani_cnn", 2, 1800.0, 2)  # its reliance has no recorded time
    with RunFolder(timed).timed("reliance"):
        pass
    record = RunFolder(timed).compute_record()["reliance"]
    record["seconds"] = 900.0
    (timed / "compute.json").write_text(json.dumps({"reliance": record}))
    line = compute_line(load_runs(runs))
    assert line.startswith("* **Made**: 2026-11-21T10:00:00+00:00 to ")
    assert "**compute** 1.75 h of wall-clock time: training 1.50 h (2 runs), annotation " \
           "reliance 0.25 h; every run on 2 CPU threads, so about 3.5 thread-hours" in line
    assert line.endswith("; 1 add-on step(s) predate recorded times and are not counted")


def _cleaned_fixture(runs: Path) -> None:
    """zeimarani_cnn on the images as they are (seeds 0, 1) and on cleaned images (seeds 0, 1,
    finished later), each with a reliance record per image."""
    rng = np.random.default_rng(0)
    y = np.array([0] * 50 + [1] * 50)
    for k, (seed, clean) in enumerate([(0, False), (1, False), (0, True), (1, True)]):
        extra = {"annotations": "clean:ns:abc", "data_sha256": "cd" * 32} if clean else \
            {"data_sha256": "ab" * 32}
        folder = write_fixture_run(runs, "zeimarani_cnn", 0.5, 10 + k, seed=seed, **extra)
        cfg = json.loads((folder / "config.json").read_text())
        cfg["finished"] = f"2026-11-2{k + 1}"
        cfg["command"] = (f"python -m bench.run --model zeimarani_cnn --seed {seed} --annotations "
                          "clean" if clean else "python -m bench.suite --models zeimarani_cnn")
        (folder / "config.json").write_text(json.dumps(cfg))
        p = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, 100), 0.01, 0.99)
        (folder / "reliance").mkdir()
        pd.DataFrame({"id": [f"img{i:03d}" for i in range(100)], "path": "x.png", "label": y,
                      "group": [f"g{i // 2}" for i in range(100)], "prob_original": p,
                      "prob_cleaned": p - 0.05 * y, "marked": (np.arange(100) % 3 == 0).astype(int),
                      "mask_fraction": 0.0, "inserted_from": "",
                      "insertion_shift": np.where(y == 0, 0.1, -0.02), "set": "test"}
                     ).to_csv(folder / "reliance" / "images.csv", index=False)
        (folder / "reliance" / "reliance.json").write_text(json.dumps(
            {"run": folder.name, "model": "zeimarani_cnn", "seed": seed, "sets": {},
             "annotations": "clean:ns:abc" if clean else "keep"}))


def test_cleaned_image_runs_are_their_own_row_never_the_model_s_main_one(tmp_path):
    from bench.reporting.sections.reproduce import commands
    from bench.reporting.tables import comparison_sets
    _cleaned_fixture(tmp_path / "runs")
    runs = load_runs(tmp_path / "runs")
    labels = [label for label, _ in comparison_sets(runs)]
    assert labels == ["zeimarani_cnn", "zeimarani_cnn (trained on cleaned images)"]
    main_row = dict(comparison_sets(runs))["zeimarani_cnn"]
    assert all("annotations" not in r.settings for r in main_row)  # though the cleaned finished later
    lines = commands(runs, tmp_path / "out")
    assert lines[0] == "python -m bench.suite --models zeimarani_cnn"
    # the recorded command leaves the profile to the machine and lacks the settings that differ
    # from the cpu profile's (folds, epochs, image size): the section's gives them
    assert "for seed in 0 1; do python -m bench.run --model zeimarani_cnn --profile cpu --folds 3 " \
           f"--epochs 8 --img-size 96 --annotations clean --seed $seed --out {tmp_path / 'runs'}; " \
           "done" in lines


def test_reliance_table_has_one_row_per_configuration_from_seed_averaged_images(tmp_path):
    from bench.evaluation.reliance import reliance_summary
    from bench.reporting.sections.reliance import ensemble_table
    _cleaned_fixture(tmp_path / "runs")
    runs = load_runs(tmp_path / "runs")
    table = ensemble_table(runs)
    assert list(table.model) == ["zeimarani_cnn", "zeimarani_cnn (trained on cleaned images)"]
    assert list(table.seed) == ["2 (0,1)", "2 (0,1)"] and list(table.trained_on) == ["original", "cleaned"]
    frames = [pd.read_csv(r.path / "reliance" / "images.csv") for r in runs
              if "annotations" not in r.settings]
    mean = (frames[0][["prob_original", "prob_cleaned"]] + frames[1][["prob_original", "prob_cleaned"]]) / 2
    want = reliance_summary(frames[0].label, mean.prob_original, mean.prob_cleaned,
                            frames[0].insertion_shift, frames[0].marked, frames[0].group)
    row = table.iloc[0]
    assert row.delta_auc == pytest.approx(want["delta_auc"]) and row.delta_auc > 0
    assert row.shift_benign_targets == pytest.approx(0.1)
    assert row.marked_benign == "17/50"


# --- where a report goes, and how it is written (bench.core.atomic.output_folder) ---------------

def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.slow  # 4 to 8 s of CPU (a report twice; the script on a folder)
def test_without_out_the_report_goes_beside_its_runs(tmp_path):
    write_fixture_run(tmp_path / "set" / "runs", "fus2net", 0.6, 1)
    assert main(["--runs", str(tmp_path / "set" / "runs"), "--n-boot", "20"]) == 0
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == \
        ["README.md", "figures", "runs", "tables"]
    write_fixture_run(tmp_path / "other" / "mine", "fus2net", 0.6, 1)
    assert main(["--runs", str(tmp_path / "other" / "mine"), "--n-boot", "20"]) == 0
    assert (tmp_path / "other" / "mine-report" / "README.md").is_file()
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["mine", "mine-report"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.slow
def test_a_default_out_never_replaces_files_git_tracks_but_an_explicit_one_does(tmp_path, capsys):
    repo = tmp_path / "repo"
    runs = repo / "set" / "runs"
    write_fixture_run(runs, "fus2net", 0.6, 1)
    _git(tmp_path, "init", "-q", str(repo))
    assert main(["--runs", str(runs), "--out", str(repo / "set"), "--n-boot", "20"]) == 0
    _git(repo, "add", "set/README.md")
    _git(repo, "commit", "-q", "-m", "the committed report")
    (repo / "set" / "README.md").write_text(
        (repo / "set" / "README.md").read_text() + "\nGenerated by `python -m bench.report` (kept)\n")
    before = _files(repo / "set")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["--runs", str(runs), "--n-boot", "20"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert f"--out {repo / 'set'} (the default for --runs {runs}): would replace README.md, " \
           "which git tracks" in err
    assert _files(repo / "set") == before
    assert main(["--runs", str(runs), "--out", str(repo / "set"), "--n-boot", "20"]) == 0
    assert "(kept)" not in (repo / "set" / "README.md").read_text()


def test_the_report_without_arguments_leaves_the_committed_results_readme_alone(capsys):
    readme = PROJECT / "results" / "README.md"
    if not git_tracked([readme]):
        pytest.skip("not a git checkout")
    before = readme.read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "which git tracks" in err
    assert readme.read_bytes() == before


def test_a_readme_the_report_did_not_write_is_never_replaced(fixture_runs, tmp_path, capsys):
    out = tmp_path / "index"
    out.mkdir()
    (out / "README.md").write_text("# Results\n\nWritten by hand.\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["--runs", str(fixture_runs), "--out", str(out), "--n-boot", "20"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "holds a README.md that python -m bench.report did not write" in err
    assert _files(out) == {"README.md": b"# Results\n\nWritten by hand.\n"}


@pytest.mark.slow
def test_a_report_that_fails_midway_leaves_the_earlier_report_whole(fixture_runs, tmp_path,
                                                                    monkeypatch):
    from bench.reporting.sections import calibration

    out = tmp_path / "out"
    build_report(fixture_runs, out, ReportOptions(n_boot=20))
    (out / "figures" / "kept.png").write_bytes(b"a figure this report does not draw")
    before = _files(out)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(calibration, "draw_figures", full)
    with pytest.raises(OSError):
        build_report(fixture_runs, out, ReportOptions(n_boot=50))
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    build_report(fixture_runs, out, ReportOptions(n_boot=50))
    assert (out / "figures" / "kept.png").is_file()  # a rebuild keeps what it does not redraw
    assert _files(out) != before


@pytest.mark.slow
def test_two_reports_into_one_folder_run_one_after_the_other(fixture_runs, tmp_path, monkeypatch,
                                                             capsys):
    import bench.reporting.report as report

    real = report.write_tables
    events: list[str] = []

    def slow(ctx):
        events.append("start")
        time.sleep(0.5)
        tables = real(ctx)
        events.append("end")
        return tables

    monkeypatch.setattr(report, "write_tables", slow)
    out = tmp_path / "out"
    errors: list[BaseException] = []

    def build() -> None:
        try:
            build_report(fixture_runs, out, ReportOptions(n_boot=20))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    with console_logging():  # the waiting line as a command shows it
        for t in threads:
            t.start()
            time.sleep(0.1)
        for t in threads:
            t.join(120)
    assert not errors and events == ["start", "end", "start", "end"]
    assert f"waiting: another command is writing {out}" in capsys.readouterr().out
    assert (out / "README.md").is_file() and (out / "tables" / "table3_comparison.csv").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _cpu_run(runs: Path, model: str, rng_seed: int, profile: dict | None = None,
             model_config: dict | None = None, **settings) -> Path:
    """A fixture run of the cpu profile (20 epochs, 64 px, no CV; Fus2Net's experiments with 2
    folds), as config.json records it."""
    base = {"epochs": 20, "img_size": 64, "folds": 0, "data_sha256": "ab" * 32, **settings}
    folder = write_fixture_run(runs, model, 0.5, rng_seed, **base)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["profile"] = {"name": "cpu", "img_size": 64, "epochs": 20, "folds": base["folds"],
                      "batch_size": 16, "experiment_folds": 2, **(profile or {})}
    cfg["model_config"].update(model_config or {})
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_rows_whose_settings_differ_from_the_reference_say_which_and_by_design_ones_do_not(tmp_path):
    from bench.reporting.tables import comparability, comparison_sets
    runs = tmp_path / "runs"
    for seed in (0, 1):  # the reference: Fus2Net with the suite's experiment folds, 2 seeds
        _cpu_run(runs, "fus2net", 10 + seed, seed=seed, folds=2)
    _cpu_run(runs, "fus2net", 20, folds=0)  # the README's single-model command: no CV
    _cpu_run(runs, "resnet50", 21)  # the profile's own folds: by design
    _cpu_run(runs, "inception_v3_ft", 22, img_size=75, model_config={"min_input_size": 75})
    _cpu_run(runs, "zeimarani_cnn", 23, annotations="clean:ns:abc", data_sha256="cd" * 32)
    _cpu_run(runs, "zeimarani_cnn", 26)
    _cpu_run(runs, "mycnn", 24, epochs=2, profile={"epochs": 2})  # a 2-epoch run added
    _cpu_run(runs, "convnext_tiny", 25, img_size=32, manifest_sha256="ef" * 32)
    notes = comparability(comparison_sets(load_runs(runs)))
    assert notes == {"fus2net": "", "fus2net (folds 0)": "≠ reference: folds 0 vs 2",
                     "convnext_tiny": "≠ reference: manifest efefefef vs abababab, image size "
                                      "32 vs 64",
                     "inception_v3_ft": "", "mycnn": "≠ reference: epochs 2 vs 20",
                     "resnet50": "", "zeimarani_cnn": "",
                     "zeimarani_cnn (trained on cleaned images)": ""}


def test_the_held_out_tables_flag_a_row_that_is_not_comparable_with_the_reference(tmp_path):
    from bench.reporting.table3 import full_display, headline_display
    runs = tmp_path / "runs"
    _cpu_run(runs, "fus2net", 10, folds=2)
    _cpu_run(runs, "resnet50", 11, epochs=2, profile={"epochs": 2})
    loaded = load_runs(runs)
    per_seed = per_seed_table(loaded, n_boot=50)
    assert list(per_seed.not_comparable) == ["", "≠ reference: epochs 2 vs 20"]
    table = comparison_table(loaded, n_boot=50, per_seed=per_seed)
    assert list(table.not_comparable) == ["", "≠ reference: epochs 2 vs 20"]
    for display in (headline_display(table), full_display(table)):
        assert list(display.Flag) == ["", "≠ reference: epochs 2 vs 20"]
        assert list(display.Model) == ["fus2net", "resnet50"]  # not marked degenerate (⚠)
    assert table.delta_auc.notna().iloc[1]  # its contrast with Fus2Net is still shown
