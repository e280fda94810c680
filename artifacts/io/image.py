"""Reading and writing image files: the decoding policy of the toolkit.

Every detector sees pixels through :func:`load_image`, so the rules below decide
what "the pixels of a file" mean for forensic analysis.  The guiding principle
is to hand over the values *as stored* and to record every transformation in
``ImageData.meta`` (a JSON-serialisable dict).

Decoding policy
---------------
Formats
    JPEG (including multi-picture MPO files, reported as ``"JPEG"``), PNG,
    TIFF, WebP, BMP, GIF and AVIF are decoded with Pillow.  The format is
    decided from the file's leading bytes, never from its extension, and Pillow
    is only offered the plugin matching that signature (no EPS/PSD/ICO/...).
    HEIC/HEIF (and AVIF when Pillow lacks AVIF support) go through the optional
    ``pillow_heif`` package; without it the error says
    ``install the [heif] extra: pip install "artifacts-toolkit[heif]"``.
    Multi-frame files (GIF, APNG, multi-page TIFF, MPO) yield their first
    frame; ``meta["n_frames"]`` says how many there are.
Errors
    Every problem becomes :class:`ImageReadError`, a ``ValueError`` whose
    message is one line, ``"<file name>: <reason>"``; the reasons are
    ``file not found``, ``is a directory, not an image file``, ``permission
    denied``, ``cannot read file (<detail>)``, ``empty file (0 bytes)``,
    ``not a recognised image format``, ``truncated or corrupt image data
    (<detail>)``, ``image too large: ...``, ``oversized PNG text chunk ...``,
    ``not enough memory to decode the image``, ``HEIF/AVIF image needs
    pillow_heif: ...`` and ``unsupported ...``.
    Truncated files are never "repaired": Pillow's ``LOAD_TRUNCATED_IMAGES``
    is forced off while a file is read.
Decompression bombs
    ``width * height`` from the header is checked *before* any pixel is
    decoded, against ``max_pixels`` (default: the ``ARTIFACTS_MAX_PIXELS``
    environment variable, else 200 000 000).  Pillow's own global limit is
    replaced by this check only while a file is read and is restored
    afterwards (Pillow's setting is process-wide: other code that decodes
    with Pillow in another thread at that moment runs without Pillow's
    limit).  Oversized PNG text chunks are rejected too.
Orientation
    The EXIF orientation is applied by default so that results line up with
    what image viewers show.  ``meta["exif_orientation"]`` is the stored tag
    (1-8; 1 when absent or invalid) and ``meta["orientation_applied"]`` is
    True only when the pixel grid was actually rotated or flipped.  Pass
    ``apply_orientation=False`` to keep the stored grid (JPEG 8x8-grid
    analyses need it).  ``meta["size"]`` is always the stored ``[w, h]``.
Bit depth
    8-bit sources give ``uint8``; 16-bit PNG and TIFF (grey, grey+alpha, RGB,
    RGBA) give ``uint16`` with the stored values.  Pillow reduces 16-bit colour
    PNG/TIFF to 8 bits, so those are decoded with OpenCV instead.
    ``meta["bit_depth"]`` is the stored bits per sample (1, 2, 4, 8, 16, 32).
    32-bit integer images are kept as ``uint16`` when all values fit in
    0..65535 and rejected otherwise; 32-bit float images are accepted when all
    values lie in [0, 1] and then scaled to ``uint16`` (x 65535, recorded as
    ``meta["scaled_from"] = "F"``); other float images are rejected.
Colour modes
    Output pixels are always ``H, W, 3`` RGB.  Palette images become RGB (RGBA
    when the palette has transparency).  Greyscale (``1``, ``L``, ``LA``,
    ``I;16``, ``I``, ``F``) is replicated to three channels with
    ``meta["grayscale"] = True``.  CMYK (and YCCK, which Pillow presents as
    CMYK) is converted to RGB through the embedded ICC profile when there is
    one, else with Pillow's formula; ``meta["converted_from"] = "CMYK"`` and
    ``meta["cmyk_conversion"]`` (``"icc"`` or ``"pillow"``) record it.
Alpha
    Alpha is split off into ``ImageData.alpha`` (same dtype as the pixels) and
    ``meta["has_alpha"]`` is True.  Colour values are never composited onto a
    background: compositing would change the values forensics relies on.
ICC profiles
    Pixel values are not colour-managed by default.  ``meta["icc_profile"]``
    is ``{"present": bool, "description": str | None}``.  ``convert_icc=True``
    converts 8-bit images to sRGB with ``PIL.ImageCms`` and sets
    ``meta["icc_converted"]``; 16-bit images are left unconverted (ImageCms
    cannot transform them) with the reason in ``meta["icc_note"]``.
Metadata
    ``format``, ``mode`` (Pillow's mode as opened), ``size``, ``bit_depth``,
    ``file_size``, ``grayscale``, ``has_alpha``, ``exif`` (presence only),
    ``exif_orientation``, ``orientation_applied``, ``icc_profile``,
    ``n_frames``; for JPEG ``jpeg = {"qtables": {"0": [64 ints], ...},
    "subsampling": "4:2:0" | "4:2:2" | "4:4:4" | ..., "progressive": bool}``
    with the tables in natural (row-major) order as Pillow reports them; for
    PNG ``png_text = {key: value}`` with each value cut to 1000 characters.
Arrays
    ``pixels`` (and ``alpha``) are C-contiguous, writable numpy arrays owned
    by the caller.

Layout
------
This module holds the public reading API (:class:`ImageData`,
:func:`load_image`, :func:`image_info`) and re-exports the rest:
``_header`` recognises the format, opens it safely and enforces the pixel
limit; ``_decode`` turns the opened image into pixels and ``meta``
(:func:`pil_to_arrays`); ``_encode`` writes files (:func:`save_image`);
``_errors`` defines :class:`ImageReadError` and its reasons.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Union

import numpy as np

from ._decode import decode, pil_to_arrays
from ._encode import save_image
from ._errors import ImageReadError, decoder_reason, os_reason
from ._header import (
    DEFAULT_MAX_PIXELS,
    HEAD_SIZE,
    HEIF_INSTALL_HINT,
    check_pixels,
    format_name,
    open_pil,
    pillow_guard,
    resolve_max_pixels,
    sniff_or_fail,
    stored_bit_depth,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HEIF_INSTALL_HINT",
    "ImageData",
    "ImageReadError",
    "image_info",
    "load_image",
    "pil_to_arrays",
    "save_image",
]

PathOrBytes = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


@dataclass(eq=False, repr=False)
class ImageData:
    """A decoded image in the toolkit's edge convention.

    ``pixels`` is ``H, W, 3`` RGB, ``uint8`` or ``uint16``; ``alpha`` is ``H, W``
    with the same dtype when the source had an alpha channel, else None.
    ``meta`` holds JSON-serialisable facts about the source (see the module
    docstring); ``path`` is the file the image came from, if any.
    """

    pixels: np.ndarray
    meta: dict = field(default_factory=dict)
    path: str | None = None
    alpha: np.ndarray | None = None

    def __post_init__(self) -> None:
        p = self.pixels
        if not isinstance(p, np.ndarray) or p.ndim != 3 or p.shape[2] != 3:
            shape = getattr(p, "shape", type(p).__name__)
            raise ValueError(f"ImageData.pixels must be an H,W,3 RGB array, got {shape}")
        if p.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"ImageData.pixels must be uint8 or uint16, got {p.dtype}")
        a = self.alpha
        if a is not None and (not isinstance(a, np.ndarray) or a.shape != p.shape[:2] or a.dtype != p.dtype):
            raise ValueError(
                f"ImageData.alpha must be an H,W array of dtype {p.dtype} matching the pixels "
                f"{p.shape[:2]}, got {getattr(a, 'shape', None)} {getattr(a, 'dtype', None)}"
            )

    @property
    def height(self) -> int:
        """Number of rows of ``pixels``."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Number of columns of ``pixels``."""
        return int(self.pixels.shape[1])

    @property
    def bit_depth(self) -> int:
        """Bits per sample of the decoded pixels: 8 or 16 (see ``meta["bit_depth"]`` for the source)."""
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def is_grayscale(self) -> bool:
        """True when the source was greyscale (its channel was replicated to RGB)."""
        return bool(self.meta.get("grayscale", False))

    def __repr__(self) -> str:
        alpha = ", alpha" if self.alpha is not None else ""
        return f"ImageData({self.width}x{self.height}, {self.pixels.dtype}{alpha}, path={self.path!r})"


