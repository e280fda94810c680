"""jpeg-dq and jpeg-grid on real JPEG files built from scikit-image photos."""
import io
import struct

import numpy as np
import pytest
from PIL import Image

import artifacts
from artifacts.detectors.manipulation import jpeg_blocks, jpeg_dq, jpeg_grid  # registers jpeg-dq / jpeg-grid
from artifacts.io import load_image, orient_array
from artifacts.metrics import roc_auc

SIZE, AT = 128, (192, 160)  # pasted square: side and top-left corner in the host


def _jpeg(arr: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _decoded(data: bytes, grey: bool) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L" if grey else "RGB")).copy()


def _photos(grey: bool):
    import cv2
    from skimage import data

    host, donor = data.astronaut(), data.coffee()
    if grey:
        host, donor = (cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) for a in (host, donor))
    return host, donor


def spliced(q1=70, q2=90, donor_q=None, shift=(3, 5), grey=False, photo_q=None):
    """A host JPEG-compressed at ``q1`` (None: never compressed) with a 128 px square pasted from
    another photo (compressed at ``donor_q`` first when given; its crop starts at ``40 + shift``,
    so its own grid lands shifted on the host's), saved again at ``q2``: (file bytes, mask)."""
    host, donor = _photos(grey)
    if q1 is not None:
        host = _decoded(_jpeg(host, q1), grey)
    if donor_q is not None:
        donor = _decoded(_jpeg(donor, donor_q), grey)
    y, x = AT
    dy, dx = 40 + shift[0], 40 + shift[1]
    out = host.copy()
    out[y : y + SIZE, x : x + SIZE] = donor[dy : dy + SIZE, dx : dx + SIZE]
    mask = np.zeros(host.shape[:2], bool)
    mask[y : y + SIZE, x : x + SIZE] = True
    return _jpeg(out, q2), mask


