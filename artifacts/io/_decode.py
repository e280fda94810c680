"""Pixel stage of reading: turn an opened image into RGB arrays and metadata.

Implements the bit-depth, colour-mode, alpha, ICC, orientation and metadata
rules of the decoding policy documented in :mod:`artifacts.io.image`.  Pixels
come from Pillow, except 16-bit colour PNG/TIFF, which Pillow would reduce to
8 bits and which OpenCV decodes instead (imported only then).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageFile

from ._errors import PolicyError, one_line
from ._header import GREY_MODES_16, HEAD_SIZE, format_name, png_ihdr, stored_bit_depth

__all__ = ["PNG_TEXT_LIMIT", "decode", "orient_array", "owned", "pil_to_arrays"]

PNG_TEXT_LIMIT = 1000
_SUBSAMPLING = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (1, 2): "4:4:0", (4, 1): "4:1:1"}
_PNG_GREY_ALPHA = 4
_PNG_COLOUR_TYPES = (2, 4, 6)  # RGB, grey + alpha, RGBA (OpenCV reads them as BGR[A])


def decode(
    im: ImageFile.ImageFile,
    data: bytes,
    *,
    apply_orientation: bool,
    convert_icc: bool,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Decode an opened image (whose size was checked) into ``(rgb, alpha, meta)``.

    ``data`` is the whole file.  The arrays are C-contiguous and owned by the
    caller; errors propagate (the caller turns them into one-line reasons).
    """
    width, height = im.size
    head = data[:HEAD_SIZE]
    bit_depth = stored_bit_depth(im, head)
    icc = im.info.get("icc_profile") or None
    meta: dict[str, Any] = {
        "format": format_name(im),
        "mode": im.mode,
        "size": [width, height],
        "bit_depth": bit_depth,
        "file_size": len(data),
    }

    ihdr = png_ihdr(head) if im.format == "PNG" else None
    png_colour_type = ihdr[1] if ihdr else None
    if _needs_opencv(im, png_colour_type, bit_depth):
        rgb, alpha = _decode_opencv(data, im.size)
        notes: dict[str, Any] = {"grayscale": png_colour_type == _PNG_GREY_ALPHA or im.mode == "LA"}
    else:
        im.load()
        if im.mode == "CMYK" and icc:
            rgb, method = _cmyk_to_rgb(im, icc)
            alpha, notes = None, {"grayscale": False, "converted_from": "CMYK"}
        else:
            rgb, alpha, notes = pil_to_arrays(im)
            method = "pillow"
        if im.mode == "CMYK":
            meta["cmyk_conversion"] = method
    meta.update(notes)
    meta["has_alpha"] = alpha is not None

    meta["icc_profile"] = {"present": icc is not None, "description": _icc_description(icc) if icc else None}
    if convert_icc:
        rgb = _convert_icc(rgb, icc, meta)

    orientation = _exif_facts(im, meta)
    meta["exif_orientation"] = orientation
    meta["orientation_applied"] = bool(apply_orientation and orientation != 1)
    if meta["orientation_applied"]:
        rgb = _orient(rgb, orientation)
        alpha = None if alpha is None else _orient(alpha, orientation)

    if meta["format"] == "JPEG":
        meta["jpeg"] = _jpeg_facts(im)
    if im.format == "PNG":
        meta["png_text"] = {str(k): str(v)[:PNG_TEXT_LIMIT] for k, v in im.text.items()}
    meta["n_frames"] = _frame_count(im)
    return owned(rgb), None if alpha is None else owned(alpha), meta


