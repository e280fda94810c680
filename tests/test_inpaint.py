"""Inpainting: every method fills a hole far better than leaving it black, never touches pixels
outside the mask, and the exemplar method reproduces a periodic texture that diffusion smears."""
from __future__ import annotations

import numpy as np
import pytest

from artifacts.restoration.inpaint import METHODS, inpaint


def rmse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64))[mask] ** 2)))


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    import cv2
    from skimage import data

    img = data.chelsea()  # 300 x 451 RGB, shipped with scikit-image
    return cv2.resize(img, (128, 85), interpolation=cv2.INTER_AREA)


def hole(shape, ys=slice(30, 50), xs=slice(60, 84)) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    mask[ys, xs] = True
    return mask


def checkerboard(n: int = 128, period: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    board = (((yy // (period // 2)) + (xx // (period // 2))) % 2 * 200 + 30).astype(np.uint8)
    return np.stack([board, np.roll(board, 2, axis=1), 255 - board], axis=-1)


@pytest.mark.parametrize("method", METHODS)
def test_fills_hole_and_keeps_the_rest(cat, method):
    mask = hole(cat.shape)
    holed = cat.copy()
    holed[mask] = 0
    out = inpaint(holed, mask, method)
    assert out.shape == cat.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], holed[~mask])
    black = rmse(holed, cat, mask)
    err = rmse(out, cat, mask)
    assert err < 0.45 * black, (method, err, black)


@pytest.mark.parametrize("method", METHODS)
def test_grey_uint16_and_border_hole(cat, method):
    grey = (cat.mean(axis=2) * 257).astype(np.uint16)
    mask = hole(grey.shape, ys=slice(0, 14), xs=slice(100, 128))  # touches two image borders
    holed = grey.copy()
    holed[mask] = 0
    out = inpaint(holed, mask, method)
    assert out.shape == grey.shape and out.dtype == np.uint16
    assert np.array_equal(out[~mask], holed[~mask])
    assert rmse(out, grey, mask) < 0.5 * rmse(holed, grey, mask)


def test_exemplar_reconstructs_periodic_texture():
    tex = checkerboard()
    mask = hole(tex.shape, ys=slice(44, 76), xs=slice(48, 80))
    holed = tex.copy()
    holed[mask] = 0
    exemplar = rmse(inpaint(holed, mask, "exemplar", seed=0), tex, mask)
    telea = rmse(inpaint(holed, mask, "telea"), tex, mask)
    assert telea > 80  # diffusion smears the pattern into grey
    assert exemplar < 0.2 * telea, (exemplar, telea)


def test_exemplar_is_deterministic_for_a_seed(cat):
    mask = hole(cat.shape)
    a = inpaint(cat, mask, "exemplar", seed=3)
    b = inpaint(cat, mask, "exemplar", seed=3)
    assert np.array_equal(a, b)


def test_several_components_and_mask_forms(cat):
    mask = hole(cat.shape) | hole(cat.shape, ys=slice(70, 78), xs=slice(5, 40))
    for method in ("biharmonic", "exemplar"):
        out = inpaint(cat, mask, method)
        assert np.array_equal(out[~mask], cat[~mask])
    out_bool = inpaint(cat, mask, "telea")
    assert np.array_equal(inpaint(cat, mask.astype(np.uint8) * 255, "telea"), out_bool)
    assert np.array_equal(inpaint(cat, mask.astype(int), "telea"), out_bool)


@pytest.mark.parametrize("method", METHODS)
def test_empty_mask_returns_a_copy(cat, method):
    out = inpaint(cat, np.zeros(cat.shape[:2], bool), method)
    assert np.array_equal(out, cat) and out is not cat


def test_errors(cat):
    mask = hole(cat.shape)
    with pytest.raises(ValueError, match="must equal the image"):
        inpaint(cat, mask[:-1], "telea")
    with pytest.raises(ValueError, match="2-D"):
        inpaint(cat, np.stack([mask] * 3, -1), "telea")
    with pytest.raises(ValueError, match="boolean"):
        inpaint(cat, mask * 0.5, "telea")
    with pytest.raises(ValueError, match="uint8 or uint16"):
        inpaint(cat.astype(np.float32), mask, "telea")
    with pytest.raises(ValueError, match="telea, ns, biharmonic, exemplar"):
        inpaint(cat, mask, "patchmatch")
    with pytest.raises(ValueError, match="whole image"):
        inpaint(cat, np.ones(cat.shape[:2], bool), "ns")
    with pytest.raises(ValueError, match="odd"):
        inpaint(cat, mask, "exemplar", patch=6)