def with_orientation(data: bytes, orientation: int) -> bytes:
    """The same JPEG stream with an EXIF APP1 segment carrying ``orientation`` (pixels untouched)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    if not payload.startswith(b"Exif\x00\x00"):
        payload = b"Exif\x00\x00" + payload
    assert data[:2] == b"\xff\xd8"
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


@pytest.fixture(scope="module")
def dq():
    return artifacts.create("jpeg-dq", device="cpu")


@pytest.fixture(scope="module")
def grid():
    return artifacts.create("jpeg-grid", device="cpu")


def test_registered_and_calibrated(dq, grid):
    assert {"manipulation/jpeg-dq", "manipulation/jpeg-grid"} <= set(artifacts.list_models(pattern="*jpeg*"))
    for det in (dq, grid):
        assert det.calibrated and det.weight_id.startswith("calib-v1:")


@pytest.mark.parametrize("donor_q", [None, 75], ids=["uncompressed-donor", "grid-shifted-jpeg-donor"])
def test_dq_finds_the_pasted_region(dq, donor_q):
    data, mask = spliced(donor_q=donor_q)
    det = dq.detect(load_image(data))
    assert det.status.value == "ok" and det.heatmap.shape == mask.shape
    inside, outside = det.heatmap[mask].mean(), det.heatmap[~mask].mean()
    assert inside > outside + 0.5, (inside, outside)
    assert (det.mask & mask).sum() > 0.8 * mask.sum() and (det.mask & ~mask).sum() < 0.1 * (~mask).sum()
    # the primary steps it estimated are those of the first compression (quality 70)
    first = np.array(load_image(_jpeg(_photos(False)[0], 70)).meta["jpeg"]["qtables"]["0"]).reshape(8, 8)
    used = det.meta["raw"]["frequencies"]
    right = [f["q1"] == first[tuple(f["freq"])] for f in used]
    assert len(used) >= 8 and np.mean(right) >= 0.9, used


@pytest.mark.parametrize("q1,q2,auc", [(70, 90, 0.7), (60, 95, 0.85)])
def test_grid_finds_a_shifted_grid(grid, q1, q2, auc):
    data, mask = spliced(q1=q1, q2=q2, donor_q=60)
    image = load_image(data)
    det, raw = grid.detect(image), grid.raw(image)
    assert det.status.value == "ok" and det.heatmap.shape == mask.shape
    assert raw.diagnostics["grid_phase"] == [7, 7]  # the host's grid is the stored one
    inside, outside = raw.map[mask].mean(), raw.map[~mask].mean()
    assert inside > outside + 2.5, (inside, outside)  # z-score units
    assert roc_auc(det.heatmap.ravel()[::7], mask.ravel()[::7].astype(int)) > auc
    # the calibrated curve is flat (weak method on the calibration data), the order is kept
    assert det.heatmap[mask].mean() > det.heatmap[~mask].mean() + 0.05


def test_greyscale_jpeg(dq, grid):
    data, mask = spliced(grey=True, donor_q=60)
    image = load_image(data)
    assert image.is_grayscale and list(image.meta["jpeg"]["qtables"]) == ["0"]
    det = dq.detect(image)
    assert det.heatmap[mask].mean() > det.heatmap[~mask].mean() + 0.5
    raw = grid.raw(image)
    assert raw.map[mask].mean() > raw.map[~mask].mean() + 2.0


def test_exif_orientation_is_undone_and_redone(dq, grid):
    data, mask = spliced(donor_q=60)
    stored = load_image(data, apply_orientation=False)
    for orientation in (6, 3):
        shown = load_image(with_orientation(data, orientation))
        assert shown.meta["orientation_applied"] and shown.meta["exif_orientation"] == orientation
        for det in (dq, grid):
            a, b = det.detect(stored), det.detect(shown)
            assert b.meta["preprocessing"]["orientation_undone"] == orientation
            assert b.heatmap.shape == shown.pixels.shape[:2]
            np.testing.assert_allclose(b.heatmap, orient_array(a.heatmap, orientation), atol=1e-6)
            assert b.score == pytest.approx(a.score, abs=1e-9)


def test_png_and_plain_arrays_are_not_applicable(dq, grid, tmp_path):
    data, _ = spliced()
    pixels = load_image(data).pixels
    Image.fromarray(pixels).save(tmp_path / "copy.png")
    png = load_image(tmp_path / "copy.png")
    for det in (dq, grid):
        for item in (png, pixels):
            out = det.detect(item)
            assert out.status.value == "not_applicable" and out.score is None and out.heatmap is None
            assert "not a JPEG file" in out.reason
        assert "PNG" in det.detect(png).reason


def test_dq_needs_an_earlier_compression(dq):
    data, _ = spliced(q1=None, q2=90)  # host never compressed before the last save
    out = dq.detect(load_image(data))
    assert out.status.value == "not_applicable" and "no trace of an earlier aligned JPEG" in out.reason


def test_small_image_not_applicable(dq, grid):
    tiny = load_image(_jpeg(np.ascontiguousarray(_photos(False)[0][:24, :300]), 90))
    for det in (dq, grid):
        out = det.detect(tiny)
        assert out.status.value == "not_applicable" and "too small" in out.reason


def test_bands_equal_one_pass():
    """Bands of 64 rows (less than half the 512 px image) give the same maps (tolerance 1e-6)."""
    image = load_image(spliced(donor_q=60)[0])
    for det_cls, cfg_cls in ((jpeg_dq.JpegDQDetector, jpeg_dq.JpegDQConfig), (jpeg_grid.JpegGridDetector, jpeg_grid.JpegGridConfig)):
        whole = det_cls(cfg_cls(band=4096), None, "cpu").raw(image)
        banded = det_cls(cfg_cls(band=64), None, "cpu").raw(image)
        np.testing.assert_allclose(banded.map, whole.map, atol=1e-6)
        assert banded.stat == pytest.approx(whole.stat, abs=1e-6)


def test_zigzag_and_dct():
    assert jpeg_blocks.zigzag(6) == [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2)]
    assert np.allclose(jpeg_blocks.DCT8 @ jpeg_blocks.DCT8.T, np.eye(8), atol=1e-6)
    with pytest.raises(ValueError):
        jpeg_dq.JpegDQConfig(max_single_share=2.0)
    with pytest.raises(ValueError):
        jpeg_grid.JpegGridConfig(window=8)