def pil_to_arrays(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Turn a Pillow image into ``(rgb, alpha, notes)`` following the colour-mode policy.

    ``rgb`` is a fresh ``H, W, 3`` uint8/uint16 array, ``alpha`` an ``H, W``
    array or None, and ``notes`` holds ``grayscale`` plus, when relevant,
    ``converted_from`` / ``scaled_from``.  CMYK uses Pillow's formula here (ICC
    conversion is done by :func:`~artifacts.io.image.load_image`).  Raises
    ValueError for modes the policy rejects.
    """
    mode = im.mode
    notes: dict[str, Any] = {"grayscale": False}
    alpha = None
    if mode in ("1", "L", "LA", "La") or mode in GREY_MODES_16 or mode in ("I", "F"):
        notes["grayscale"] = True
        if mode in ("1", "L") and im.has_transparency_data:
            mode = "LA"
        if mode in ("1", "L"):
            grey = np.array(im.convert("L"))
        elif mode in ("LA", "La"):
            la = np.array(im.convert("LA"))
            grey, alpha = la[..., 0], np.ascontiguousarray(la[..., 1])
        elif mode in GREY_MODES_16:
            grey = np.array(im).astype(np.uint16)
        elif mode == "I":
            grey = _int32_to_uint16(np.array(im))
        else:
            grey = _float_to_uint16(np.array(im))
            notes["scaled_from"] = "F"
        rgb = np.repeat(grey[..., None], 3, axis=2)
        return rgb, alpha, notes
    if mode in ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX"):
        if mode in ("PA", "RGBA", "RGBa") or im.has_transparency_data:
            rgba = np.array(im.convert("RGBA"))
            return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]), notes
        return np.array(im.convert("RGB")), None, notes
    if mode in ("CMYK", "YCbCr", "HSV"):
        notes["converted_from"] = mode
        return np.array(im.convert("RGB")), None, notes
    raise PolicyError(f"unsupported colour mode {mode!r}")


def owned(arr: np.ndarray) -> np.ndarray:
    """C-contiguous, writable array not shared with anything else (copied only when needed)."""
    arr = np.ascontiguousarray(arr)
    return arr if arr.flags.writeable and arr.base is None else arr.copy()


# --------------------------------------------------------------------------
# Bit depth


def _needs_opencv(im: Image.Image, png_colour_type: int | None, bit_depth: int) -> bool:
    """True for 16-bit colour PNG/TIFF, which Pillow would reduce to 8 bits."""
    if bit_depth <= 8:
        return False
    if im.format == "PNG":
        return png_colour_type in _PNG_COLOUR_TYPES
    if im.format == "TIFF":
        return im.mode in ("RGB", "RGBA", "RGBX", "LA")
    return False


def _decode_opencv(data: bytes, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode 16-bit colour PNG/TIFF with OpenCV, keeping the stored values."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise OSError("OpenCV could not decode the pixel data")
    if arr.shape[1::-1] != size:
        raise OSError(f"decoded size {arr.shape[1]}x{arr.shape[0]} differs from the header {size[0]}x{size[1]}")
    if arr.dtype == np.float32:
        arr = _float_to_uint16(arr)
    if arr.dtype not in (np.uint8, np.uint16):
        raise PolicyError(f"unsupported sample type {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    channels = arr.shape[2]
    if channels in (1, 2):
        rgb, alpha = np.repeat(arr[..., :1], 3, axis=2), (arr[..., 1] if channels == 2 else None)
    elif channels in (3, 4):
        rgb, alpha = arr[..., 2::-1], (arr[..., 3] if channels == 4 else None)
    else:
        raise PolicyError(f"unsupported number of channels ({channels})")
    return np.ascontiguousarray(rgb), None if alpha is None else np.ascontiguousarray(alpha)


def _int32_to_uint16(arr: np.ndarray) -> np.ndarray:
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise PolicyError(
            f"unsupported 32-bit integer pixel values (range {arr.min()}..{arr.max()}, only 0..65535 is accepted)"
        )
    return arr.astype(np.uint16)


def _float_to_uint16(arr: np.ndarray) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise PolicyError("unsupported floating-point pixels (NaN or infinite values)")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise PolicyError(
            f"unsupported floating-point pixel values (range {arr.min():.4g}..{arr.max():.4g}, only [0, 1] is accepted)"
        )
    return np.rint(arr.astype(np.float64) * 65535).astype(np.uint16)


# --------------------------------------------------------------------------
# Colour profiles


def _cmyk_to_rgb(im: Image.Image, icc: bytes) -> tuple[np.ndarray, str]:
    """CMYK -> RGB through the embedded profile, falling back to Pillow's formula."""
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        if out is not None:
            return np.array(out), "icc"
    except Exception:  # a broken or mismatched profile: use the plain conversion
        pass
    return np.array(im.convert("RGB")), "pillow"


