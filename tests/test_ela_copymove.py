"""Error-level analysis (`manipulation/ela`) and SIFT copy-move detection (`manipulation/copymove`).

The photos come from scikit-image's `example` split (never used by the calibrations)."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

import artifacts
import artifacts.detectors.manipulation.copymove as cm  # registers manipulation/copymove
import artifacts.detectors.manipulation.ela as ela  # registers manipulation/ela
from artifacts.io import ImageData, load_image
from artifacts.metrics import roc_auc


def _jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _photo(name: str) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)())


# ------------------------------------------------------------------------------------ ELA


@pytest.fixture(scope="module")
def ela_det():
    return artifacts.create("ela", device="cpu")


def _lossless_paste(host_name="astronaut", donor_name="coffee", q_host=75, q_final=90):
    """A JPEG (q_host) photo with a 128x160 block pasted from a lossless photo, saved again as
    JPEG (q_final) and decoded through the toolkit's reader. The pasted block was compressed once,
    the rest twice (first at q_host), so the block's error level is higher."""
    host = load_image(_jpeg(_photo(host_name), q_host)).pixels
    donor = _photo(donor_name)
    h, w = host.shape[:2]
    y, x = h // 3, w // 3
    comp = host.copy()
    comp[y : y + 128, x : x + 160] = donor[100:228, 100:260]
    mask = np.zeros((h, w), bool)
    mask[y : y + 128, x : x + 160] = True
    return load_image(_jpeg(comp, q_final)), load_image(_jpeg(host, q_final)), mask


@pytest.mark.parametrize("host,donor", [("astronaut", "coffee"), ("coffee", "chelsea")])
def test_ela_finds_a_region_pasted_from_a_lossless_source(ela_det, host, donor):
    tampered, authentic, mask = _lossless_paste(host, donor)
    assert tampered.meta["format"] == "JPEG"
    raw = ela_det.raw(tampered)
    inside, outside = raw.map[mask].mean(), raw.map[~mask].mean()
    assert inside > outside + 1.0, (inside, outside)  # robust z units
    assert roc_auc(raw.map.ravel()[::5], mask.ravel()[::5]) > 0.9
    det = ela_det.detect(tampered.pixels)
    assert det.heatmap.shape == mask.shape and det.meta["calibrated"] is True
    assert det.heatmap[mask].mean() > det.heatmap[~mask].mean()
    # the same photo without the paste, through the same two saves, has a lower image statistic
    assert ela_det.raw(authentic).stat < raw.stat - 0.5


def test_ela_sixteen_bit_equals_eight_bit(ela_det):
    tampered, _, _ = _lossless_paste()
    d8 = ela_det.detect(tampered.pixels)
    d16 = ela_det.detect(tampered.pixels.astype(np.uint16) * 257)
    assert np.array_equal(d8.heatmap, d16.heatmap) and d8.score == d16.score
    assert "16 -> 8" in d16.meta["preprocessing"]["bit_depth"]


def test_ela_tiled_equals_untiled():
    """Tiles of 112 px (< half the 512 px image; origins on the 16 px MCU grid) give the same map
    up to float rounding of the block sums (tolerance 1e-4 in z units)."""
    tampered, _, _ = _lossless_paste()
    whole = ela.ElaDetector(ela.ElaConfig(tile=4096), None, "cpu").raw(tampered)
    tiled = ela.ElaDetector(ela.ElaConfig(tile=112), None, "cpu").raw(tampered)
    assert np.abs(whole.map - tiled.map).max() < 1e-4 and abs(whole.stat - tiled.stat) < 1e-4


def test_ela_not_applicable_when_too_small_or_clipped(ela_det):
    small = ela_det.detect(np.zeros((40, 300, 3), np.uint8) + 128)
    assert small.status.value == "not_applicable" and "too small" in small.reason
    white = ela_det.detect(np.full((200, 200, 3), 255, np.uint8))
    assert white.status.value == "not_applicable" and "unclipped" in white.reason


# ------------------------------------------------------------------------------- copy-move


@pytest.fixture(scope="module")
def cm_det():
    return artifacts.create("copymove", device="cpu")


