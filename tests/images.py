"""Writers of small tricky and broken image files for tests (a helper module, not a test file).

``write_tricky_folder(dirpath)`` writes one file per awkward case and returns
``{filename: should_decode_ok}``.  The ``sample_*`` functions give the exact
arrays the files were made from, so tests can compare decoded pixels.
Everything is built from ``skimage.data.astronaut()`` scaled down, and the
whole folder takes well under a second to write (the bomb is cached).
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "BOMB_SIZE",
    "bomb_png_bytes",
    "png_chunk",
    "sample_alpha",
    "sample_gray16",
    "sample_rgb",
    "sample_rgb16",
    "write_tricky_folder",
]

BOMB_SIZE = 40_000  # the bomb PNG declares BOMB_SIZE x BOMB_SIZE pixels
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@functools.lru_cache(maxsize=4)
def _astronaut(width: int, height: int) -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.BILINEAR))


def sample_rgb(width: int = 128, height: int = 96) -> np.ndarray:
    """Real photographic content: astronaut scaled to ``height, width, 3`` uint8 (a fresh copy)."""
    return _astronaut(width, height).copy()


def sample_rgb16(width: int = 128, height: int = 96) -> np.ndarray:
    """16-bit RGB with values far above 255 that are not multiples of 257."""
    base = sample_rgb(width, height).astype(np.uint16) * 257
    ramp = (np.arange(width, dtype=np.uint16) % 200)[None, :, None]
    return np.minimum(base + ramp, 65535).astype(np.uint16)


def sample_gray16(width: int = 128, height: int = 96) -> np.ndarray:
    """16-bit greyscale ``H, W`` built from the red channel, spanning 0..65535."""
    return sample_rgb16(width, height)[..., 0].copy()


def sample_alpha(width: int = 128, height: int = 96) -> np.ndarray:
    """uint8 alpha: a left-to-right ramp with a fully transparent top band."""
    alpha = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    alpha[: height // 4] = 0
    return alpha


def png_chunk(tag: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)


@functools.lru_cache(maxsize=2)
def bomb_png_bytes(size: int = BOMB_SIZE) -> bytes:
    """A valid 1-bit greyscale PNG of ``size x size`` zeros (~200 MB raw for 40000, < 1 MB on disk).

    The zero rows are compressed incrementally so the raw data never exists in memory.
    """
    row = 1 + (size + 7) // 8  # filter byte + packed bits
    rows_per_block = 1000
    block = bytes(row * rows_per_block)
    compressor = zlib.compressobj(1)
    parts = [compressor.compress(block) for _ in range(size // rows_per_block)]
    parts.append(compressor.compress(bytes(row * (size % rows_per_block))))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)  # 1-bit, greyscale, deflate, no interlace
    return _PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def _pil_bytes(im: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **options)
    return out.getvalue()


def _tricky_files() -> dict[str, tuple[bytes, bool]]:
    rgb = Image.fromarray(sample_rgb())
    jpeg = _pil_bytes(rgb, "JPEG", quality=90)
    rgba = Image.fromarray(np.dstack([sample_rgb(), sample_alpha()]))
    palette = rgb.quantize(colors=32)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored grid must be rotated 90 degrees clockwise for display
    ok16, rgb16_png = cv2.imencode(".png", np.ascontiguousarray(sample_rgb16()[..., ::-1]))
    assert ok16
    return {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], False),
        "empty.jpg": (b"", False),
        "notes.png": (b"These are meeting notes, not a picture.\n", False),
        "cmyk.jpg": (_pil_bytes(rgb.convert("CMYK"), "JPEG", quality=95), True),
        "rgb16.png": (rgb16_png.tobytes(), True),
        "rgba.png": (_pil_bytes(rgba, "PNG"), True),
        "bomb.png": (bomb_png_bytes(), False),
        "palette.png": (_pil_bytes(palette, "PNG", transparency=0), True),
        "gray.jpg": (_pil_bytes(rgb.convert("L"), "JPEG", quality=90), True),
        "exif_rotated.jpg": (_pil_bytes(rgb, "JPEG", quality=90, exif=exif.tobytes()), True),
        "gray16.tif": (_pil_bytes(Image.fromarray(sample_gray16()), "TIFF"), True),
        "image.webp": (_pil_bytes(rgb, "WEBP", quality=90), True),
        "image.bmp": (_pil_bytes(rgb, "BMP"), True),
    }


def write_tricky_folder(dirpath: str | os.PathLike[str]) -> dict[str, bool]:
    """Write the tricky files into ``dirpath`` (created if needed); return ``{filename: should_decode_ok}``."""
    os.makedirs(dirpath, exist_ok=True)
    expected: dict[str, bool] = {}
    for name, (payload, ok) in _tricky_files().items():
        with open(os.path.join(dirpath, name), "wb") as fh:
            fh.write(payload)
        expected[name] = ok
    return expected
