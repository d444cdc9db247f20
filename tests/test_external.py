"""External validation (docs/protocol.md, External validation): train on one data set, score unchanged on another, show the drop."""

import json
import shutil

import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from bench.data.synthetic import PhantomSpec, generate
from tests.helpers import SMOKE, run_main, write_image

# trains well enough (test AUC 0.925) for a scanner shift to show; the fixture, with the split and
# site-B scoring, took 48 s on 2 cores beside another job (2026-11-30)
TRAINED = ["--profile", "cpu", "--epochs", "14", "--folds", "0", "--no-progress",
           "--test-per-class", "25"]


@pytest.fixture(scope="module")
def site_a(tmp_path_factory):
    return generate(PhantomSpec(n_benign=100, n_malignant=100, seed=11),
                    tmp_path_factory.mktemp("siteA") / "phantom", workers=2)


@pytest.fixture(scope="module")
def site_b(tmp_path_factory):
    return generate(PhantomSpec(n_benign=50, n_malignant=50, seed=12, site="B"),
                    tmp_path_factory.mktemp("siteB") / "phantom_site_b", workers=2)


@pytest.fixture(scope="module")
def trained(site_a, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    from bench.cli.run import main
    assert main(["--data", str(site_a), "--out", str(out), *TRAINED]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


@pytest.mark.slow
def test_a_scanner_shift_lowers_external_auc_and_a_finished_run_only_scores(
        site_a, site_b, trained, capsys):
    code, out, err = run_main(capsys, "--data", str(site_a), "--out", str(trained.parent),
                              *TRAINED, "--external", str(site_b))
    assert code == 0, err
    assert "reusing the finished run" in out  # no retraining
    internal = json.loads((trained / "metrics.json").read_text())["test"]
    external = json.loads((trained / "external" / "phantom_site_b" / "metrics.json").read_text())
    assert external["content_sha256"] and external["weights_sha256"]
    assert internal["auc"] > 0.85
    # measured (100 + 100 images, 14 epochs, 2026-11-30): 0.925 -> 0.798
    assert external["test"]["auc"] < internal["auc"] - 0.03
    preds = pd.read_csv(trained / "external" / "phantom_site_b" / "predictions.csv")
    assert list(preds.columns) == ["id", "path", "label", "prob_malignant", "split", "fold", "group",
                                   "training_copy"]
    assert len(preds) == external["scored"] and (preds.split == "external").all()
    # another scanner's look-alike lesions are not copies: every image is scored and counted
    assert external["training_copies"] == 0 and external["scored"] == external["images"] == 100
    timed = json.loads((trained / "compute.json").read_text())["external/phantom_site_b"]
    assert timed["seconds"] > 0  # the scoring's time counts in a results set's compute
    code, out, _ = run_main(capsys, "--data", str(site_a), "--out", str(trained.parent), *TRAINED,
                            "--external", str(site_b))
    assert "reusing its scores" in out
    assert json.loads((trained / "compute.json").read_text())["external/phantom_site_b"] == timed


def copy_of(img: Image.Image, how: str) -> Image.Image:
    """A re-saved, re-gained, cropped or rescaled copy of one picture."""
    w, h = img.size
    if how == "crop":
        return img.crop((w // 10, h // 12, w - w // 8, h - h // 10))
    if how == "rescale":
        return img.resize((int(w * 1.6), int(h * 1.6)), Image.BICUBIC)
    if how == "regain":
        return ImageEnhance.Brightness(img).enhance(1.15)
    return img


@pytest.mark.slow
def test_only_copies_of_training_pictures_are_flagged_and_every_image_is_scored(
        site_a, site_b, trained, tmp_path, capsys):
    ext = tmp_path / "mixed"
    shutil.copytree(site_b / "benign", ext / "benign")
    shutil.copytree(site_b / "malignant", ext / "malignant")
    split = pd.read_csv(trained / "split.csv")
    copied = split[split.split == "train"].path.iloc[:5].tolist()
    ways = ["resave_jpeg", "crop", "rescale", "regain", "crop"]
    expected = set()
    for rel, how in zip(copied, ways, strict=True):
        name = rel.replace("syn_", "copy_")
        img = copy_of(Image.open(site_a / rel).convert("L"), how)
        if how == "resave_jpeg":  # recompressed
            name = name.replace(".png", ".jpg")
            img.save(ext / name, quality=70)
        else:
            img.save(ext / name)
        expected.add(name.split("/")[1].rsplit(".", 1)[0])
    code, _, err = run_main(capsys, "--data", str(site_a), "--out", str(trained.parent), *TRAINED,
                            "--external", str(ext))
    assert code == 0, err
    folder = trained / "external" / "mixed"
    metrics = json.loads((folder / "metrics.json").read_text())
    flagged = {e["id"].split("/")[-1] for e in metrics["copies"]}
    assert flagged == expected  # the copies, and nothing of the other site
    assert metrics["scored"] == metrics["images"] == 105 and metrics["training_copies"] == 5
    preds = pd.read_csv(folder / "predictions.csv", keep_default_na=False)
    assert len(preds) == 105 and (preds.training_copy != "").sum() == 5
    assert metrics["test_without_copies"]["n"] == 100
    assert (folder / "copies_01.png").is_file()


@pytest.mark.slow
def test_a_broken_or_empty_external_set_is_one_line_and_the_training_result_is_kept(
        small_synthetic, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(capsys, "--data", str(small_synthetic), "--out", str(tmp_path / "o"),
                            *SMOKE, "--external", str(tmp_path / "empty"))
    assert code == 2 and f"--external {tmp_path / 'empty'}" in err and "unknown layout" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing trained
    broken = tmp_path / "broken"
    for cls in ("benign", "malignant"):
        for i in range(3):
            write_image(broken / cls / f"{cls}_{i}.png", seed=i)
    (broken / "benign" / "benign_0.png").write_bytes(b"not a png")
    code, _, err = run_main(capsys, "--data", str(small_synthetic), "--out", str(tmp_path / "o"),
                            *SMOKE, "--external", str(broken))
    assert code == 2 and "--external" in err and "benign_0.png" in err and "Traceback" not in err
    (run_dir,) = (tmp_path / "o").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_a_bus_bra_layout_set_keeps_patients_and_the_report_uses_a_patient_bootstrap(
        small_synthetic, busbra_tree, tmp_path, capsys):
    from bench.cli.report import main as report_main
    for i in range(6, 16):  # more patients, two images each, so the bootstrap has something to do
        for side in ("l", "r"):
            write_image(busbra_tree / "Images" / f"bus_{i:04d}-{side}.png", seed=i)
    rows = (busbra_tree / "bus_data.csv").read_text().splitlines()
    rows += [f"bus_{i:04d}-{side},{i},x,{'malignant' if i % 2 else 'benign'},4,GE,80,64,left,\"[1]\""
             for i in range(6, 16) for side in ("l", "r")]
    (busbra_tree / "bus_data.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "runs"
    code, _, err = run_main(capsys, "--data", str(small_synthetic), "--out", str(out), *SMOKE,
                            "--external", str(busbra_tree))
    assert code == 0, err
    (run_dir,) = out.iterdir()
    preds = pd.read_csv(run_dir / "external" / "busbra" / "predictions.csv")
    assert preds.group.str.startswith("case:").all() and len(preds) == 25
    assert report_main(["--runs", str(out), "--out", str(tmp_path / "report"), "--n-boot", "200"]) == 0
    table = pd.read_csv(tmp_path / "report" / "tables" / "external_comparison.csv")
    assert table.external_auc_ci.tolist() == ["clustered (Obuchowski), patients as clusters"]
    assert (tmp_path / "report" / "figures" / "external_roc.png").is_file()
    assert "External validation: internal vs external" in (tmp_path / "report" / "README.md").read_text()


def test_the_copy_test_runs_once_per_process_until_an_image_changes(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from bench.engine import external as ext_mod

    def index_of(name: str, n: int) -> SimpleNamespace:
        (tmp_path / name).mkdir()
        samples = [SimpleNamespace(id=f"{name}{i}", path=f"{name}{i}.png") for i in range(n)]
        for s in samples:
            (tmp_path / name / s.path).write_bytes(b"x")
        return SimpleNamespace(samples=samples, abspath=lambda s, d=tmp_path / name: d / s.path)

    calls = []
    monkeypatch.setattr(ext_mod, "_COPIES", {})
    monkeypatch.setattr(ext_mod, "_find_training_copies",
                        lambda e, t, skip: calls.append(1) or ({"ext0": ("tr1", "same")}, []))
    ext, train = SimpleNamespace(index=index_of("ext", 2)), index_of("tr", 3)
    first = ext_mod.training_copies(ext, train, False)
    first[0].clear()  # a caller's change does not reach the next caller
    assert ext_mod.training_copies(ext, train, False) == ({"ext0": ("tr1", "same")}, [])
    assert len(calls) == 1
    (tmp_path / "tr" / "tr2.png").write_bytes(b"changed")
    ext_mod.training_copies(ext, train, False)
    assert len(calls) == 2


def files_of(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_bench_score_scores_a_cleaned_run_as_bench_run_did_and_never_replaces_a_result(
        tiny_synthetic, tmp_path, capsys, monkeypatch):
    """A run trained with ``--annotations clean`` was scored by bench.run on cleaned copies of its
    external set; bench.score once scored the images as they are (another AUC and content hash)
    and overwrote that result. Now it reads the run's settings through the same path
    (runner.external_sets, runner.as_seen) and gets the same images; and a result on other images
    is refused by both commands, never replaced."""
    from bench.cli.score import main as score_main
    from bench.data.content import content_sha256
    from tests.helpers import TINY, call_main

    monkeypatch.setenv("FUS2BENCH_CACHE", str(tmp_path / "cache"))
    site_b = generate(PhantomSpec(n_benign=8, n_malignant=8, seed=12, site="B"),
                      tmp_path / "site_b", workers=1)
    runs = tmp_path / "runs"
    command = ["--data", str(tiny_synthetic), "--out", str(runs), *TINY, "--folds", "0",
               "--model", "zeimarani_cnn", "--annotations", "clean", "--external", str(site_b)]
    code, _, err = run_main(capsys, *command)
    assert code == 0, err
    (run_dir,) = runs.iterdir()
    ext = run_dir / "external" / "site_b"
    record = json.loads((ext / "metrics.json").read_text())
    as_stored = content_sha256(site_b, sorted(p.relative_to(site_b).as_posix()
                                              for p in site_b.rglob("*.png")))
    assert record["content_sha256"] != as_stored  # bench.run scored the cleaned copies
    kept = files_of(ext)
    score = ["--runs", str(runs), "--external", str(site_b), "--device", "cpu"]
    code, out, err = call_main(capsys, score_main, *score)
    assert code == 0, err
    assert "reusing its scores (same weights, same images)" in out and files_of(ext) == kept
    shutil.rmtree(ext)  # scored anew by bench.score: the same images, the same numbers
    code, out, err = call_main(capsys, score_main, *score)
    assert code == 0, err
    again = json.loads((ext / "metrics.json").read_text())
    assert again["content_sha256"] == record["content_sha256"]
    assert again["test"] == record["test"]
    # a result on other images (here: its record says so) is refused by both, and kept as it is
    (ext / "metrics.json").write_text(json.dumps({**again, "content_sha256": "0" * 64}))
    kept = files_of(ext)
    for main, args in ((score_main, score), (None, command)):
        code, _, err = call_main(capsys, main, *args) if main else run_main(capsys, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert f"has external/site_b scored on other images (content SHA-256 000000000000, these " \
            f"{record['content_sha256'][:12]}); it is not replaced — delete {ext}" in lines[0]
        assert "--external NAME=" in lines[0]
        assert files_of(ext) == kept


def test_the_images_a_run_saw_follow_its_recorded_annotations_setting(tiny_synthetic):
    """bench.score reads the run's recorded ``annotations`` (runner.as_seen): as they are for a
    run that kept them; cleaned images made by another detector version are never passed off as
    the run's."""
    from bench.core.errors import BenchError
    from bench.data.datasets import load_index
    from bench.engine.runner import as_seen

    index = load_index(tiny_synthetic)
    assert as_seen(index, [s.path for s in index.samples], "keep") is index
    with pytest.raises(BenchError, match="cleaned by annotation detector 000000000000"):
        as_seen(index, [s.path for s in index.samples], "clean:ns:000000000000")