def _paste(img, patch, y, x):
    out = img.copy()
    out[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    mask = np.zeros(img.shape[:2], bool)
    mask[y : y + patch.shape[0], x : x + patch.shape[1]] = True
    return out, mask


def _copy_translated():
    img = _photo("astronaut")  # 512 x 512; the patch holds the flag and part of the suit
    return _paste(img, img[40:136, 200:296].copy(), 330, 380)


def _copy_rotated_scaled(angle=12.0, scale=1.1):
    img = _photo("astronaut")
    src = img[20:160, 180:320]  # 140 px; rotate/scale about its centre and keep the middle 100 px
    M = cv2.getRotationMatrix2D((70.0, 70.0), angle, scale)
    patch = cv2.warpAffine(np.ascontiguousarray(src), M, (140, 140), flags=cv2.INTER_LINEAR)[20:120, 20:120]
    return _paste(img, patch, 360, 360)


def _copy_mirrored():
    img = _photo("astronaut")
    return _paste(img, img[40:136, 200:296][:, ::-1].copy(), 330, 380)


@pytest.mark.parametrize("make", [_copy_translated, _copy_rotated_scaled, _copy_mirrored],
                         ids=["translated", "rotated-scaled", "mirrored"])
def test_copymove_finds_the_copy(cm_det, make):
    img, target = make()
    stored = load_image(_jpeg(img, 90))  # through a JPEG file, as the calibration sees images
    det = cm_det.detect(stored.pixels)
    assert det.score > 0.8, det.meta["raw"]
    assert (det.mask & target).sum() / target.sum() > 0.5
    transforms = det.meta["raw"]["transforms"]
    assert transforms and transforms[0]["inliers"] >= 10
    if make is _copy_rotated_scaled:
        assert abs(abs(transforms[0]["angle_deg"]) - 12.0) < 2.0
        assert abs(transforms[0]["scale"] - 1.1) < 0.05 or abs(transforms[0]["scale"] - 1 / 1.1) < 0.05
    assert transforms[0]["mirrored"] == (make is _copy_mirrored)


def test_copymove_authentic_photo_scores_low(cm_det):
    copied, _ = _copy_translated()
    scores = {}
    for name in ("astronaut", "chelsea", "coffee"):
        det = cm_det.detect(load_image(_jpeg(_photo(name), 90)).pixels)
        assert det.meta["raw"]["verified_inliers"] <= 6, (name, det.meta["raw"])
        scores[name] = det.score
    assert max(scores.values()) < cm_det.detect(copied).score - 0.3, scores
    assert scores["astronaut"] < 0.5


def test_copymove_flat_image_is_not_applicable(cm_det):
    det = cm_det.detect(np.full((256, 256, 3), 120, np.uint8))
    assert det.status.value == "not_applicable" and "too few SIFT keypoints" in det.reason


def test_mirror_descriptors_equal_sift_on_the_flipped_image():
    grey = cm.luminance8(_photo("astronaut"))
    cfg = cm.CopyMoveConfig()
    pts, desc = cm.sift(grey, cfg)
    fpts, fdesc = cm.sift(np.ascontiguousarray(grey[:, ::-1]), cfg)
    fpts[:, 0] = grey.shape[1] - 1 - fpts[:, 0]
    from scipy.spatial import cKDTree

    dist, j = cKDTree(fpts).query(pts)
    same = dist < 0.5  # the same keypoint found again in the flipped image
    assert same.sum() > 200
    err = np.linalg.norm(cm.mirror_descriptors(desc[same]) - fdesc[j[same]], axis=1)
    unrelated = np.linalg.norm(desc[:200] - desc[200:400], axis=1)
    # most keypoints give the same descriptor (a few differ: another orientation was picked)
    assert np.median(err) < 0.05 * np.median(unrelated)


def test_copymove_downscales_large_images_and_maps_back():
    img, target = _copy_translated()
    big = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    det = cm.CopyMoveDetector(cm.CopyMoveConfig(max_pixels=600_000), None, "cpu")
    out = det.raw(ImageData(big, {}))
    side = round(1024 * np.sqrt(600_000 / 1024**2))
    assert out.map.shape == (1024, 1024) and out.preprocessing["resize"]["to"] == [side, side]
    big_target = cv2.resize(target.astype(np.uint8), (1024, 1024), interpolation=cv2.INTER_NEAREST) > 0
    assert (out.map[big_target] > 0.5).mean() > 0.5