def _icc_description(icc: bytes) -> str | None:
    try:
        from PIL import ImageCms

        return one_line(ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))) or None
    except Exception:  # unreadable profile: presence is still recorded
        return None


def _convert_icc(rgb: np.ndarray, icc: bytes | None, meta: dict[str, Any]) -> np.ndarray:
    """Colour-convert to sRGB when asked to; record what happened in ``meta``."""
    meta["icc_converted"] = False
    if icc is None or meta.get("converted_from") == "CMYK":
        meta["icc_note"] = "no embedded profile" if icc is None else "CMYK already converted to RGB"
        return rgb
    if rgb.dtype != np.uint8:
        meta["icc_note"] = "16-bit images are not colour-converted"
        return rgb
    try:
        from PIL import ImageCms

        grey = meta.get("grayscale", False)
        src_im = Image.fromarray(np.ascontiguousarray(rgb[..., 0]) if grey else rgb)
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = ImageCms.profileToProfile(src_im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception as exc:  # profile unusable for this image: keep stored values
        meta["icc_note"] = one_line(f"conversion failed: {exc}")
        return rgb
    meta["icc_converted"] = True
    return np.array(out)


# --------------------------------------------------------------------------
# Orientation and file metadata


def _exif_facts(im: Image.Image, meta: dict[str, Any]) -> int:
    """Record EXIF presence in ``meta`` and return the orientation (1 when absent/invalid)."""
    try:
        exif = im.getexif()
    except Exception:  # corrupt EXIF must not make the pixels unreadable
        meta["exif"] = bool(im.info.get("exif"))
        return 1
    # TIFF keeps EXIF as a sub-IFD of its own tags; elsewhere it is an "exif" block.
    meta["exif"] = (0x8769 in exif) if im.format == "TIFF" else bool(im.info.get("exif"))
    value = exif.get(0x0112, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (2-8) to an H,W[,C] array, as image viewers do."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return arr[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def orient_array(arr: np.ndarray, orientation: int, *, inverse: bool = False) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an ``H, W[, C]`` array as :func:`load_image` does,
    or, with ``inverse=True``, undo it (back to the grid stored in the file).

    Analyses tied to the stored pixel grid (JPEG 8x8 blocks) undo the orientation of an
    image read with ``meta["orientation_applied"]``, work on the stored grid, and apply the
    orientation again to their output map.  Returns a view where possible (copy it to own it).
    """
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        raise ValueError(f"EXIF orientation must be an integer 1-8, got {orientation!r}")
    if inverse:  # 6 and 8 are inverse rotations; the other orientations are their own inverse
        orientation = {6: 8, 8: 6}.get(orientation, orientation)
    return _orient(arr, orientation)


def _jpeg_facts(im: Image.Image) -> dict[str, Any]:
    """Quantisation tables (natural order), chroma subsampling and progressive flag."""
    tables = getattr(im, "quantization", None) or {}
    layers = getattr(im, "layer", [])
    subsampling = None
    if len(layers) == 3:
        (_, h0, v0, _), rest = layers[0], layers[1:]
        if all(h == 1 and v == 1 for _, h, v, _ in rest):
            subsampling = _SUBSAMPLING.get((h0, v0))
        if subsampling is None:
            subsampling = ",".join(f"{h}x{v}" for _, h, v, _ in layers)
    return {
        "qtables": {str(k): [int(x) for x in table] for k, table in sorted(tables.items())},
        "subsampling": subsampling,
        "progressive": bool(im.info.get("progressive") or im.info.get("progression")),
    }


def _frame_count(im: Image.Image) -> int | None:
    """Number of frames/pages, or None when later frames cannot even be counted."""
    try:
        return int(getattr(im, "n_frames", 1))
    except Exception:  # damage after the first frame does not spoil the first frame
        return None