def load_image(
    src: PathOrBytes,
    *,
    max_pixels: int | None = None,
    apply_orientation: bool = True,
    convert_icc: bool = False,
) -> ImageData:
    """Decode an image file (path or bytes) following the module's decoding policy.

    Raises :class:`ImageReadError` (one line, naming the file) on any problem
    with the file; ``TypeError`` when ``src`` is not a path or bytes.
    """
    name, path, data, kind = _read_source(src)
    limit = resolve_max_pixels(max_pixels)
    with pillow_guard():
        im = open_pil(io.BytesIO(data), name, kind)
        try:
            check_pixels(im, limit, name)
            rgb, alpha, meta = decode(im, data, apply_orientation=apply_orientation, convert_icc=convert_icc)
            return ImageData(pixels=rgb, meta=meta, path=path, alpha=alpha)
        except ImageReadError:
            raise
        except Exception as exc:  # every decoder failure becomes one readable line
            raise ImageReadError(name, decoder_reason(exc)) from None
        finally:
            im.close()


def image_info(src: PathOrBytes) -> dict[str, Any]:
    """Header-level facts about an image without decoding its pixels.

    Returns ``{"format", "mode", "size": [w, h], "n_pixels", "bit_depth",
    "file_size"}``.  Raises :class:`ImageReadError` like :func:`load_image`
    (but applies no size limit: use ``n_pixels`` to decide).
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        return _info_from_stream("<bytes>", io.BytesIO(data), data[:HEAD_SIZE], len(data))
    name = _source_name(src)
    try:
        with open(name, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(HEAD_SIZE)
            fh.seek(0)
            return _info_from_stream(name, fh, head, size)
    except OSError as exc:
        raise ImageReadError(name, os_reason(exc)) from None


# --------------------------------------------------------------------------
# Helpers


def _source_name(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fsdecode(os.fspath(src))
    raise TypeError(f"expected a path (str/os.PathLike) or bytes, got {type(src).__name__}")


def _read_source(src: PathOrBytes) -> tuple[str, str | None, bytes, str]:
    """Return ``(display name, path or None, file bytes, format family)``.

    Only the first bytes are read before the signature is checked, so passing a
    huge non-image file by mistake costs nothing.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        return "<bytes>", None, data, sniff_or_fail(data[:HEAD_SIZE], "<bytes>")
    name = _source_name(src)
    try:
        with open(name, "rb") as fh:
            head = fh.read(HEAD_SIZE)
            kind = sniff_or_fail(head, name)
            data = head + fh.read()
    except OSError as exc:
        raise ImageReadError(name, os_reason(exc)) from None
    return name, name, data, kind


def _info_from_stream(name: str, stream: BinaryIO, head: bytes, file_size: int) -> dict[str, Any]:
    kind = sniff_or_fail(head, name)
    with pillow_guard():
        im = open_pil(stream, name, kind)
        try:
            width, height = im.size
            return {
                "format": format_name(im),
                "mode": im.mode,
                "size": [width, height],
                "n_pixels": width * height,
                "bit_depth": stored_bit_depth(im, head),
                "file_size": file_size,
            }
        finally:
            im.close()
