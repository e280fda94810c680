"""Tests for the reconstruction-artifact generator (artifacts.datasets.view_artifacts)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from artifacts.datasets import view_artifacts as va
from tests.conftest import shared

SEVERITIES = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo that ships with scikit-image, downscaled to keep the tests fast."""
    return cv2.resize(skimage.data.astronaut(), (256, 224), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def rgba() -> np.ndarray:
    """An RGBA object on a transparent background (alpha: opaque disc, soft rim, clear corners)."""
    img = cv2.resize(skimage.data.chelsea(), (240, 160), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[:160, :240]
    d = np.hypot((yy - 80) / 70.0, (xx - 120) / 100.0)
    alpha = np.clip((1.1 - d) / 0.2, 0, 1) * 255
    return np.dstack([img, np.rint(alpha).astype(np.uint8)])


def _delta(dv: va.DegradedView) -> np.ndarray:
    return np.abs(dv.image.astype(np.int16) - dv.clean.astype(np.int16)).max(axis=2)


# ----------------------------------------------------------------- determinism


@pytest.mark.parametrize("kind", va.KINDS)
def test_same_seed_same_arrays(photo: np.ndarray, kind: str) -> None:
    a, b = va.degrade(photo, 11, kind, 0.7), va.degrade(photo, 11, kind, 0.7)
    for name in ("image", "mask", "gt_map", "region", "clean"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.meta == b.meta and a.kind == kind and a.severity == 0.7
    json.dumps(a.meta)  # JSON-serialisable
    c = va.degrade(photo, 12, kind, 0.7)
    assert not np.array_equal(a.image, c.image)


def test_defaults_drawn_from_config(photo: np.ndarray) -> None:
    cfg = va.ViewDegradeConfig(kinds=("blur", "noise"), severity=(0.4, 0.5))
    seen = set()
    for seed in range(12):
        dv = va.degrade(photo, seed, config=cfg)
        assert dv.kind in cfg.kinds and 0.4 <= dv.severity <= 0.5
        seen.add(dv.kind)
        # the same seed with the drawn kind/severity given explicitly is the same view
        again = va.degrade(photo, seed, dv.kind, dv.severity, cfg)
        np.testing.assert_array_equal(again.image, dv.image)
    assert seen == {"blur", "noise"}
    fixed = va.ViewDegradeConfig(severity=0.35)
    assert va.degrade(photo, 3, "blur", config=fixed).severity == 0.35
    assert va.DEFAULT_CONFIG.kinds == va.KINDS


# -------------------------------------------------------------------- severity


@pytest.mark.parametrize("kind", va.KINDS)
def test_severity_zero_is_identity(photo: np.ndarray, kind: str) -> None:
    dv = va.degrade(photo, 5, kind, 0.0)
    np.testing.assert_array_equal(dv.image, photo)
    assert not dv.mask.any() and not dv.region.any() and not dv.gt_map.any()
    assert dv.gt_map.dtype == np.float32 and dv.mask.dtype == bool


@pytest.mark.parametrize("kind", va.KINDS)
def test_change_grows_with_severity(photo: np.ndarray, kind: str) -> None:
    for seed in (0, 1):
        views = [va.degrade(photo, seed, kind, s) for s in SEVERITIES]
        means = [float(v.gt_map.mean()) for v in views]
        assert all(lo < hi for lo, hi in zip(means, means[1:])), (kind, seed, means)
        areas = [int(v.region.sum()) for v in views]
        assert areas == sorted(areas)
        for small, big in zip(views[1:], views[2:]):  # same seed: regions are nested
            assert not (small.region & ~big.region).any()
        assert views[-1].mask.mean() > 0.005, (kind, seed)  # severity 1 is visible


# ------------------------------------------------------------------ ground truth


@pytest.mark.parametrize("kind", va.KINDS)
def test_ground_truth_is_exact(photo: np.ndarray, kind: str) -> None:
    for seed in (2, 3):
        dv = va.degrade(photo, seed, kind, 0.8)
        np.testing.assert_array_equal(dv.image[~dv.region], photo[~dv.region])  # exactly unchanged
        delta = _delta(dv)
        np.testing.assert_array_equal(dv.mask, delta > va.DEFAULT_CONFIG.mask_threshold)
        np.testing.assert_array_equal(dv.gt_map, delta.astype(np.float32) / 255)
        assert not (dv.mask & ~dv.region).any()
        assert 0.0 <= dv.gt_map.min() and dv.gt_map.max() <= 1.0
        # clean and degraded parts coexist
        assert 0.0 < dv.region.mean() < 0.8
        assert dv.meta["mask_area"] == round(float(dv.mask.mean()), 4)


def test_region_area_follows_config(photo: np.ndarray) -> None:
    cfg = va.ViewDegradeConfig(area=(0.1, 0.1), n_regions=(1, 1))
    full = [va.degrade(photo, seed, "noise", 1.0, cfg).region.mean() for seed in range(12)]
    assert 0.07 < float(np.median(full)) < 0.13  # blobs may be cut by the border
    half = [va.degrade(photo, seed, "noise", 0.5, cfg).region.mean() for seed in range(12)]
    assert float(np.median(half)) < float(np.median(full))  # area x (0.3 + 0.7 s)


def test_mask_threshold_configurable(photo: np.ndarray) -> None:
    low = va.degrade(photo, 4, "cloudiness", 0.4)
    high = va.degrade(photo, 4, "cloudiness", 0.4, va.ViewDegradeConfig(mask_threshold=12))
    np.testing.assert_array_equal(low.image, high.image)
    np.testing.assert_array_equal(high.mask, _delta(high) > 12)
    assert high.mask.sum() < low.mask.sum() and not (high.mask & ~low.mask).any()


def test_hole_fill_colours(photo: np.ndarray, rgba: np.ndarray) -> None:
    white = va.degrade(photo, 6, "holes", 1.0, va.ViewDegradeConfig(hole_fills=("white",)))
    core = white.region & (white.image.min(axis=2) > 0)
    assert white.meta["params"]["fill"] == "white"
    assert np.median(white.image[white.region].min(axis=1)) > 200 and core.any()
    black_bg = va.ViewDegradeConfig(hole_fills=("background",), background="black")
    dv = va.degrade(rgba, 6, "holes", 1.0, black_bg)
    assert dv.meta["params"]["colour"] == [0.0, 0.0, 0.0]
    assert np.median(dv.image[dv.region].max(axis=1)) < 60


# -------------------------------------------------------------------------- RGBA


def test_rgba_composited_before_degrading(rgba: np.ndarray) -> None:
    dv = va.degrade(rgba, 1, "noise", 0.0)
    assert dv.image.shape == rgba.shape[:2] + (3,) and dv.meta["composited"]
    assert dv.meta["background"] == [255, 255, 255]
    clear, opaque = rgba[..., 3] == 0, rgba[..., 3] == 255
    assert (dv.image[clear] == 255).all()
    np.testing.assert_array_equal(dv.image[opaque], rgba[..., :3][opaque])
    a = rgba[..., 3:4] / 255.0
    expected = np.rint(rgba[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
    assert np.abs(dv.clean.astype(int) - expected).max() <= 1
    black = va.degrade(rgba, 1, "noise", 0.0, va.ViewDegradeConfig(background=(0, 0, 0)))
    assert (black.image[clear] == 0).all()
    strong = va.degrade(rgba, 1, "floaters", 1.0)
    np.testing.assert_array_equal(strong.clean, dv.clean)  # change is measured against the composite
    np.testing.assert_array_equal(strong.image[~strong.region], dv.clean[~strong.region])


def test_grey_input_repeated(photo: np.ndarray) -> None:
    grey = photo[..., 1].copy()
    dv = va.degrade(grey, 0, "blur", 0.0)
    np.testing.assert_array_equal(dv.image, np.dstack([grey] * 3))


# -------------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs", [
    {"kinds": ()}, {"kinds": ("blur", "smudge")}, {"kinds": ("blur", "blur")},
    {"severity": 1.5}, {"severity": (0.6, 0.2)}, {"severity": (-0.1, 0.5)}, {"severity": "high"},
    {"area": (0.0, 0.2)}, {"area": (0.3, 0.1)}, {"area": (0.1, 0.9)},
    {"n_regions": (0, 2)}, {"n_regions": (3, 2)}, {"n_regions": (1.5, 2)},
    {"background": "grey"}, {"background": (0, 0, 300)}, {"background": (0, 0)},
    {"hole_fills": ()}, {"hole_fills": ("purple",)},
    {"mask_threshold": -1}, {"mask_threshold": 2.5}, {"mask_threshold": 255},
])
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        va.ViewDegradeConfig(**kwargs)


def test_config_frozen_and_normalised() -> None:
    cfg = va.ViewDegradeConfig(kinds=["noise", "blur"], severity=[0.1, 0.3], background=[10, 20, 30])
    assert cfg.kinds == ("noise", "blur") and cfg.severity == (0.1, 0.3)
    assert cfg.background_rgb == (10, 20, 30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.kinds = ("blur",)  # type: ignore[misc]


def test_degrade_argument_errors(photo: np.ndarray) -> None:
    for call in (lambda: va.degrade(photo, 0, "smudge"),
                 lambda: va.degrade(photo, 0, "blur", 1.2),
                 lambda: va.degrade(photo, 0, "blur", -0.1),
                 lambda: va.degrade(photo, -1, "blur"),
                 lambda: va.degrade(photo.astype(np.float32), 0, "blur"),
                 lambda: va.degrade(photo[:4, :4], 0, "blur"),
                 lambda: va.degrade(np.zeros((20, 20, 2), np.uint8), 0, "blur")):
        with pytest.raises(ValueError):
            call()


def test_select_kinds_for_held_out_evaluation() -> None:
    train = va.select_kinds(exclude=["ghosting", "noise"])
    assert "ghosting" not in train and "noise" not in train and len(train) == len(va.KINDS) - 2
    assert va.select_kinds(["noise", "blur"]) == ("blur", "noise")  # KINDS order
    with pytest.raises(ValueError):
        va.select_kinds(["smudge"])
    with pytest.raises(ValueError):
        va.select_kinds(["blur"], exclude=["blur"])


# ------------------------------------------------------------------------ writer


@pytest.fixture(scope="module")
def view_files(tmp_path_factory, photo: np.ndarray, rgba: np.ndarray) -> list[Path]:
    root = tmp_path_factory.mktemp("views")
    Image.fromarray(photo).save(root / "astro.png")
    Image.fromarray(rgba).save(root / "cat.png")  # RGBA, like NeRF-synthetic renders
    return [root / "astro.png", root / "cat.png"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_write_view_set(tmp_path: Path, view_files: list[Path]) -> None:
    kinds = ("blur", "holes", "floaters")
    manifest = va.write_view_set(view_files, tmp_path / "a", seed=3, severities=(0.0, 0.5, 1.0), kinds=kinds)
    assert len(manifest) == 2 * 3 * 3
    on_disk = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    names = {e["name"] for e in manifest}
    assert "astro_blur_s050" in names and "cat_floaters_s100" in names and "cat_holes_s000" in names
    for e in manifest:
        assert set(e) >= {"name", "view", "clean", "kind", "severity", "image", "mask", "map", "meta", "seed"}
        img = np.asarray(Image.open(tmp_path / "a" / e["image"]))
        clean = np.asarray(Image.open(tmp_path / "a" / e["clean"]))
        mask = np.asarray(Image.open(tmp_path / "a" / e["mask"])) > 127
        gt = np.asarray(Image.open(tmp_path / "a" / e["map"]))
        delta = np.abs(img.astype(np.int16) - clean.astype(np.int16)).max(axis=2)
        np.testing.assert_array_equal(mask, delta > 2)
        np.testing.assert_array_equal(gt, delta)
        assert img.shape == clean.shape and img.ndim == 3
        assert e["meta"]["composited"] == e["view"].endswith("cat.png")
        if e["severity"] == 0.0:
            assert not mask.any()
    # the same arguments write byte-identical files
    va.write_view_set(view_files, tmp_path / "b", seed=3, severities=(0.0, 0.5, 1.0), kinds=kinds)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    # holding kinds out leaves the other kinds' files unchanged; another seed changes them
    only = va.write_view_set(view_files[:1], tmp_path / "c", seed=3, severities=(1.0,), kinds=["blur"])
    assert (tmp_path / "c" / only[0]["image"]).read_bytes() == (tmp_path / "a" / only[0]["image"]).read_bytes()
    other = va.write_view_set(view_files[:1], tmp_path / "d", seed=4, severities=(1.0,), kinds=["blur"])
    assert (tmp_path / "d" / other[0]["image"]).read_bytes() != (tmp_path / "a" / only[0]["image"]).read_bytes()


def test_write_view_set_max_side_and_errors(tmp_path: Path, view_files: list[Path]) -> None:
    manifest = va.write_view_set(view_files[:1], tmp_path, seed=0, severities=(0.6,), kinds=["noise"],
                                 max_side=100)
    img = np.asarray(Image.open(tmp_path / manifest[0]["image"]))
    assert max(img.shape[:2]) == 100
    for kwargs in ({"severities": (0.5, 0.501)}, {"severities": (1.5,)}, {"kinds": ["smudge"]},
                   {"max_side": 4}):
        with pytest.raises(ValueError):
            va.write_view_set(view_files, tmp_path / "x", seed=0, **kwargs)
    with pytest.raises(ValueError):
        va.write_view_set([view_files[0], view_files[0]], tmp_path / "y", seed=0)


# ----------------------------------------------------------------------- real views


def test_real_fern_view_every_kind() -> None:
    folder = shared("views", "fern", "images_8")
    img = np.asarray(Image.open(sorted(folder.glob("*.png"))[0]).convert("RGB"))
    assert img.shape == (378, 504, 3)
    va.degrade(img, 0, "blur", 0.5)  # warm-up (OpenCV)
    for kind in va.KINDS:
        t = time.perf_counter()
        dv = va.degrade(img, 1, kind, 0.6)
        elapsed = time.perf_counter() - t
        assert elapsed < 0.5, (kind, elapsed)  # ~10-40 ms unloaded; loose bound for a busy CI box
        assert dv.mask.any() and (dv.image[~dv.region] == img[~dv.region]).all()


def test_real_lego_rgba_render() -> None:
    folder = shared("views", "lego", "train")
    rgba = np.asarray(Image.open(folder / "r_0.png"))
    assert rgba.shape[2] == 4
    rgba = cv2.resize(rgba, (200, 200), interpolation=cv2.INTER_AREA)
    dv = va.degrade(rgba, 2, "floaters", 1.0)
    assert dv.meta["composited"] and (dv.clean[0, 0] == 255).all()
    assert dv.mask.any()
