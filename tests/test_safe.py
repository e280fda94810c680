"""SAFE synthetic-image detector and its training recipe.

Fast tests with a tiny architecture and random weights: they check the plumbing (wavelet band,
shapes, key layout, crops, the recipe's files), not detection quality."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pywt = pytest.importorskip("pywt")

from artifacts.detectors.synthetic import safe as safe_mod  # noqa: E402  (registers synthetic/safe)
from artifacts.detectors.synthetic.safe import (  # noqa: E402
    TINY, SafeConfig, SafeDetector, arch_from_state_dict, crop_boxes, dwt_hh, hh_band, load_official,
)
from artifacts.io import ImageData  # noqa: E402
from tests.conftest import shared  # noqa: E402

# The state-dict layout of the official model, written out by hand from the official source
# Ouxiang-Li/SAFE, models/resnet.py at commit 46801cacbd50e4763d09783e169475dfa92c5ee4 (same at
# 78b2745a272b087517df254d668e0848b2045482): ResNet(Bottleneck, [3, 4, 6, 3]) with only conv1
# (3x3, 3->64), bn1, layer1 = _make_layer(64, 3), layer2 = _make_layer(128, 4, stride=2) and
# fc1 = nn.Linear(512, num_classes=2); Bottleneck: conv1 1x1, bn1, conv2 3x3, bn2, conv3 1x1
# (x4), bn3, downsample = Sequential(conv1x1, BatchNorm2d) when stride != 1 or widths differ.
# One line per module: name, kind, shape ("bn" lines stand for weight, bias, running_mean,
# running_var of that size plus a scalar num_batches_tracked).
OFFICIAL_MODULES = """
conv1 conv 64 3 3 3
bn1 bn 64
layer1.0.conv1 conv 64 64 1 1
layer1.0.bn1 bn 64
layer1.0.conv2 conv 64 64 3 3
layer1.0.bn2 bn 64
layer1.0.conv3 conv 256 64 1 1
layer1.0.bn3 bn 256
layer1.0.downsample.0 conv 256 64 1 1
layer1.0.downsample.1 bn 256
layer1.1.conv1 conv 64 256 1 1
layer1.1.bn1 bn 64
layer1.1.conv2 conv 64 64 3 3
layer1.1.bn2 bn 64
layer1.1.conv3 conv 256 64 1 1
layer1.1.bn3 bn 256
layer1.2.conv1 conv 64 256 1 1
layer1.2.bn1 bn 64
layer1.2.conv2 conv 64 64 3 3
layer1.2.bn2 bn 64
layer1.2.conv3 conv 256 64 1 1
layer1.2.bn3 bn 256
layer2.0.conv1 conv 128 256 1 1
layer2.0.bn1 bn 128
layer2.0.conv2 conv 128 128 3 3
layer2.0.bn2 bn 128
layer2.0.conv3 conv 512 128 1 1
layer2.0.bn3 bn 512
layer2.0.downsample.0 conv 512 256 1 1
layer2.0.downsample.1 bn 512
layer2.1.conv1 conv 128 512 1 1
layer2.1.bn1 bn 128
layer2.1.conv2 conv 128 128 3 3
layer2.1.bn2 bn 128
layer2.1.conv3 conv 512 128 1 1
layer2.1.bn3 bn 512
layer2.2.conv1 conv 128 512 1 1
layer2.2.bn1 bn 128
layer2.2.conv2 conv 128 128 3 3
layer2.2.bn2 bn 128
layer2.2.conv3 conv 512 128 1 1
layer2.2.bn3 bn 512
layer2.3.conv1 conv 128 512 1 1
layer2.3.bn1 bn 128
layer2.3.conv2 conv 128 128 3 3
layer2.3.bn2 bn 128
layer2.3.conv3 conv 512 128 1 1
layer2.3.bn3 bn 512
fc1 linear 2 512
"""


def official_keys() -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for line in OFFICIAL_MODULES.strip().splitlines():
        name, kind, *dims = line.split()
        dims = tuple(int(d) for d in dims)
        if kind == "conv":
            out.append((f"{name}.weight", dims))
        elif kind == "bn":
            out += [(f"{name}.{p}", dims) for p in ("weight", "bias", "running_mean", "running_var")]
            out.append((f"{name}.num_batches_tracked", ()))
        else:  # linear
            out += [(f"{name}.weight", dims), (f"{name}.bias", dims[:1])]
    return out


def tiny_detector(**kw) -> SafeDetector:
    return SafeDetector(SafeConfig(**{**TINY, **kw}), weights=None, device="cpu")


def test_dwt_hh_equals_pywt():
    rng = np.random.default_rng(0)
    for shape in [(256, 256), (37, 50), (64, 91)]:
        x = rng.random((2, 3, *shape))
        ref = pywt.dwt2(x, "bior1.3", mode="symmetric", axes=(-2, -1))[1][2]  # cD = HH
        got = dwt_hh(torch.from_numpy(x.astype(np.float32))).numpy()
        assert got.shape == ref.shape == (2, 3, (shape[0] + 5) // 2, (shape[1] + 5) // 2)
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_hh_band_keeps_the_input_size_and_drops_smooth_content():
    x = torch.rand(1, 3, 40, 56)
    assert hh_band(x).shape == x.shape
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    assert hh_band(ramp)[..., 8:-8, 8:-8].abs().max() < 1e-5  # a plane has no diagonal detail


def test_official_key_layout_and_checkpoint_loading(tmp_path):
    net = safe_mod.SAFENet()  # the full (official) architecture
    sd = net.state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == official_keys()
    assert sum(p.numel() for p in net.parameters()) == 1_438_274
    assert arch_from_state_dict(sd) == SafeConfig().arch()

    # an official checkpoint-best.pth: {"model", "optimizer", "epoch", "scaler", "args": Namespace}
    trained = {k: (v + 0.5 if v.is_floating_point() else v) for k, v in sd.items()}
    opt = torch.optim.AdamW(net.parameters(), lr=5e-3)
    ckpt = {"model": trained, "optimizer": opt.state_dict(), "epoch": "best", "scaler": {"scale": 65536.0},
            "args": argparse.Namespace(model="SAFE", input_size=256, transform_mode="crop", blr=0.01, lr=0.005,
                                       data_path="data/datasets/train_ForenSynths/train", seed=None, gpu=0)}
    path = tmp_path / "checkpoint-best.pth"
    torch.save(ckpt, path)
    loaded = load_official(path)
    fresh = safe_mod.SAFENet()
    fresh.load_state_dict(loaded, strict=True)
    assert torch.equal(fresh.fc1.weight, trained["fc1.weight"])

    ddp = tmp_path / "ddp.pth"  # a DDP-wrapped state dict loads too
    torch.save({"model": {f"module.{k}": v for k, v in trained.items()}}, ddp)
    safe_mod.SAFENet().load_state_dict(load_official(ddp), strict=True)

    det = SafeDetector(SafeConfig(), weights=_resolved(path), device="cpu")
    assert torch.equal(det.net.layer2[3].bn3.running_var, trained["layer2.3.bn3.running_var"])
    with pytest.raises(ValueError, match="architecture"):
        SafeDetector(SafeConfig(**TINY), weights=_resolved(path), device="cpu")


def _resolved(path):
    from artifacts.weights import resolve

    return resolve(None, explicit=path)


def test_score_range_and_preprocessing_record():
    det = tiny_detector(crop=64, n_crops=1)
    rng = np.random.default_rng(1)
    d = det.analyse(ImageData(pixels=rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)))
    assert 0.0 <= d.score <= 1.0 and d.heatmap is None
    pre = d.meta["preprocessing"]
    assert pre["resize"] is None and pre["n_crops"] == 1 and pre["pad"] is None
    assert pre["crops"] == [[8, 18, 64, 64]]  # torchvision CenterCrop's rounding
    d16 = det.analyse(ImageData(pixels=rng.integers(0, 65536, (70, 70, 3), dtype=np.uint16)))
    assert 0.0 <= d16.score <= 1.0


def test_large_image_is_scored_on_several_crops_and_aggregated():
    det = tiny_detector(crop=64, n_crops=5)
    px = np.random.default_rng(2).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    d = det.analyse(ImageData(pixels=px))
    pre = d.meta["preprocessing"]
    assert pre["n_crops"] == 5 == len(pre["crops"]) == len(d.meta["crop_scores"])
    assert pre["crops"][0] == [118, 68, 64, 64]  # the centre crop comes first
    assert {tuple(c[:2]) for c in pre["crops"][1:]} == {(0, 0), (0, 136), (236, 0), (236, 136)}
    assert d.score == pytest.approx(np.mean(d.meta["crop_scores"]), abs=1e-6)
    dmax = tiny_detector(crop=64, n_crops=5, aggregation="max").analyse(ImageData(pixels=px))
    assert dmax.score == pytest.approx(max(dmax.meta["crop_scores"]), abs=1e-6)
    # one crop when the image is the crop's size; a 3x3 grid + centre for n_crops=10
    assert crop_boxes(64, 64, 64, 5) == [(0, 0)]
    assert len(crop_boxes(1000, 1000, 64, 10)) == 10


def test_small_image_is_padded_not_resized():
    px = np.full((30, 50, 3), 200, np.uint8)
    for mode in ("constant", "reflect"):
        d = tiny_detector(crop=64, pad_mode=mode).analyse(ImageData(pixels=px))
        pre = d.meta["preprocessing"]
        assert pre["pad"] == {"mode": mode, "top_bottom_left_right": [17, 17, 7, 7]}
        assert pre["crops"] == [[0, 0, 64, 64]] and pre["input_size"] == [30, 50]


def test_registration_and_recipe():
    from artifacts.registry import model_info
    from artifacts.train import RECIPES

    info = model_info("synthetic/safe")
    assert info.cls is SafeDetector and info.needs_weights and SafeDetector.recipe == "safe"
    assert RECIPES["safe"] == "artifacts.train.synthetic:train_safe"
    spec = info.weight_spec()
    assert spec.file == "safe_sid-v1.safetensors" and spec.package == "artifacts.detectors.synthetic.weights"
    assert {"formats", "min_side"} <= set(SafeDetector.trained_on)
    with pytest.raises(ValueError):
        SafeConfig(aggregation="vote")


def test_detect_adds_provenance():
    pytest.importorskip("artifacts.detectors.synthetic.provenance")
    d = tiny_detector(crop=64).detect(np.zeros((64, 64, 3), np.uint8))
    assert "provenance" in d.meta and d.meta["model"] == "synthetic/safe"


# ---------------------------------------------------------------------------------------------
# Training recipe
# ---------------------------------------------------------------------------------------------
def test_history_probabilities_equalise_jpeg_past():
    from artifacts.datasets.sid import SIDSample
    from artifacts.train.synthetic import history_probabilities

    samples = [SIDSample(f"r{i}", 0, None, f"r{i}") for i in range(10)] + [SIDSample(f"f{i}", 1, None, f"f{i}") for i in range(10)]
    lossy = [True] * 8 + [False] * 2 + [True] * 1 + [False] * 9  # reals 80 % JPEG, fakes 10 %
    p = history_probabilities(samples, [(None, v) for v in lossy])
    past = {label: np.mean([v or False for s, v in zip(samples, lossy) if s.label == label]) for label in (0, 1)}
    for label in (0, 1):
        n_lossless = sum(1 for s, v in zip(samples, lossy) if s.label == label and not v)
        assert past[label] + p[label] * n_lossless / 10 == pytest.approx(0.8)


def test_augment_shapes_and_mask():
    from artifacts.train.synthetic import Aug, augment, random_mask

    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (50, 300, 3), dtype=np.uint8)  # smaller than the crop on one side
    x = augment(px, rng, Aug(), 64, history_p=1.0, lossy=False)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    m = random_mask(np.ones((3, 64, 64), np.float32), np.random.default_rng(3), (0.5, 0.5), 16)
    assert (m[0] == 0).sum() == 8 * 256  # int(64*64*0.5/256) = 8 whole 16 px cells


def _write_set(root):
    """A ForenSynths-like train/val layout from scikit-image photos: JPEG reals, PNG 'fakes'
    (upsampled crops), a few of each."""
    import cv2
    from skimage import data

    from artifacts.io import save_image

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    for part, n in (("train", 3), ("val", 2)):
        for i in range(n):
            for k, img in enumerate(photos):
                j = (i * 4 + k) % len(photos)
                y, x = 20 * i, 10 * k
                real = np.ascontiguousarray(photos[j][y : y + 96, x : x + 96])
                fake = cv2.resize(np.ascontiguousarray(img[y : y + 48, x : x + 48]), (96, 96), interpolation=cv2.INTER_CUBIC)
                for label, arr, ext in (("0_real", real, ".jpg"), ("1_fake", fake, ".png")):
                    (root / part / label).mkdir(parents=True, exist_ok=True)
                    save_image(root / part / label / f"{i}_{k}{ext}", arr)


def test_tiny_training_run_writes_weights_and_record(tmp_path):
    from artifacts.registry import model_info
    from artifacts.train.synthetic import train_safe

    _write_set(tmp_path / "data")
    info = model_info("synthetic/safe")
    res = train_safe(info, str(tmp_path / "out"), data=str(tmp_path / "data"), epochs=2, batch=4, progress=False,
                     threads=1, crop=64, **TINY)
    rec = json.loads((tmp_path / "out" / "train.json").read_text())
    assert (tmp_path / "out" / "safe.safetensors").is_file() and res["sha256"] == rec["weights"]["sha256"]
    assert len(rec["epochs"]) == 2 and rec["data"]["held_out_from"] == "the layout's val folders"
    assert rec["data"]["train"]["real"]["n"] == 12 and rec["data"]["train"]["fake"]["n"] == 12
    assert rec["data"]["held_out"] and rec["data"]["train"]["real"]["lossy_stored"] == 12
    assert all(np.isfinite(e["train_loss"]) for e in rec["epochs"])
    assert set(rec["held_out"]) == {"stored", "jpeg90", "jpeg75", "mean_auc"}
    assert rec["history_jpeg_p"]["real"] == 0.0 and rec["history_jpeg_p"]["fake"] == 1.0
    assert rec["complete"] and not rec["stopped_early"]
    det = SafeDetector(SafeConfig(crop=64, **TINY), weights=_resolved(tmp_path / "out" / "safe.safetensors"), device="cpu")
    assert 0.0 <= det.analyse(ImageData(pixels=np.zeros((64, 64, 3), np.uint8))).score <= 1.0
    # a time limit stops after the epoch past which the next one would not fit
    res = train_safe(info, str(tmp_path / "out2"), data=str(tmp_path / "data"), epochs=3, batch=4, progress=False,
                     threads=1, time_limit_s=1e-3, crop=64, **TINY)
    rec = json.loads((tmp_path / "out2" / "train.json").read_text())
    assert res["epochs_run"] == 1 == len(rec["epochs"]) and rec["stopped_early"] and rec["complete"]


def test_split_list_never_reads_eval_data():
    shared("sid", "train")
    from artifacts.train.synthetic import split_samples

    train, held, where = split_samples(None)
    names = [s.image for s in train + held]
    assert not any("/sid/dev/" in n for n in names)
    assert any("BSD68" in n for n in names) and {s.label for s in held} == {0, 1}
    assert len(train) + len(held) == len(set(names))


def test_shipped_weights_load():
    from artifacts.registry import create

    det = create("synthetic/safe", device="cpu", n_crops=1)
    assert det.weights is not None and det.weights.spec is not None and det.weight_id.startswith("sid-v1:")
    from skimage import data

    d = det.analyse(ImageData(pixels=np.ascontiguousarray(data.astronaut())))
    assert 0.0 <= d.score <= 1.0 and d.meta["preprocessing"]["n_crops"] == 1
