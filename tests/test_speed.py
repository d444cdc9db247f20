"""``bench.engine.speed`` measures both pipelines on one device and writes its table."""

import pandas as pd
import pytest

from bench.cli.speed import main
from bench.core.errors import BenchError
from bench.engine.speed import paper_image_steps, parse_members


def test_paper_protocol_is_about_410k_image_steps_on_busi():
    # 10 folds × 9/10 of 758 flip-balanced images + the final fit on 758, × 53 epochs
    assert paper_image_steps() == 401_740


@pytest.mark.slow
def test_speed_table_has_all_three_pipelines_and_the_device(small_synthetic, tmp_path):
    assert main(["--models", "zeimarani_cnn", "--device", "cpu", "--data", str(small_synthetic),
                 "--img-size", "48", "--steps", "2", "--warmup", "1", "--workers", "0",
                 "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "speed.csv")
    assert list(df.pipeline) == ["naive", "ours", "ours, 2 stacked"]
    assert (df.img_per_s > 0).all() and (df.paper_protocol_s > 0).all()
    assert df.speedup_vs_naive.iloc[0] == 1.0
    assert "Device:" in (tmp_path / "speed.md").read_text()
    assert df.gpu_peak_gib.isna().all()  # measured on CUDA only, blank on a CPU


def test_members_option_times_each_stacked_size_once_and_rejects_nonsense():
    assert parse_members(None, "cuda") == [11] and parse_members(None, "cpu") == [2]
    assert parse_members("11,4,1,4", "cuda") == [4, 11]  # 1 is the reference engine's row
    assert parse_members("0", "cuda") == []
    for bad in ("four", "-2", "4,,11"):
        with pytest.raises(BenchError, match="`members`="):
            parse_members(bad, "cuda")
