"""Reference-guided repair of novel views (``artifacts.restoration.refrepair``) on synthetic scenes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from artifacts.metrics.quality import psnr
from artifacts.restoration.refrepair import RefRepairConfig, RepairResult, repair
from tests.conftest import shared


def _scene(h: int = 180, w: int = 240, seed: int = 0) -> np.ndarray:
    """A textured view: smooth colour ramps, blobs and some sharp structure (SIFT needs corners)."""
    import cv2

    rng = np.random.default_rng(seed)
    big = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    img = cv2.resize(big, (w + 16, h + 16), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.uniform(-60, 60, (h + 16, w + 16, 3)).astype(np.float32), (0, 0), 1.2)
    img = img + fine
    for _ in range(25):
        x, y = int(rng.integers(0, w + 16)), int(rng.integers(0, h + 16))
        col = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(4, 20)), y + int(rng.integers(4, 20))), col, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _pair():
    """A clean view, a reference that shows the same content shifted by a few pixels."""
    full = _scene()
    view = full[8:8 + 164, 8:8 + 224].copy()
    ref = full[3:3 + 164, 12:12 + 224].copy()   # the camera moved: content shifted by (-4, +5)
    return view, ref


def _damage(view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:view.shape[0], :view.shape[1]]
    blob = (yy - 80) ** 2 / 22 ** 2 + (xx - 110) ** 2 / 30 ** 2 < 1
    broken = view.copy()
    broken[blob] = (255, 255, 255)   # a hole showing the background
    amap = np.zeros(view.shape[:2], np.float32)
    amap[blob] = 0.8
    return broken, amap


def test_shifted_reference_repairs_a_hole():
    clean, ref = _pair()
    broken, amap = _damage(clean)
    res = repair(broken, [ref], amap)
    assert isinstance(res, RepairResult)
    assert res.image.shape == clean.shape and res.image.dtype == np.uint8
    assert res.mask.dtype == bool and res.weight.dtype == np.float32
    before, after = psnr(clean, broken), psnr(clean, res.image)
    assert after > before + 10, (before, after)
    assert res.meta["refs_used"] == [0]
    json.dumps(res.meta)   # JSON-serialisable


def test_pixels_outside_the_mask_are_copied_exactly():
    clean, ref = _pair()
    broken, amap = _damage(clean)
    res = repair(broken, [ref], amap)
    assert np.array_equal(res.image[~res.mask], broken[~res.mask])
    assert np.array_equal(res.mask, res.weight > 0)
    assert (res.weight >= 0).all() and (res.weight <= 1).all()


def test_empty_map_gives_the_view_back():
    clean, ref = _pair()
    res = repair(clean, [ref], np.zeros(clean.shape[:2], np.float32))
    assert np.array_equal(res.image, clean)
    assert not res.mask.any() and not res.weight.any()


def test_no_usable_reference_keeps_the_view_or_inpaints_on_request():
    clean, _ = _pair()
    broken, amap = _damage(clean)
    flat = np.full((50, 70, 3), 128, np.uint8)   # nothing to match
    res = repair(broken, [flat], amap)
    assert res.meta["refs_used"] == []
    assert np.array_equal(res.image, broken)   # by default: nothing trusted, nothing touched
    res = repair(broken, [flat], amap, RefRepairConfig(inpaint_areas=True))
    assert res.meta["regions"]["by_inpainting"] == 1
    assert psnr(clean, res.image) > psnr(clean, broken)


def test_references_may_differ_in_size():
    import cv2

    clean, ref = _pair()
    broken, amap = _damage(clean)
    big = cv2.resize(ref, (ref.shape[1] * 3 // 2, ref.shape[0] * 3 // 2), interpolation=cv2.INTER_CUBIC)
    res = repair(broken, [big], amap)
    assert psnr(clean, res.image) > psnr(clean, broken) + 8


def test_map_of_the_wrong_size_is_refused():
    clean, ref = _pair()
    with pytest.raises(ValueError, match="artifact_map has shape"):
        repair(clean, [ref], np.zeros((10, 10), np.float32))


def test_bad_view_is_refused():
    _, ref = _pair()
    with pytest.raises(ValueError, match="H,W,3 uint8"):
        repair(np.zeros((20, 20), np.uint8), [ref], np.zeros((20, 20), np.float32))


def test_config_threshold_is_used():
    clean, ref = _pair()
    broken, amap = _damage(clean)
    res = repair(broken, [ref], amap, RefRepairConfig(threshold=0.9))
    assert np.array_equal(res.image, broken)
    assert res.meta["threshold"] == 0.9


def test_false_alarm_on_a_clean_view_is_left_alone():
    # the map flags an area that is fine: the reference agrees with the view inside as well as on
    # the ring around it, so the area is kept exactly (no harm from a wrong map)
    clean, ref = _pair()
    _, amap = _damage(clean)
    res = repair(clean, [ref], amap)
    assert np.array_equal(res.image, clean)
    assert res.meta["regions"]["areas"] == 1 and res.meta["regions"]["by_reference"] == 0


def test_misfitting_reference_is_not_used():
    # a reference whose content does not fit the ring around the area: the area is kept, even
    # though the view inside departs from the (wrong) content
    clean, ref = _pair()
    broken, amap = _damage(clean)
    noisy = np.clip(ref + np.random.default_rng(0).normal(0, 30, ref.shape), 0, 255).astype(np.uint8)
    res = repair(broken, [noisy], amap)
    assert res.meta["refs_used"] == [0] and res.meta["trust_mean"] > 0.9   # matched and trusted ...
    assert res.meta["regions"]["by_reference"] == 0                        # ... but misfits its ring
    assert np.array_equal(res.image, broken)


def test_no_reference_at_all_does_not_crash():
    clean, _ = _pair()
    broken, amap = _damage(clean)
    other = _scene(seed=5)[:164, :224]
    res = repair(broken, [other], amap, RefRepairConfig(min_inliers=0))
    assert res.image.shape == broken.shape


def test_per_area_decision_can_be_switched_off():
    clean, ref = _pair()
    _, amap = _damage(clean)
    res = repair(clean, [ref], amap, RefRepairConfig(regions=False))
    assert res.mask.any() and "regions" not in res.meta


def test_real_view_keeps_good_pixels(tmp_path):
    from artifacts.eval.views import ViewsAdapter
    from artifacts.io import load_image

    samples = ViewsAdapter(split="tune", kinds=["holes"]).read(str(shared("views", "lego")), work=tmp_path)
    s = next(x for x in samples if x.severity == 1.0)
    view = load_image(s.image).pixels
    refs = [load_image(r).pixels for r in s.refs[:4]]
    gt = load_image(s.mask).pixels[..., 0] > 127
    amap = gt.astype(np.float32)   # a perfect map stands in for the metric here (speed)
    res = repair(view, refs, amap)
    assert np.array_equal(res.image[~res.mask], view[~res.mask])
    clean = load_image(s.clean).pixels
    assert psnr(clean, res.image) >= psnr(clean, view) - 0.1   # no harm
