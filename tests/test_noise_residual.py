import numpy as np
import pytest

import artifacts
from artifacts.detectors.manipulation.noise_residual import cell_histograms, code_classes
from artifacts.io import ImageData


@pytest.fixture(scope="module")
def detector():
    return artifacts.create("noise-residual", device="cpu")


def _resampled_square(name="astronaut"):
    """A real photo in which a 128 px square was replaced by a 2x upscaled 64 px crop: the
    resampled region has smoother residual statistics than the camera noise around it."""
    import cv2
    from skimage import data

    img = getattr(data, name)().copy()
    h, w = img.shape[:2]
    y, x = h // 2, w // 4
    img[y : y + 128, x : x + 128] = cv2.resize(img[y : y + 64, x : x + 64], (128, 128), interpolation=cv2.INTER_LINEAR)
    mask = np.zeros((h, w), bool)
    mask[y : y + 128, x : x + 128] = True
    return img, mask


def test_symmetry_classes():
    classes, k = code_classes()
    assert k == 25 and classes.shape == (81,)  # 81 codes, merged by sign and reversal (Burnside: 25)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_finds_a_resampled_region(detector, name):
    img, mask = _resampled_square(name)
    det = detector.detect(img)
    assert det.heatmap.shape == mask.shape
    inside, outside = det.heatmap[mask].mean(), det.heatmap[~mask].mean()
    assert inside > outside + 0.2, (inside, outside)
    overlap = (det.mask & mask).sum() / mask.sum()
    assert overlap > 0.5
    assert det.meta["calibrated"] is True and det.meta["weights"].startswith("calib-v1")


def test_tiled_equals_untiled():
    """Tiles smaller than half the image give identical counts (tolerance 0: integer histograms)."""
    img, _ = _resampled_square()
    whole = cell_histograms(img, 2.0, 8, tile=4096)
    tiled = cell_histograms(img, 2.0, 8, tile=200)  # 200 px -> 192 px tiles on a 512 px image
    assert bool((whole == tiled).all()) and int(whole.sum()) > 0
    a = artifacts.create("noise-residual", device="cpu", tile=4096).detect(img)
    b = artifacts.create("noise-residual", device="cpu", tile=160).detect(img)
    assert np.array_equal(a.heatmap, b.heatmap) and a.score == b.score


def test_sixteen_bit_input_matches_eight_bit(detector):
    img, _ = _resampled_square()
    d8 = detector.detect(img)
    d16 = detector.detect(img.astype(np.uint16) * 257)
    # same luminance up to float rounding, which can flip a few quantised residuals
    assert np.abs(d8.heatmap - d16.heatmap).max() < 0.01


def test_too_small_is_not_applicable(detector):
    det = detector.detect(np.zeros((40, 300, 3), np.uint8))
    assert det.status.value == "not_applicable" and "too small" in det.reason


def test_api_accepts_paths_arrays_pil_tensors(tmp_path):
    import torch
    from PIL import Image

    img, _ = _resampled_square()
    Image.fromarray(img).save(tmp_path / "a.png")
    by_path = artifacts.detect(str(tmp_path / "a.png"), device="cpu", model="noise-residual")
    by_array = artifacts.detect(img, device="cpu", model="noise-residual")
    by_pil = artifacts.detect(Image.fromarray(img), device="cpu", model="noise-residual")
    by_tensor = artifacts.detect(torch.from_numpy(img).permute(2, 0, 1).float() / 255, device="cpu",
                                model="noise-residual")
    batch = artifacts.detect(np.stack([img, img]), device="cpu", model="noise-residual")
    assert isinstance(batch, list) and len(batch) == 2
    for d in (by_array, by_pil, by_tensor, batch[0]):
        assert abs(d.score - by_path.score) < 1e-6 and np.abs(d.heatmap - by_path.heatmap).max() < 1e-6
