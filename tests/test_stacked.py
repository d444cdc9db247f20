"""The stacked engine: K members trained at once behave like K reference runs."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from bench.data.augment import AugmentConfig, augment_policy
from bench.data.cache import ImageCache
from bench.engine.stacked import Member, StackedOptimizer, train_stacked
from bench.engine.train import TrainSettings, make_optimizer, train_model
from models import create_model, get_model_config, list_models


def tiny_cache(n: int = 60, size: int = 40, seed: int = 0) -> ImageCache:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3 == 0
    images = torch.randint(0, 200, (n, 3, size, size), generator=g, dtype=torch.uint8)
    images[labels, :, 10:30, 10:30] //= 2  # a weak, learnable signal
    rows = pd.DataFrame({"id": [str(i) for i in range(n)], "path": [f"{i}.png" for i in range(n)],
                         "label": labels.long().numpy()})
    return ImageCache(images, labels.long(), rows)


@pytest.mark.parametrize("name", ["adam", "rmsprop", "sgd"])
def test_stacked_optimizer_follows_torch_update_rules_and_skips_inactive_members(name):
    torch.manual_seed(0)
    ref = [torch.randn(5, 3, requires_grad=True) for _ in range(2)]
    stacked = torch.stack([r.detach() for r in ref]).requires_grad_()
    opts = [make_optimizer(name, [r], None) for r in ref]
    sopt = StackedOptimizer([stacked], name, None, members=2)
    for step in range(6):
        grads = [torch.randn(5, 3) for _ in ref]
        active = [True, step % 2 == 0]  # member 1 sits out every other step
        for r, g, o, a in zip(ref, grads, opts, active, strict=True):
            if a:
                r.grad = g.clone()
                o.step()
        stacked.grad = torch.stack(grads)
        sopt.step(active)
    for j in range(2):
        torch.testing.assert_close(stacked[j].detach(), ref[j].detach(), rtol=1e-5, atol=1e-6)


def _members(cache: ImageCache, sizes: list[int], dtype: torch.dtype = torch.float32) -> list[Member]:
    rng = np.random.default_rng(1)
    out = []
    for j, size in enumerate(sizes):
        torch.manual_seed(10 + j)
        model = create_model("fus2net", dropout=0.0).to(dtype)
        idx = np.sort(rng.choice(len(cache), size, replace=False))
        out.append(Member(model, idx, (np.arange(size) % 5 == 0).astype(np.int64), seed=100 + j))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["paper", "ultrasound"])
def test_stacked_training_equals_sequential_training_of_each_member(policy):
    """Unequal training sets (37 and 50 images: partial batches of 5 and 2, 3 vs 4 steps per
    epoch, so one member sits out a step), augmentation, BatchNorm and Fus2Net's L2 term, Adam:
    without dropout the stacked engine reproduces the reference engine member by member. In
    float64 the two agree to within 4e-15; in float32 they differ only by summation-order noise
    that Adam amplifies (up to about 6e-3 in a weight after 8 steps), which is why this runs in float64."""
    cache = tiny_cache()
    cfg = get_model_config("fus2net")
    settings = TrainSettings(epochs=2, augment=augment_policy(policy), channels_last=False,
                             device="cpu")
    members = _members(cache, [37, 50], torch.float64)
    refs = [copy.deepcopy(m.model) for m in members]
    results = train_stacked(members, cfg, cache, settings, progress=False)
    for m, ref, res in zip(members, refs, results, strict=True):
        history = train_model(ref, cfg, cache, m.indices, m.flips, settings, seed=m.seed,
                              progress=False).history
        assert res.diverged is None
        np.testing.assert_allclose(res.history, history, rtol=1e-6)
        got, want = m.model.state_dict(), ref.state_dict()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-9, atol=1e-11, msg=key)


@pytest.mark.slow
def test_a_diverging_member_fails_alone_and_the_others_train_normally():
    cache = tiny_cache()
    cfg = get_model_config("fus2net")
    settings = TrainSettings(epochs=2, augment=None, channels_last=False, device="cpu")
    members = _members(cache, [40, 40])
    with torch.no_grad():
        members[1].model.fc2.weight.fill_(float("inf"))
    ref = copy.deepcopy(members[0].model)
    results = train_stacked(members, cfg, cache, settings, progress=False)
    assert results[1].diverged is not None and results[1].diverged.epoch == 1
    assert results[1].diverged.step == 1
    history = train_model(ref, cfg, cache, members[0].indices, members[0].flips, settings,
                          seed=members[0].seed, progress=False).history
    np.testing.assert_allclose(results[0].history, history, rtol=2e-3)


def _fixed_keys(model: torch.nn.Module) -> set[str]:
    """Tensors training must not change: frozen parameters and, with a frozen backbone, its
    BatchNorm statistics (kept in eval mode)."""
    frozen = {k for k, p in model.named_parameters() if not p.requires_grad}
    if frozen:
        frozen |= {k for k in model.state_dict() if k.startswith("backbone.") and "running_" in k}
    return frozen


# VGG19's 139.6 M parameters with Adam's two moments for two members need ~7 GB; with SGD ~3 GB
OPTIMIZER = {"byra_vgg19_ml": "sgd"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_in_the_stacked_engine(name):
    cfg = get_model_config(name)
    size = max(64, cfg.min_input_size)
    cache = tiny_cache(n=8, size=size)
    members = []
    for j in range(2):
        torch.manual_seed(j)
        members.append(Member(create_model(name, pretrained="none"), np.arange(4) + 4 * j,
                              np.zeros(4, dtype=np.int64), seed=j))
    fixed = [_fixed_keys(m.model) for m in members]
    before = [{k: (v.clone() if k in keep else float(v.double().sum()))
               for k, v in m.model.state_dict().items()} for m, keep in zip(members, fixed, strict=True)]
    settings = TrainSettings(epochs=1, batch_size=4, augment=AugmentConfig(), channels_last=False,
                             optimizer=OPTIMIZER.get(name, "adam"), device="cpu")
    results = train_stacked(members, cfg, cache, settings, progress=False)
    for m, res, old, keep in zip(members, results, before, fixed, strict=True):
        assert res.diverged is None and np.isfinite(res.history).all()
        state = m.model.state_dict()
        trained = [k for k, p in m.model.named_parameters() if p.requires_grad]
        assert any(float(state[k].double().sum()) != old[k] for k in trained)
        # frozen weights, and a frozen backbone's BatchNorm statistics (eval mode), stay exact
        assert all(torch.equal(state[k], old[k]) for k in keep)
        if any(not p.requires_grad for p in m.model.parameters()):
            assert any("running_" in k for k in keep)


@pytest.mark.slow
def test_bf16_autocast_the_cuda_setting_works_through_vmap_like_the_reference_engine(monkeypatch):
    """On CUDA both engines run the model under bf16 autocast. CPU autocast goes through the same
    dispatch (autocast above vmap and functional_call), so it shows here that the stacked engine
    really computes in bf16 (its losses move away from fp32's) and still tracks the reference
    engine under the same autocast to within bf16 rounding."""
    import bench.engine.stacked
    import bench.engine.train

    cache = tiny_cache(n=40)
    cfg = get_model_config("fus2net")
    settings = TrainSettings(epochs=1, augment=AugmentConfig(), channels_last=False,
                             device="cpu")

    def run(engine_autocast):
        monkeypatch.setattr(bench.engine.train, "autocast", engine_autocast)
        monkeypatch.setattr(bench.engine.stacked, "autocast", engine_autocast)
        members = _members(cache, [20, 30])
        refs = [copy.deepcopy(m.model) for m in members]
        stacked = [r.history[0] for r in train_stacked(members, cfg, cache, settings, progress=False)]
        reference = [train_model(ref, cfg, cache, m.indices, m.flips, settings, seed=m.seed,
                                 progress=False).history[0]
                     for m, ref in zip(members, refs, strict=True)]
        assert all(p.dtype == torch.float32 for m in members for p in m.model.parameters())
        return np.array(stacked), np.array(reference)

    bf16_stacked, bf16_reference = run(lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    fp32_stacked, fp32_reference = run(lambda device: torch.autocast("cpu", enabled=False))
    np.testing.assert_allclose(fp32_stacked, fp32_reference, rtol=1e-5)
    np.testing.assert_allclose(bf16_stacked, bf16_reference, rtol=2e-3)
    assert np.abs(bf16_stacked - fp32_stacked).max() > 10 * np.abs(fp32_stacked - fp32_reference).max()
