"""Tests for the bundled photo pool and the seeded manipulation generator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from artifacts.datasets import manipulation as gen
from artifacts.datasets import photos

CORE_PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left",
               "motorcycle_right", "camera", "coins", "moon", "brick", "grass",
               "gravel", "clock", "page"]
NO_POST = gen.GeneratorConfig(post_prob=0.0)
ALL_POST = gen.GeneratorConfig(post_prob=1.0)


@pytest.fixture(scope="module")
def pool() -> list[photos.Photo]:
    return photos.as_photos()


# ------------------------------------------------------------------------- photos


def test_photo_names_offline_and_valid() -> None:
    names = photos.photo_names()
    assert set(CORE_PHOTOS) <= set(names)
    for bad in ("hubble_deep_field", "retina", "immunohistochemistry", "logo"):
        assert bad not in names
    for name in names:
        img = photos.load_photo(name)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
        assert min(img.shape[:2]) >= 128
        if name in photos.GREY_PHOTOS:
            assert photos.is_grey(img)
        else:
            assert not photos.is_grey(img)


def test_load_photo_is_cached_and_read_only() -> None:
    a, b = photos.load_photo("astronaut"), photos.load_photo("astronaut")
    assert a is b
    with pytest.raises(ValueError):
        a[0, 0, 0] = 1
    with pytest.raises(KeyError):
        photos.load_photo("no_such_photo")


def test_load_folder_and_as_photos(tmp_path: Path) -> None:
    Image.fromarray(np.asarray(photos.load_photo("coffee"))).save(tmp_path / "b.png")
    Image.fromarray(np.asarray(photos.load_photo("camera"))[:, :, 0]).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    imgs = photos.load_folder(tmp_path)
    assert [im.shape for im in imgs] == [(512, 512, 3), (400, 600, 3)]
    named = photos.as_photos(tmp_path)
    assert [p.name for p in named] == ["a", "b"] and named[0].grey and not named[1].grey
    mixed = photos.as_photos(["chelsea", ("mine", imgs[1]), imgs[0]])
    assert [p.name for p in mixed] == ["chelsea", "mine", "photo002"]
    fam = photos.as_photos(["motorcycle_left", "motorcycle_right"])
    assert fam[0].family == fam[1].family


# ---------------------------------------------------------------------- generator


@pytest.mark.parametrize("kind", gen.KINDS)
def test_same_seed_same_sample(kind: str, pool: list) -> None:
    a, b = gen.generate(7, kind, photos=pool), gen.generate(7, kind, photos=pool)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.name == b.name and a.meta == b.meta
    c = gen.generate(8, kind, photos=pool)
    assert c.image.shape != a.image.shape or not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("kind", gen.KINDS)
def test_kind_masks_mark_the_changed_pixels(kind: str, pool: list) -> None:
    lo, hi = NO_POST.area
    for seed in range(6):
        s = gen.generate(seed, kind, NO_POST, pool)
        assert s.kind == kind and s.name.startswith(f"{kind}_s{seed:04d}_")
        assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] == 3
        assert s.mask.dtype == bool and s.mask.shape == s.image.shape[:2]
        assert s.original is not None and s.original.shape == s.image.shape
        assert lo <= s.mask.mean() <= hi
        labels, n = ndimage.label(s.mask, structure=np.ones((3, 3)))
        assert n >= 1 and np.bincount(labels.ravel())[1:].max() >= 0.9 * s.mask.sum()
        diff = np.abs(s.image.astype(int) - s.original.astype(int)).sum(2)
        inside, outside = diff[s.mask].mean(), diff[~s.mask].mean()
        assert inside > 3.0 and inside > 5 * outside, (s.name, inside, outside)
        if kind != "splice_blend":  # hard edits change nothing outside the mask
            assert outside == 0.0
        if kind.startswith("splice"):
            assert "-from-" in s.name and s.meta["donor"]["photo"] != s.meta["host"]["photo"]
        json.dumps(s.meta)


def test_post_processing_keeps_masks_sane(pool: list) -> None:
    lo, hi = ALL_POST.area
    seen = set()
    for seed in range(8):
        s = gen.generate(seed, config=ALL_POST, photos=pool)
        ops = [op["op"] for op in s.meta["post"]]
        assert sorted(ops) == sorted(gen.POST_OPS)
        seen.add(tuple(ops))
        assert s.mask.shape == s.image.shape[:2] and s.mask.dtype == bool
        assert min(s.image.shape[:2]) >= ALL_POST.min_side
        assert 0.8 * lo <= s.mask.mean() <= 1.2 * hi
        assert s.meta["area"] == pytest.approx(s.mask.mean(), abs=1e-4)
    assert len(seen) > 1  # the order is random


def test_authentic_shares_the_chain(pool: list) -> None:
    a = gen.authentic(3, ALL_POST, pool)
    assert a.kind == "authentic" and a.name.startswith("authentic_s0003_")
    assert a.mask.dtype == bool and a.mask.shape == a.image.shape[:2] and not a.mask.any()
    assert sorted(op["op"] for op in a.meta["post"]) == sorted(gen.POST_OPS)
    b = gen.authentic(3, ALL_POST, pool)
    assert np.array_equal(a.image, b.image)
    json.dumps(a.meta)


def test_single_photo_pool_cannot_splice() -> None:
    one = [("only", np.asarray(photos.load_photo("chelsea")))]
    kinds = {gen.generate(seed, photos=one).kind for seed in range(6)}
    assert kinds <= {"copymove", "removal"}
    with pytest.raises(ValueError):
        gen.generate(0, "splice", photos=one)
    with pytest.raises(ValueError):
        gen.generate(0, "nonsense")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        gen.GeneratorConfig(kinds=("splice", "warp"))
    with pytest.raises(ValueError):
        gen.GeneratorConfig(area=(0.3, 0.1))


def test_write_dataset_layout_and_determinism(tmp_path: Path, pool: list) -> None:
    cfg = gen.GeneratorConfig(max_side=320)
    m1 = gen.write_dataset(tmp_path / "a", n=5, seed=11, config=cfg, photos=pool, n_authentic=2)
    m2 = gen.write_dataset(tmp_path / "b", n=5, seed=11, config=cfg, photos=pool, n_authentic=2)
    assert m1 == m2
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 5 * 2 + 2 + 1
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()

    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(m1))
    assert [e["kind"] for e in manifest] == list(gen.KINDS) + ["splice", "authentic", "authentic"]
    for entry in manifest:
        assert set(entry) == {"name", "kind", "image", "mask", "meta"}
        image = np.asarray(Image.open(tmp_path / "a" / entry["image"]))
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        if entry["kind"] == "authentic":
            assert entry["image"] == f"Au/{entry['name']}.png" and entry["mask"] is None
            continue
        assert entry["image"] == f"Tp/{entry['name']}.png"
        assert entry["mask"] == f"Gt/{entry['name']}_gt.png"
        mask = np.asarray(Image.open(tmp_path / "a" / entry["mask"]))
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 255}
        assert entry["name"].replace("-", "").replace("_", "").isalnum()


def test_write_dataset_as_jpeg(tmp_path: Path, pool: list) -> None:
    from artifacts.io import load_image

    cfg = gen.GeneratorConfig(max_side=256)
    png = gen.write_dataset(tmp_path / "png", n=2, seed=3, config=cfg, photos=pool, n_authentic=1)
    jpg = gen.write_dataset(tmp_path / "jpg", n=2, seed=3, config=cfg, photos=pool, n_authentic=1, jpeg_quality=90)
    for a, b in zip(png, jpg):
        assert b["image"] == a["image"][:-4] + ".jpg" and b["mask"] == a["mask"]
        stored = load_image(tmp_path / "jpg" / b["image"])
        assert stored.meta["format"] == "JPEG" and stored.meta["jpeg"]["qtables"]
        lossless = load_image(tmp_path / "png" / a["image"]).pixels.astype(float)
        # the same sample, through a quality-90 JPEG: close but not equal
        assert 0 < np.abs(stored.pixels - lossless).mean() < 8  # 4:2:0 chroma costs most of it
    with pytest.raises(ValueError, match="jpeg_quality"):
        gen.write_dataset(tmp_path / "bad", n=1, seed=3, config=cfg, photos=pool, jpeg_quality=0)


def test_no_heavy_imports() -> None:
    code = (
        "import sys, artifacts; before = set(sys.modules)\n"
        "import artifacts.datasets\n"
        "assert 'cv2' not in set(sys.modules) - before, 'package import pulled cv2'\n"
        "import artifacts.datasets.manipulation\n"
        "new = set(sys.modules) - before\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in new), 'torch imported'\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------- host_jpeg (off by default)


def _jpeg_lattice_error(img: np.ndarray, table: np.ndarray, keep: np.ndarray) -> float:
    """Mean distance to the nearest integer of the luminance DCT coefficients / ``table`` over
    the 8x8 blocks entirely inside ``keep`` (~0.25 for pixels never JPEG-compressed)."""
    k = np.arange(8)
    d = np.sqrt(2 / 8) * np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16)
    d[0] /= np.sqrt(2)
    y = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) - 128
    h, w = (s // 8 * 8 for s in y.shape)
    blocks = y[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    inside = keep[:h, :w].reshape(h // 8, 8, w // 8, 8).all((1, 3))
    r = (d @ blocks @ d.T)[inside] / table
    return float(np.abs(r - np.rint(r))[:, :3, :3].mean())


def test_host_jpeg_compresses_hosts_and_donors(pool: list) -> None:
    import io

    cfg = gen.GeneratorConfig(host_jpeg=(70, 70), post_prob=0.0)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG", quality=70)
    table = np.array(Image.open(buf).quantization[0], float).reshape(8, 8)
    s = gen.generate(4, "splice", cfg, pool)
    assert s.meta["host"]["jpeg"] == 70 and s.meta["donor"]["jpeg"] in range(50, 96)
    # the untouched pixels sit on the JPEG lattice of quality 70, aligned with the image grid
    assert _jpeg_lattice_error(s.image, table, ~s.mask) < 0.1
    assert _jpeg_lattice_error(s.image[3:, 5:], table, ~s.mask[3:, 5:]) > 0.15
    plain = gen.generate(4, "splice", gen.GeneratorConfig(post_prob=0.0), pool)
    assert "jpeg" not in plain.meta["host"] and _jpeg_lattice_error(plain.image, table, ~plain.mask) > 0.15
    json.dumps(s.meta)


def test_host_jpeg_authentic_and_default_unchanged(pool: list) -> None:
    from artifacts.datasets.processing import jpeg

    on = gen.authentic(9, gen.GeneratorConfig(host_jpeg=(80, 90), post_prob=0.0), pool)
    off = gen.authentic(9, gen.GeneratorConfig(post_prob=0.0), pool)
    q = on.meta["host"]["jpeg"]
    assert 80 <= q <= 90 and on.meta["host"]["crop"] == off.meta["host"]["crop"]
    grey = on.meta["host"]["photo"] in photos.GREY_PHOTOS
    assert np.array_equal(on.image, jpeg(off.image, q, grey))  # the same photo, JPEG-compressed
    # unset (the default) draws nothing more: identical to a config that never mentions it
    a = gen.generate(6, config=gen.GeneratorConfig(), photos=pool)
    b = gen.generate(6, config=gen.GeneratorConfig(host_jpeg=None), photos=pool)
    assert np.array_equal(a.image, b.image) and a.meta == b.meta and "jpeg" not in a.meta["host"]
    with pytest.raises(ValueError):
        gen.GeneratorConfig(host_jpeg=(90, 80))
    with pytest.raises(ValueError):
        gen.GeneratorConfig(host_jpeg=(0, 50))
