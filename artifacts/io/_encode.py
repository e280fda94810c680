"""Writing image files: :func:`save_image` (validation, encoding, atomic replace).

8-bit images are encoded with Pillow; 16-bit ones (PNG/TIFF only) with OpenCV,
imported only then, since Pillow has no 16-bit colour modes.
"""

from __future__ import annotations

import io
import os
import uuid
from contextlib import suppress
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["encode_image", "save_image"]

# File extension -> Pillow format name.
_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}


def save_image(path: str | os.PathLike[str], array: np.ndarray, *, quality: int = 95) -> None:
    """Write ``array`` to ``path`` atomically (temporary file + ``os.replace``).

    The format follows the extension: ``.png`` and ``.tif``/``.tiff`` (uint8 or
    uint16), ``.jpg``/``.jpeg``, ``.webp``, ``.bmp`` (uint8 only).  ``array``
    is ``H, W`` (grey), ``H, W, 1``, ``H, W, 3`` (RGB) or ``H, W, 4`` (RGBA; not
    for JPEG/BMP); bool masks are written as 0/255 ``uint8``.  ``quality``
    applies to JPEG and WebP.  Raises ValueError for unsupported inputs.
    """
    target = os.fspath(path)
    _write_atomic(target, encode_image(array, os.path.splitext(target)[1], quality=quality))


def encode_image(array: np.ndarray, ext: str = ".png", *, quality: int = 95) -> bytes:
    """The bytes of ``array`` as a file of type ``ext`` (same rules as :func:`save_image`)."""
    fmt = _FORMATS.get(ext.lower())
    if fmt is None:
        raise ValueError(f"unsupported extension {ext!r} for an image file; use one of {sorted(_FORMATS)}")
    return _encode(_pixels_for_saving(np.asarray(array), fmt), fmt, quality)


def _pixels_for_saving(arr: np.ndarray, fmt: str) -> np.ndarray:
    """Validate ``arr`` for ``fmt`` and bring it to a contiguous H,W / H,W,3 / H,W,4 array."""
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"save_image needs uint8, uint16 or bool pixels, got {arr.dtype}; "
            "convert floats in [0, 1] with artifacts.io.from_tensor or (x * 255).round().astype(np.uint8)"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"save_image accepts H,W / H,W,1 / H,W,3 / H,W,4 arrays, got shape {arr.shape}")
    if arr.dtype == np.uint16 and fmt not in ("PNG", "TIFF"):
        raise ValueError(f"16-bit pixels can only be saved as PNG or TIFF, not {fmt}")
    if arr.ndim == 3 and arr.shape[2] == 4 and fmt in ("JPEG", "BMP"):
        raise ValueError(f"{fmt} cannot store an alpha channel; save RGBA as PNG, TIFF or WebP")
    return np.ascontiguousarray(arr)


def _encode(pixels: np.ndarray, fmt: str, quality: int) -> bytes:
    """The encoded file content."""
    if pixels.dtype == np.uint16:
        import cv2

        bgr = pixels if pixels.ndim == 2 else np.ascontiguousarray(pixels[..., [2, 1, 0, 3][: pixels.shape[2]]])
        ok, buf = cv2.imencode(".png" if fmt == "PNG" else ".tiff", bgr)
        if not ok:
            raise ValueError(f"OpenCV could not encode a {pixels.shape} uint16 array as {fmt}")
        return buf.tobytes()
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(pixels).save(out, format=fmt, **options)
    return out.getvalue()


def _write_atomic(path: str, payload: bytes) -> None:
    """Write to a temporary file next to ``path``, then rename it over ``path``."""
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
