import numpy as np
import pytest

import artifacts
from artifacts.io import encode_image, load_image


@pytest.fixture(scope="module")
def fusion():
    return artifacts.create("manipulation/fusion", device="cpu")


def _copy_moved():
    """A real photo with a textured patch copied 200 px to the right (ground truth: the target)."""
    from skimage import data

    img = data.astronaut().copy()
    img[300:380, 260:340] = img[300:380, 60:140]
    mask = np.zeros(img.shape[:2], bool)
    mask[300:380, 260:340] = True
    return img, mask


def test_fusion_uses_the_applicable_components_and_reports_them(fusion):
    assert fusion.calibrated and len(fusion.components) == 5
    img, mask = _copy_moved()
    det = fusion.detect(img)  # an array: no JPEG container
    applied = det.meta["raw"]["applied"]
    assert "manipulation/copymove" in applied and "manipulation/jpeg-dq" not in applied
    assert "not a JPEG" in det.meta["raw"]["not_applicable"]["manipulation/jpeg-dq"]
    assert set(det.categories) == {name.split("/")[1] for name in applied}
    # the strongest evidence decides: the copy-move component's detection carries through
    assert det.categories["copymove"] > 0.5 and det.score >= 0.5
    assert det.heatmap[mask].mean() > det.heatmap[~mask].mean() + 0.1


def test_fusion_on_a_jpeg_adds_the_jpeg_methods(fusion):
    img, _ = _copy_moved()
    det = fusion.detect(load_image(encode_image(img, ".jpg", quality=90)))
    assert "manipulation/jpeg-grid" in det.meta["raw"]["applied"]  # a JPEG container now
    # compressed once: no double quantisation to compare, and the fusion says so
    assert "no trace of an earlier" in det.meta["raw"]["not_applicable"]["manipulation/jpeg-dq"]
    assert det.meta["calibrated"] is True


def test_fingerprint_covers_the_components(fusion):
    fp = fusion.fingerprint()
    assert [c["model"] for c in fp["components"]] == [c.model_id for c in fusion.components]
    assert all(c["weights"].startswith("calib-v1:") for c in fp["components"])
