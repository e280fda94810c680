"""Training-free synthetic-image detectors (spectral, correlation, fusion), their calibration recipe
and the resampling check used by the provenance record."""
import json
import time

import cv2
import numpy as np
import pytest
from skimage import data

from artifacts.detectors.synthetic.correlation import CorrelationConfig, CorrelationDetector
from artifacts.detectors.synthetic.fusion import SyntheticFusionConfig, SyntheticFusionDetector
from artifacts.detectors.synthetic.spectral import SpectralConfig, SpectralDetector, resampling_signs
from artifacts.io import ImageData, encode_image, load_image
from artifacts.registry import model_info, resolve_weights
from artifacts.weights import file_sha256

from .conftest import shared

NAMES = ("spectral", "correlation", "fusion")
CLASSES = {"spectral": (SpectralDetector, SpectralConfig), "correlation": (CorrelationDetector, CorrelationConfig),
           "fusion": (SyntheticFusionDetector, SyntheticFusionConfig)}


def photo(name="astronaut"):
    img = getattr(data, name)()
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def as_file(pixels, ext=".png", quality=95):
    return load_image(encode_image(pixels, ext, quality=quality))


def build(name, calibrated=True, **overrides):
    cls, cfg = CLASSES[name]
    info = model_info(f"synthetic/{name}")
    weights = resolve_weights(info, None) if calibrated else None
    return cls(cfg(**overrides), weights=weights, device="cpu")


@pytest.mark.parametrize("name", NAMES)
def test_score_and_heatmap_at_input_size(name):
    img = as_file(photo("coffee")[:301, :457])  # odd size: no tile or window fits exactly
    for calibrated in (True, False):
        det = build(name, calibrated).analyse(img)
        assert 0.0 <= det.score <= 1.0
        assert det.heatmap.shape == (301, 457) and det.heatmap.dtype == np.float32
        assert 0.0 <= det.heatmap.min() <= det.heatmap.max() <= 1.0
        assert det.meta["calibrated"] is calibrated
        assert det.meta["preprocessing"]["resize"] is None
        json.dumps(det.to_dict())  # meta is JSON-ready


def test_detect_adds_provenance_and_registry_metadata():
    det = build("fusion").detect(photo("chelsea"))
    assert det.meta["model"] == "synthetic/fusion" and det.meta["weights"].startswith("calib-v1")
    assert "provenance" in det.meta and "timings" in det.meta


@pytest.mark.parametrize("name", NAMES)
def test_packaged_calibration_matches_its_spec(name):
    info = model_info(f"synthetic/{name}")
    spec = info.weight_spec()
    assert info.weight_status() == "packaged"
    path = resolve_weights(info, None).path
    assert file_sha256(path) == spec.sha256
    record = json.loads(path.read_text())
    assert record["model"] == f"synthetic/{name}" and record["fit"]["recipe"] == "synthetic-calibration"
    assert record["fit"]["data"]["roots"] == ["../shared/data/sid/train"]  # the split's train roots, never eval
    held = record["fit"]["held_out"]
    assert 0.0 <= held["image_auc"] <= 1.0 and held["n_crops"] > 0
    assert info.cls.recipe == "synthetic-calibration"


def test_too_small_or_flat_is_not_applicable():
    tiny = ImageData(photo()[:100, :100].copy(), {"format": "PNG"})
    assert build("spectral").analyse(tiny).status.value == "not_applicable"
    flat = ImageData(np.full((300, 300, 3), 128, np.uint8), {"format": "PNG"})
    assert build("correlation").analyse(flat).status.value == "not_applicable"
    det = build("fusion").analyse(flat)
    assert det.status.value == "not_applicable" and "correlation" in det.reason


