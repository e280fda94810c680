"""The stored 8x8 block grid of a JPEG file, shared by the JPEG-domain detectors
(:mod:`~artifacts.detectors.manipulation.jpeg_dq` and :mod:`~artifacts.detectors.manipulation.jpeg_grid`).

Both read only JPEG files (``meta["format"] == "JPEG"`` with the quantisation tables that
:func:`artifacts.io.load_image` records) and analyse the luminance on the *stored* 8x8 grid of the
last compression: an image read with its EXIF orientation applied is turned back to the stored
grid first (:func:`artifacts.io.orient_array`, in :func:`stored_grid`) and the map is turned again
at the end (:func:`finish_map`). Anything else (a PNG copy of a JPEG, as CASIA ships; an array
without file metadata; a CMYK JPEG, whose luminance was never stored; pixels resized after
decoding) is ``not_applicable`` with the reason. Greyscale JPEGs use their single channel.

Also here: the orthonormal 8x8 DCT (JPEG's FDCT) of every block, the zig-zag order, and the
generator settings both detectors are calibrated with (:data:`JPEG_CALIBRATION_GENERATOR`).
"""
from __future__ import annotations

import numpy as np

from artifacts.types import Detection

#: generator settings of the calibration recipe (read by artifacts.train.calibration through the
#: class attribute ``calibration_generator``): every photo (host and donor) is a JPEG before the
#: edit, and the result is saved as a JPEG (``calibration_encoding``) with no post-processing in
#: between (a resize, blur or noise of the whole image erases what both methods read)
JPEG_CALIBRATION_GENERATOR = {"host_jpeg": (60, 95), "post_prob": 0.0}


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    d = np.sqrt(2 / 8) * np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


DCT8 = _dct_matrix()


def zigzag(n: int) -> list[tuple[int, int]]:
    """The first ``n`` (row, col) frequencies in JPEG zig-zag order (row = vertical frequency)."""
    cells = [(i, j) for i in range(8) for j in range(8)]
    cells.sort(key=lambda c: (c[0] + c[1], -c[0] if (c[0] + c[1]) % 2 == 0 else c[0]))
    return cells[:n]


def block_dct(y: np.ndarray) -> np.ndarray:
    """Orthonormal 8x8 DCT (JPEG's FDCT) of every block: (8a, 8b) -> (a, b, 8, 8)."""
    a, b = y.shape[0] // 8, y.shape[1] // 8
    blocks = y[: 8 * a, : 8 * b].reshape(a, 8, b, 8).transpose(0, 2, 1, 3)
    return DCT8 @ blocks @ DCT8.T


def stored_grid(image, model: str):
    """``(pixels on the stored grid, orientation to redo, luminance table 8x8, grey)`` or a
    ``not_applicable`` Detection saying why the JPEG analysis cannot run."""
    from artifacts.io import orient_array

    meta = getattr(image, "meta", None) or {}
    fmt = meta.get("format")
    if fmt != "JPEG":
        what = f"a {fmt} file" if fmt else "an image without file metadata (format unknown)"
        return Detection.not_applicable(
            f"not a JPEG file: {model} reads the 8x8 grid and quantisation tables of a JPEG file, got {what}")
    tables = (meta.get("jpeg") or {}).get("qtables") or {}
    if not tables:
        return Detection.not_applicable(f"JPEG without quantisation tables in meta['jpeg']: {model} needs them")
    if meta.get("converted_from") == "CMYK":
        return Detection.not_applicable(f"CMYK/YCCK JPEG: no luminance channel was stored, {model} does not apply")
    table = tables.get("0", tables[min(tables)])
    if len(table) != 64:
        return Detection.not_applicable(f"unexpected quantisation table of {len(table)} entries")
    pixels = image.pixels
    orientation = int(meta.get("exif_orientation", 1)) if meta.get("orientation_applied") else 1
    if orientation != 1:
        pixels = orient_array(pixels, orientation, inverse=True)
    size = meta.get("size")
    if size is not None and [pixels.shape[1], pixels.shape[0]] != list(size):
        return Detection.not_applicable(
            f"pixels ({pixels.shape[1]}x{pixels.shape[0]}) are not the stored grid {size[0]}x{size[1]} "
            "(resized or cropped after decoding)")
    grey = bool(meta.get("grayscale")) or bool((pixels[..., 0] == pixels[..., 1]).all()
                                                 and (pixels[..., 1] == pixels[..., 2]).all())
    return pixels, orientation, np.asarray(table, np.float32).reshape(8, 8), grey


def finish_map(cell_map: np.ndarray, cell_px: int, shape: tuple[int, int], orientation: int,
               smooth: bool) -> np.ndarray:
    """Cell map -> pixel map on the stored grid (edge cells extended), then re-oriented."""
    import cv2

    from artifacts.io import orient_array

    h, w = shape
    hc, wc = -(-h // cell_px), -(-w // cell_px)
    full_cells = np.pad(cell_map, ((0, hc - cell_map.shape[0]), (0, wc - cell_map.shape[1])), mode="edge")
    if smooth:
        full = cv2.resize(full_cells.astype(np.float32), (wc * cell_px, hc * cell_px), interpolation=cv2.INTER_LINEAR)
    else:
        full = np.repeat(np.repeat(full_cells.astype(np.float32), cell_px, 0), cell_px, 1)
    full = full[:h, :w]
    if orientation != 1:
        full = orient_array(full, orientation)
    return np.ascontiguousarray(full, dtype=np.float32)
