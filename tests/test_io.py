"""Tests of artifacts.io: decoding policy, conversions and atomic saving."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageFile, ImageOps, PngImagePlugin

from artifacts.io import (
    ImageData,
    ImageReadError,
    as_images,
    from_tensor,
    image_info,
    load_image,
    save_image,
    to_float,
    to_tensor,
)
from tests.images import (
    BOMB_SIZE,
    bomb_png_bytes,
    sample_alpha,
    sample_gray16,
    sample_rgb,
    sample_rgb16,
    write_tricky_folder,
)

EXPECTED_REASON = {
    "truncated.jpg": "truncated or corrupt image data",
    "empty.jpg": "empty file (0 bytes)",
    "notes.png": "not a recognised image format",
    "bomb.png": "image too large: 40000x40000 = 1600.0 MP exceeds the limit of 200 MP",
}


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bool]]:
    folder = tmp_path_factory.mktemp("tricky")
    return folder, write_tricky_folder(folder)


def _pil_bytes(im: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **options)
    return out.getvalue()


def _assert_conventions(image: ImageData) -> None:
    assert image.pixels.ndim == 3 and image.pixels.shape[2] == 3
    assert image.pixels.dtype in (np.uint8, np.uint16)
    assert image.pixels.flags.c_contiguous and image.pixels.flags.writeable
    if image.alpha is not None:
        assert image.alpha.shape == image.pixels.shape[:2] and image.alpha.dtype == image.pixels.dtype
        assert image.alpha.flags.c_contiguous and image.alpha.flags.writeable
    json.dumps(image.meta)  # JSON-serialisable only


# --------------------------------------------------------------------------
# The tricky folder


def test_tricky_folder_lists_every_case(tricky):
    folder, expected = tricky
    assert sorted(os.listdir(folder)) == sorted(expected)
    assert sum(expected.values()) == 9 and len(expected) == 13


def test_tricky_files_load_or_fail_with_one_line_reason(tricky):
    folder, expected = tricky
    for name, ok in expected.items():
        path = folder / name
        if ok:
            image = load_image(path)
            _assert_conventions(image)
            assert image.path == str(path)
        else:
            with pytest.raises(ImageReadError) as info:
                load_image(path)
            message = str(info.value)
            assert "\n" not in message and name in message
            assert message.startswith(f"{path}: ")
            assert EXPECTED_REASON[name] in message, message


def test_bytes_input_matches_path_input(tricky):
    folder, _ = tricky
    data = (folder / "rgba.png").read_bytes()
    from_bytes, from_path = load_image(data), load_image(folder / "rgba.png")
    assert from_bytes.path is None
    np.testing.assert_array_equal(from_bytes.pixels, from_path.pixels)
    with pytest.raises(ImageReadError, match=r"^<bytes>: empty file"):
        load_image(b"")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png: file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(TypeError):
        load_image(12)  # type: ignore[arg-type]


def test_image_read_error_is_value_error_and_picklable():
    err = ImageReadError("a.png", "truncated or corrupt image data (x\ny)")
    assert isinstance(err, ValueError)
    assert str(err) == "a.png: truncated or corrupt image data (x y)"
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.filename == "a.png"


# --------------------------------------------------------------------------
# Bit depth, orientation, colour modes


def test_16bit_rgb_png_keeps_values(tricky):
    folder, _ = tricky
    image = load_image(folder / "rgb16.png")
    assert image.pixels.dtype == np.uint16 and image.bit_depth == 16
    assert image.pixels.max() > 255
    np.testing.assert_array_equal(image.pixels, sample_rgb16())
    assert image.meta["bit_depth"] == 16 and not image.is_grayscale


def test_16bit_grey_tiff_keeps_values(tricky):
    folder, _ = tricky
    image = load_image(folder / "gray16.tif")
    assert image.pixels.dtype == np.uint16 and image.pixels.max() > 255
    assert image.is_grayscale and image.meta["bit_depth"] == 16
    for c in range(3):
        np.testing.assert_array_equal(image.pixels[..., c], sample_gray16())


def test_16bit_rgba_png_and_rgb_tiff(tmp_path):
    import cv2

    rgba = np.dstack([sample_rgb16(), (sample_alpha().astype(np.uint16) * 257)])
    ok, buf = cv2.imencode(".png", rgba[..., [2, 1, 0, 3]])
    assert ok
    image = load_image(buf.tobytes())
    np.testing.assert_array_equal(image.pixels, sample_rgb16())
    np.testing.assert_array_equal(image.alpha, rgba[..., 3])
    assert image.meta["has_alpha"]

    ok, buf = cv2.imencode(".tiff", np.ascontiguousarray(sample_rgb16()[..., ::-1]))
    assert ok
    image = load_image(buf.tobytes())
    assert image.meta["format"] == "TIFF" and image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, sample_rgb16())


def test_truncated_16bit_png_is_rejected(tricky):
    folder, _ = tricky
    data = (folder / "rgb16.png").read_bytes()
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_exif_orientation_6_swaps_size(tricky):
    folder, _ = tricky
    oriented = load_image(folder / "exif_rotated.jpg")
    stored = load_image(folder / "exif_rotated.jpg", apply_orientation=False)
    assert (oriented.width, oriented.height) == (96, 128)
    assert (stored.width, stored.height) == (128, 96)
    assert oriented.meta["exif_orientation"] == 6 and oriented.meta["orientation_applied"]
    assert stored.meta["exif_orientation"] == 6 and not stored.meta["orientation_applied"]
    assert oriented.meta["size"] == stored.meta["size"] == [128, 96]
    np.testing.assert_array_equal(oriented.pixels, np.rot90(stored.pixels, -1))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    rgba = Image.fromarray(np.dstack([sample_rgb(24, 16), sample_alpha(24, 16)]))
    data = _pil_bytes(rgba, "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    image = load_image(data)
    np.testing.assert_array_equal(image.pixels, expected[..., :3])
    np.testing.assert_array_equal(image.alpha, expected[..., 3])
    assert image.meta["orientation_applied"] == (orientation != 1)


def test_cmyk_jpeg_converts_to_rgb_close_to_original(tricky):
    folder, _ = tricky
    image = load_image(folder / "cmyk.jpg")
    assert image.meta["converted_from"] == "CMYK" and image.meta["mode"] == "CMYK"
    diff = np.abs(image.pixels.astype(int) - sample_rgb().astype(int)).mean()
    assert diff < 6, diff


def test_rgba_alpha_split_without_compositing(tricky):
    folder, _ = tricky
    image = load_image(folder / "rgba.png")
    assert image.meta["has_alpha"] and image.alpha is not None
    np.testing.assert_array_equal(image.alpha, sample_alpha())
    # fully transparent rows keep their stored colour values
    np.testing.assert_array_equal(image.pixels, sample_rgb())


def test_palette_with_transparency(tricky):
    folder, _ = tricky
    image = load_image(folder / "palette.png")
    reference = np.asarray(Image.open(folder / "palette.png").convert("RGBA"))
    np.testing.assert_array_equal(image.pixels, reference[..., :3])
    np.testing.assert_array_equal(image.alpha, reference[..., 3])
    assert image.meta["mode"] == "P" and (image.alpha == 0).any() and (image.alpha == 255).any()
    assert np.abs(image.pixels.astype(int) - sample_rgb().astype(int)).mean() < 20


def test_greyscale_jpeg_is_replicated(tricky):
    folder, _ = tricky
    image = load_image(folder / "gray.jpg")
    assert image.is_grayscale and image.pixels.dtype == np.uint8
    assert (image.pixels[..., 0] == image.pixels[..., 1]).all() and (image.pixels[..., 1] == image.pixels[..., 2]).all()


def test_gif_first_frame_and_frame_count():
    frames = [Image.fromarray(sample_rgb(32, 24)).quantize(16), Image.new("P", (32, 24))]
    data = _pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    image = load_image(data)
    assert image.meta["format"] == "GIF" and image.meta["n_frames"] == 2
    np.testing.assert_array_equal(image.pixels, np.asarray(frames[0].convert("RGB")))


def test_float_and_32bit_modes():
    image = load_image(_pil_bytes(Image.fromarray(np.full((4, 5), 0.5, np.float32), mode="F"), "TIFF"))
    assert image.pixels.dtype == np.uint16 and image.meta["scaled_from"] == "F"
    assert (image.pixels == 32768).all()
    with pytest.raises(ImageReadError, match="floating-point pixel values"):
        load_image(_pil_bytes(Image.fromarray(np.full((4, 5), 7.0, np.float32), mode="F"), "TIFF"))


# --------------------------------------------------------------------------
# Metadata


def test_jpeg_tables_subsampling_progressive():
    rgb = Image.fromarray(sample_rgb())
    meta = load_image(_pil_bytes(rgb, "JPEG", quality=50)).meta["jpeg"]
    assert sorted(meta["qtables"]) == ["0", "1"]
    assert all(len(t) == 64 and all(isinstance(v, int) for v in t) for t in meta["qtables"].values())
    # quality 50 is the standard table; natural (row-major) order
    assert meta["qtables"]["0"][:8] == [16, 11, 10, 16, 24, 40, 51, 61]
    assert meta["subsampling"] == "4:2:0" and meta["progressive"] is False
    meta = load_image(_pil_bytes(rgb, "JPEG", subsampling=0, progressive=True)).meta["jpeg"]
    assert meta["subsampling"] == "4:4:4" and meta["progressive"] is True


def test_png_text_chunks_exposed_and_truncated():
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "GenAI 3.0")
    info.add_text("Comment", "x" * 5000, zip=True)
    meta = load_image(_pil_bytes(Image.fromarray(sample_rgb(16, 8)), "PNG", pnginfo=info)).meta
    assert meta["png_text"]["Software"] == "GenAI 3.0"
    assert meta["png_text"]["Comment"] == "x" * 1000


def test_png_text_chunk_bomb_is_rejected():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "a" * (PngImagePlugin.MAX_TEXT_CHUNK + 10), zip=True)
    data = _pil_bytes(Image.fromarray(sample_rgb(16, 8)), "PNG", pnginfo=info)
    assert len(data) < 100_000
    with pytest.raises(ImageReadError, match="oversized PNG text chunk"):
        load_image(data)


def test_icc_profile_reported_and_optionally_converted():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = _pil_bytes(Image.fromarray(sample_rgb()), "PNG", icc_profile=icc)
    kept = load_image(data)
    assert kept.meta["icc_profile"]["present"] is True
    assert "sRGB" in kept.meta["icc_profile"]["description"]
    np.testing.assert_array_equal(kept.pixels, sample_rgb())
    converted = load_image(data, convert_icc=True)
    assert converted.meta["icc_converted"] is True
    assert np.abs(converted.pixels.astype(int) - sample_rgb().astype(int)).max() <= 2
    assert load_image(_pil_bytes(Image.fromarray(sample_rgb()), "PNG")).meta["icc_profile"] == {
        "present": False,
        "description": None,
    }


def test_common_meta_fields(tricky):
    folder, _ = tricky
    meta = load_image(folder / "exif_rotated.jpg").meta
    assert meta["format"] == "JPEG" and meta["mode"] == "RGB" and meta["bit_depth"] == 8
    assert meta["file_size"] == (folder / "exif_rotated.jpg").stat().st_size
    assert meta["exif"] is True and load_image(folder / "image.bmp").meta["exif"] is False


def test_heif_without_plugin_names_the_extra():
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pillow_heif is installed")
    fake_heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(ImageReadError, match=r'pip install "artifacts-toolkit\[heif\]"'):
        load_image(fake_heic)


# --------------------------------------------------------------------------
# Decompression bombs and Pillow global state


def test_bomb_rejected_fast_without_allocating(tricky):
    folder, _ = tricky
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match=f"{BOMB_SIZE}x{BOMB_SIZE}") as info:
        load_image(folder / "bomb.png")
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 20 * len(bomb_png_bytes())  # the file itself, not 1.6 GP of pixels
    assert "ARTIFACTS_MAX_PIXELS" in str(info.value)


def test_pixel_limit_argument_and_environment(tricky, monkeypatch):
    folder, _ = tricky
    with pytest.raises(ImageReadError, match="exceeds the limit of 0.01 MP"):
        load_image(folder / "image.bmp", max_pixels=10_000)
    monkeypatch.setenv("ARTIFACTS_MAX_PIXELS", "10000")
    with pytest.raises(ImageReadError, match="image too large: 128x96"):
        load_image(folder / "image.bmp")
    assert load_image(folder / "image.bmp", max_pixels=20_000).width == 128


def test_pillow_globals_restored_and_truncation_never_tolerated(tricky, monkeypatch):
    folder, _ = tricky
    before = Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageReadError, match="truncated"):
        load_image(folder / "truncated.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    assert Image.MAX_IMAGE_PIXELS == before


def test_concurrent_loads_restore_pillow_globals(tricky):
    from concurrent.futures import ThreadPoolExecutor

    folder, expected = tricky
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)

    def outcome(name: str) -> bool:
        try:
            load_image(folder / name)
        except ImageReadError:
            return False
        return True

    names = list(expected) * 4
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(outcome, names))
    assert results == [expected[n] for n in names]
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_image_info_reads_only_the_header(tricky):
    folder, _ = tricky
    start = time.perf_counter()
    info = image_info(folder / "bomb.png")
    assert time.perf_counter() - start < 0.5
    assert info["size"] == [BOMB_SIZE, BOMB_SIZE] and info["n_pixels"] == BOMB_SIZE**2
    assert info["format"] == "PNG" and info["mode"] == "1" and info["bit_depth"] == 1
    info16 = image_info((folder / "rgb16.png").read_bytes())
    assert info16["bit_depth"] == 16 and info16["size"] == [128, 96]
    with pytest.raises(ImageReadError, match="notes.png: not a recognised image format"):
        image_info(folder / "notes.png")


# --------------------------------------------------------------------------
# Conversions


def test_as_images_accepts_every_kind(tricky):
    folder, _ = tricky
    rgb = sample_rgb(16, 12)
    pil_rgba = Image.fromarray(np.dstack([rgb, sample_alpha(16, 12)]))
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    items = as_images(
        [
            folder / "image.bmp",
            str(folder / "gray.jpg"),
            (folder / "rgba.png").read_bytes(),
            rgb,
            rgb[..., 0],
            sample_rgb16(16, 12),
            np.dstack([rgb, sample_alpha(16, 12)]).astype(np.float32) / 255,
            np.stack([rgb, rgb, rgb]),
            pil_rgba,
            Image.fromarray(rgb).convert("L"),
            tensor,
            torch.stack([tensor, tensor]),
            torch.from_numpy(rgb).permute(2, 0, 1).contiguous(),
        ]
    )
    assert len(items) == 3 + 4 + 3 + 2 + 1 + 2 + 1
    for item in items:
        _assert_conventions(item)
    sources = [item.meta.get("source") for item in items]
    assert sources == ["file"] * 3 + ["array"] * 7 + ["pil"] * 2 + ["tensor"] * 4
    assert items[4].is_grayscale and items[4].meta["shape"] == [12, 16]
    assert items[5].pixels.dtype == np.uint16
    np.testing.assert_array_equal(items[6].pixels, rgb)
    np.testing.assert_array_equal(items[6].alpha, sample_alpha(16, 12))
    assert [items[i].meta["index"] for i in (7, 8, 9)] == [0, 1, 2]
    assert items[7].meta["shape"] == [3, 12, 16, 3]
    np.testing.assert_array_equal(items[10].alpha, sample_alpha(16, 12))
    assert items[11].is_grayscale
    for item in items[12:]:
        np.testing.assert_array_equal(item.pixels, rgb)
    assert items[12].meta["dtype"] == "float32" and items[15].meta["dtype"] == "uint8"


def test_as_images_does_not_alias_input():
    rgb = sample_rgb(8, 8)
    image = as_images(rgb)[0]
    image.pixels[:] = 0
    assert rgb.any()


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.full((4, 4, 3), 1.5, np.float32), r"\[0, 1\]"),
        (np.full((4, 4, 3), -0.1, np.float64), r"\[0, 1\]"),
        (torch.full((3, 4, 4), float("nan")), "NaN"),
        (torch.full((1, 3, 4, 4), 255.0), r"\[0, 1\]"),
        (np.zeros((3, 16, 16), np.uint8), "H,W,3"),
        (np.zeros((4, 4, 5), np.uint8), "accepted shapes"),
        (np.zeros((1, 2, 4, 4, 3), np.uint8), "accepted shapes"),
        (torch.zeros(16, 16, 3), "C,H,W"),
        (torch.zeros(16), "C,H,W"),
        (np.zeros((4, 4, 3), np.int64), "uint8, uint16"),
    ],
)
def test_as_images_rejects_bad_input(bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        as_images(bad)


def test_as_images_rejects_unknown_types():
    with pytest.raises(TypeError, match="as_images cannot use a int"):
        as_images(3)


def test_to_float_dtypes():
    assert to_float(np.array([[255]], np.uint8)).dtype == np.float32
    assert to_float(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    assert to_float(np.array([True, False])).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="NaN"):
        to_float(np.array([np.nan]))
    with pytest.raises(TypeError):
        to_float(np.array([1], np.int32))


def test_tensor_round_trip():
    rgb = sample_rgb(20, 10)
    t = to_tensor(rgb)
    assert t.shape == (1, 3, 10, 20) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    np.testing.assert_array_equal(from_tensor(t)[0], rgb)
    np.testing.assert_array_equal(from_tensor(t[0]), rgb)
    batch = to_tensor([rgb, as_images(rgb)[0]])
    assert batch.shape == (2, 3, 10, 20)
    assert from_tensor(batch).shape == (2, 10, 20, 3)
    assert torch.allclose(to_tensor(sample_rgb16(20, 10)), t, atol=0.01)
    with pytest.raises(ValueError, match="one size"):
        to_tensor([rgb, sample_rgb(10, 10)])
    clipped = from_tensor(torch.tensor([[[1.2, -0.3]]]))
    assert clipped.tolist() == [[[255], [0]]]
    with pytest.raises(ValueError, match="NaN"):
        from_tensor(torch.full((3, 2, 2), float("nan")))


# --------------------------------------------------------------------------
# Saving


def test_save_round_trips(tmp_path):
    rgb, rgb16 = sample_rgb(), sample_rgb16()
    save_image(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png").pixels, rgb)
    save_image(tmp_path / "b.png", rgb16)
    loaded = load_image(tmp_path / "b.png")
    assert loaded.pixels.dtype == np.uint16
    np.testing.assert_array_equal(loaded.pixels, rgb16)
    save_image(tmp_path / "g.png", sample_gray16())
    loaded = load_image(tmp_path / "g.png")
    assert loaded.is_grayscale and loaded.pixels.dtype == np.uint16
    np.testing.assert_array_equal(loaded.pixels[..., 0], sample_gray16())
    mask = sample_rgb()[..., 0] > 128
    save_image(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(load_image(tmp_path / "m.png").pixels[..., 0], mask.astype(np.uint8) * 255)
    save_image(tmp_path / "c.tif", rgb16)
    np.testing.assert_array_equal(load_image(tmp_path / "c.tif").pixels, rgb16)
    save_image(tmp_path / "d.jpg", rgb)
    assert np.abs(load_image(tmp_path / "d.jpg").pixels.astype(int) - rgb).mean() < 4
    rgba = np.dstack([rgb, sample_alpha()])
    save_image(tmp_path / "e.png", rgba)
    np.testing.assert_array_equal(load_image(tmp_path / "e.png").alpha, sample_alpha())
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_save_overwrites_atomically_and_validates(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    save_image(target, sample_rgb(8, 8))
    assert load_image(target).width == 8
    with pytest.raises(ValueError, match="uint8, uint16 or bool"):
        save_image(tmp_path / "f.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="unsupported extension"):
        save_image(tmp_path / "f.gif", sample_rgb(8, 8))
    with pytest.raises(ValueError, match="PNG or TIFF"):
        save_image(tmp_path / "f.jpg", sample_rgb16(8, 8))
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_import_is_light():
    code = (
        "import sys, artifacts; pre = set(sys.modules); import artifacts.io; "
        "new = set(sys.modules) - pre; bad = sorted(m for m in new if m.split('.')[0] in ('torch', 'cv2', 'skimage')); "
        "assert not bad, bad"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    assert result.returncode == 0, result.stderr
