"""``bench.jobs.sweep`` (command: ``bench.cli.sweep``): learning curves on CV folds (never the test set), the evidence for a profile's
epochs; and the training hook they rest on."""

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli.run import options_from_argv
from bench.cli.sweep import main
from bench.data.augment import AugmentConfig
from bench.data.cache import ImageCache
from bench.engine.runner import prepare
from bench.engine.train import TrainSettings, train_model
from bench.jobs.sweep import plateau_epoch
from models import create_model, get_model_config


def test_plateau_is_the_first_epoch_near_the_best_running_mean():
    auc = pd.Series([0.5, 0.6, 0.7, 0.8, 0.82, 0.81, 0.83, 0.82], index=range(1, 9))
    # 3-epoch running means: .5 .55 .6 .7 .773 .81 .82 .82 → best .82, within .02 from epoch 6
    assert plateau_epoch(auc, tolerance=0.02, window=3) == 6
    assert plateau_epoch(auc, tolerance=0.0, window=3) == 7
    assert plateau_epoch(auc, tolerance=1.0, window=3) == 1


def test_the_model_after_epoch_e_is_the_model_of_an_e_epoch_run():
    """The sweep scores one long run after every epoch; that stands for shorter runs only if the
    per-epoch hook changes nothing (constant learning rate, same batches, same RNG use)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    cache = ImageCache(torch.randint(0, 255, (24, 3, 32, 32), generator=g, dtype=torch.uint8),
                       torch.tensor([0, 1] * 12), pd.DataFrame({"id": [str(i) for i in range(24)]}))
    cfg = get_model_config("zeimarani_cnn")
    idx, flips = np.arange(24), np.zeros(24, dtype=np.int64)
    settings = TrainSettings(epochs=3, batch_size=8, augment=AugmentConfig(), channels_last=False,
                             device="cpu")
    snapshots = {}

    def keep(epoch, model):
        from bench.engine.train import predict
        predict(model, cfg, cache, idx[:5], device="cpu", channels_last=False)  # as the sweep
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    torch.manual_seed(5)
    long = create_model("zeimarani_cnn", in_chans=3, pretrained="none")
    train_model(long, cfg, cache, idx, flips, settings, seed=7, progress=False, on_epoch=keep)
    torch.manual_seed(5)
    short = create_model("zeimarani_cnn", in_chans=3, pretrained="none")
    train_model(short, cfg, cache, idx, flips, TrainSettings(
        epochs=2, batch_size=8, augment=AugmentConfig(), channels_last=False, device="cpu"),
        seed=7,
        progress=False)
    for k, v in short.state_dict().items():
        assert torch.equal(v, snapshots[2][k]), k
    assert sorted(snapshots) == [1, 2, 3]


@pytest.mark.slow
def test_sweep_writes_curves_from_cv_folds_only_and_reuses_them(small_synthetic, tmp_path,
                                                                capsys):
    out = tmp_path / "sweep"
    args = ["--models", "zeimarani_cnn", "--epochs", "3", "--cv-folds", "2", "--use-folds", "0",
            "--profile", "smoke", "--test-per-class", "20", "--no-progress", "--out", str(out),
            "--data", str(small_synthetic)]
    assert main(args) == 0
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.epoch) == [1, 2, 3] and set(curves.fold) == {0}
    pooled = pd.read_csv(out / "curves_pooled.csv")
    assert len(pooled) == 3 and pooled.pooled_auc.between(0, 1).all()
    plateau = pd.read_csv(out / "plateau.csv")
    assert 1 <= int(plateau.plateau_epoch.iloc[0]) <= 3
    assert (out / "learning_curves.png").is_file()
    (pred,) = (out / "curves").glob("*_pred.csv")
    scored = set(pd.read_csv(pred, dtype={"id": str}).id)
    p = prepare(options_from_argv(["--model", "zeimarani_cnn", "--folds", "2", "--profile",
                                   "smoke", "--test-per-class", "20", "--out", str(tmp_path / "x"),
                                   "--data", str(small_synthetic)]))
    rows = p.manifest
    assert scored and scored <= set(rows.id[rows.split == "train"])  # never a test image
    capsys.readouterr()
    assert main(args) == 0
    assert "reusing" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--use-folds", "x"], ["--use-folds", "7"], ["--epochs", "0"]])
def test_bad_sweep_options_are_one_line(bad, tiny_synthetic, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--models", "zeimarani_cnn", "--cv-folds", "2", "--profile", "smoke",
              "--data", str(tiny_synthetic), "--test-per-class", "4", "--out", str(tmp_path), *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]


class _Frozen(torch.nn.Module):
    """A trainable conv+BN followed by a 'frozen backbone' BN kept in eval mode (as
    models.heads.BackboneClassifier does)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4, momentum=0.01)
        self.frozen_bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4, 2)

    def train(self, mode: bool = True):
        super().train(mode)
        self.frozen_bn.eval()
        return self

    def forward(self, x):
        return self.head(self.frozen_bn(self.bn(self.conv(x))).mean((2, 3)))


def test_batchnorm_recalibration_averages_the_training_pass_and_leaves_frozen_layers():
    from bench.engine.train import normalize, recalibrate_batchnorm
    g = torch.Generator().manual_seed(0)
    cache = ImageCache(torch.randint(0, 255, (20, 3, 16, 16), generator=g, dtype=torch.uint8),
                       torch.tensor([0, 1] * 10), pd.DataFrame({"id": [str(i) for i in range(20)]}))
    cfg = get_model_config("fus2net")
    model = _Frozen()
    frozen_before = model.frozen_bn.running_mean.clone()
    idx, flips = np.arange(20), np.zeros(20, dtype=np.int64)
    rng = torch.get_rng_state()
    assert recalibrate_batchnorm(model, cfg, cache, idx, flips, "cpu", batch_size=10,
                                 channels_last=False) == 1
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training and model.bn.momentum == 0.01
    with torch.no_grad():
        feats = [model.conv(normalize(cache.images[k:k + 10].float(), cfg)) for k in (0, 10)]
    expected = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)  # mean of batch means
    assert torch.allclose(model.bn.running_mean, expected, atol=1e-5)
    assert torch.equal(model.frozen_bn.running_mean, frozen_before)