def transposed_conv_2x(pixels):
    """2x up-sampling as a decoder's transposed convolution does it: zeros inserted between the
    pixels, then a bilinear 3x3 kernel."""
    z = np.zeros((2 * pixels.shape[0], 2 * pixels.shape[1], 3), np.float32)
    z[::2, ::2] = pixels
    k = np.array([0.5, 1.0, 0.5], np.float32)
    return np.clip(cv2.filter2D(z, -1, np.outer(k, k)), 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_spectral_sees_period_two_upsampling(name):
    pixels = photo(name)
    up = transposed_conv_2x(pixels[::2, ::2])
    base = build("spectral").analyse(as_file(pixels))
    traced = build("spectral").analyse(as_file(up))
    assert traced.meta["raw"]["image_stat"] > base.meta["raw"]["image_stat"] + 2.0
    assert traced.score > base.score


def test_jpeg_blocks_do_not_fire_the_spectral_peaks():
    """A JPEG (and a JPEG saved again as PNG) has strong 8x8-grid peaks; with every period asked for,
    the lattice periods are discounted and the statistic stays that of the lossless photo."""
    pixels = photo("astronaut")
    lossless = build("spectral", False, periods=(2, 4, 8)).raw(as_file(pixels))
    jpeg_file = as_file(pixels, ".jpg", quality=75)
    resaved = as_file(jpeg_file.pixels, ".png")
    for img in (jpeg_file, resaved):
        raw = build("spectral", False, periods=(2, 4, 8)).raw(img)
        assert raw.diagnostics["jpeg_grid_strength"] > 1.0  # the blocks are there ...
        assert raw.diagnostics["peaks_by_period"]["4"] > 0.5
        assert raw.diagnostics["jpeg_discounted"] and raw.diagnostics["periods_used"] == [2]  # ... and discounted
        assert raw.stat < lossless.stat + 0.3, (raw.stat, lossless.stat)
    det_png, det_jpg = build("spectral").analyse(as_file(pixels)), build("spectral").analyse(jpeg_file)
    assert det_jpg.score <= det_png.score + 0.05
    only_lattice = build("spectral", False, periods=(4, 8)).analyse(jpeg_file)
    assert only_lattice.status.value == "not_applicable"


def test_bounded_windows_and_bands():
    img = as_file(photo("chelsea"))
    few = build("spectral", False, max_windows=4).raw(img)
    assert few.diagnostics["windows"] <= 4 and np.isfinite(few.stat)
    # correlation: one tile row per luminance band gives exactly the untiled result
    a = build("correlation", calibrated=False).raw(img)
    b = build("correlation", calibrated=False, band=1).raw(img)
    assert np.array_equal(a.map, b.map) and np.array_equal(a.stat, b.stat)
    c = build("spectral", calibrated=False).raw(img)
    d = build("spectral", calibrated=False, batch=3).raw(img)
    assert np.allclose(c.map, d.map, atol=1e-5) and c.stat == pytest.approx(d.stat, abs=1e-6)


def test_sixteen_bit_input_matches_eight_bit():
    pixels = photo("coffee")
    for name in NAMES:
        d8 = build(name).analyse(ImageData(pixels, {"format": "PNG"}))
        d16 = build(name).analyse(ImageData(pixels.astype(np.uint16) * 257, {"format": "PNG"}))
        assert d16.score == pytest.approx(d8.score, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# resampling_signs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "camera"])
@pytest.mark.parametrize("factor,interp,period", [(1.5, cv2.INTER_LINEAR, 3.0), (2.0, cv2.INTER_CUBIC, 2.0),
                                                  (1.5, cv2.INTER_CUBIC, 3.0), (2.0, cv2.INTER_LINEAR, 2.0)])
def test_resampling_signs_fire_on_upscaled_not_on_original(name, factor, interp, period):
    original = photo(name)
    up = cv2.resize(original, None, fx=factor, fy=factor, interpolation=interp)
    before, after = resampling_signs(original), resampling_signs(up)
    assert not before["resampled"] and before["period"] is None
    assert after["resampled"] and after["period"] == pytest.approx(period, abs=0.05)
    assert after["strength"] > before["strength"] + 0.5
    json.dumps(after)
    assert set(after) >= {"resampled", "strength", "period", "method"}


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_resampling_signs_ignore_jpeg_blocks(name):
    res = resampling_signs(as_file(photo(name), ".jpg", quality=75).pixels)
    assert res["jpeg_grid"] and not res["resampled"]


def test_resampling_signs_ignore_demosaicing_traces():
    """An unresized 'camera' image: a photo (downscaled 2x to remove earlier traces, plus sensor-like
    noise) through an RGGB Bayer mosaic and bilinear demosaicing."""
    base = cv2.resize(photo("coffee"), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA).astype(np.float32)
    base = np.clip(base + np.random.default_rng(0).normal(0, 2, base.shape), 0, 255).astype(np.uint8)
    bayer = np.zeros(base.shape[:2], np.uint8)
    bayer[0::2, 0::2], bayer[0::2, 1::2] = base[0::2, 0::2, 0], base[0::2, 1::2, 1]
    bayer[1::2, 0::2], bayer[1::2, 1::2] = base[1::2, 0::2, 1], base[1::2, 1::2, 2]
    camera = cv2.cvtColor(bayer, cv2.COLOR_BayerRG2RGB)
    assert not resampling_signs(camera)["resampled"]
    assert resampling_signs(cv2.resize(camera, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC))["resampled"]


def test_resampling_signs_is_fast_on_two_megapixels():
    big = cv2.resize(photo("astronaut"), (1700, 1200), interpolation=cv2.INTER_AREA)
    resampling_signs(big[:64, :64])  # warm-up (imports)
    t0 = time.perf_counter()
    resampling_signs(big)
    assert time.perf_counter() - t0 < 3.0  # about 0.3 s on an idle core; loose for loaded CI machines


# ---------------------------------------------------------------------------------------------
# calibration recipe
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_sid(tmp_path_factory):
    """16 real crops of scikit-image photos and 16 'generated' ones (2x transposed-convolution
    up-sampling: smooth and periodic, as from a simple decoder), PNG and JPEG in both classes."""
    root = tmp_path_factory.mktemp("sid")
    (root / "0_real").mkdir()
    (root / "1_fake").mkdir()
    rng = np.random.default_rng(0)
    names = ["astronaut", "chelsea", "coffee", "rocket"]
    for i in range(16):
        src = photo(names[i % 4])
        y, x = rng.integers(0, src.shape[0] - 160), rng.integers(0, src.shape[1] - 160)
        real = np.ascontiguousarray(src[y : y + 160, x : x + 160])
        fake = transposed_conv_2x(src[y : y + 80, x : x + 80])
        ext = ".jpg" if i % 3 == 0 else ".png"
        (root / "0_real" / f"photo__{i:02d}{ext}").write_bytes(encode_image(real, ext, quality=90))
        (root / "1_fake" / f"toy__{i:02d}{ext}").write_bytes(encode_image(fake, ext, quality=90))
    return root


@pytest.mark.parametrize("name", ["spectral", "fusion"])
def test_calibration_recipe_runs_on_a_tiny_dataset(name, tiny_sid, tmp_path):
    from artifacts.train import RECIPES, train
    from artifacts.weights import ResolvedWeights

    assert RECIPES["synthetic-calibration"].endswith(":calibrate_synthetic")
    result = train("synthetic", f"synthetic/{name}", str(tmp_path), data=str(tiny_sid), crop=160, progress=False)
    path = tmp_path / model_info(f"synthetic/{name}").weight_spec().file
    assert result["file"] == str(path) and result["sha256"] == file_sha256(path)
    record = json.loads(path.read_text())
    held = record["fit"]["held_out"]
    assert record["fit"]["crop_px"] == 160 and record["fit"]["data"]["data"] == str(tiny_sid)
    assert held["n_crops"] > 0 and 0 <= held["image_auc"] <= 1 and 0 <= held["container_auc"] <= 1
    assert len(record["features"]) == (1 if name == "spectral" else 5)
    # the file is a usable calibration for the detector
    cls, cfg = CLASSES[name]
    det = cls(cfg(), weights=ResolvedWeights(path, result["sha256"]), device="cpu")
    assert det.calibrated and 0 <= det.analyse(as_file(photo("coffee"))).score <= 1


def test_calibration_recipe_rejects_unknown_options(tiny_sid, tmp_path):
    from artifacts.train import train

    with pytest.raises(ValueError, match="unknown option"):
        train("synthetic", "synthetic/correlation", str(tmp_path), data=str(tiny_sid), bogus=1, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_shipped_calibration_is_reproducible(name, tmp_path):
    """Each packaged calibration comes from its recorded command on the split's training data."""
    shared("sid", "train")
    from artifacts.train import train

    info = model_info(f"synthetic/{name}")
    shipped = json.loads(resolve_weights(info, None).path.read_text())
    train("synthetic", info.full_name, str(tmp_path), seed=shipped["fit"]["seed"], progress=False)
    fresh = json.loads((tmp_path / info.weight_spec().file).read_text())
    for part in ("pixel", "image"):
        assert fresh[part].keys() == shipped[part].keys()
        for k in fresh[part]:
            assert fresh[part][k] == pytest.approx(shipped[part][k], rel=1e-3, abs=1e-4)
    assert fresh["fit"]["held_out"] == shipped["fit"]["held_out"]
