"""Header stage of reading: recognise the format, open the file safely, check its size.

Nothing here decodes pixels.  The format family comes from the file's leading
bytes (:func:`sniff`), Pillow is offered only the plugins matching it
(:func:`open_pil`), and the header dimensions are checked against the pixel
limit (:func:`check_pixels`) before anything is decoded.  :func:`pillow_guard`
replaces Pillow's global bomb limit by that check and forbids truncated loads
for as long as a file is being read.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from PIL import Image, ImageFile

from ._errors import ImageReadError, decoder_reason

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "GREY_MODES_16",
    "HEAD_SIZE",
    "HEIF_INSTALL_HINT",
    "MAX_PIXELS_ENV",
    "check_pixels",
    "format_name",
    "open_pil",
    "pillow_guard",
    "png_ihdr",
    "resolve_max_pixels",
    "sniff",
    "sniff_or_fail",
    "stored_bit_depth",
]

DEFAULT_MAX_PIXELS = 200_000_000
MAX_PIXELS_ENV = "ARTIFACTS_MAX_PIXELS"
HEIF_INSTALL_HINT = 'install the [heif] extra: pip install "artifacts-toolkit[heif]"'
HEAD_SIZE = 64  # leading bytes that hold every signature and the PNG IHDR chunk
GREY_MODES_16 = ("I;16", "I;16L", "I;16B", "I;16N")

# Signature kind -> Pillow plugins allowed to open it.
_PIL_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": ("JPEG", "MPO"),
    "PNG": ("PNG",),
    "TIFF": ("TIFF",),
    "WEBP": ("WEBP",),
    "BMP": ("BMP",),
    "GIF": ("GIF",),
    "AVIF": ("AVIF", "HEIF"),
    "HEIF": ("HEIF",),
}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


# --------------------------------------------------------------------------
# Signatures


def sniff(head: bytes) -> str | None:
    """Format family from the leading bytes, or None when it is not an image we read."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:2] == b"BM":
        return "BMP"
    if head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
        if brands & _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def sniff_or_fail(head: bytes, name: str) -> str:
    """Like :func:`sniff`, but an empty or unrecognised file raises :class:`ImageReadError`."""
    if not head:
        raise ImageReadError(name, "empty file (0 bytes)")
    kind = sniff(head)
    if kind is None:
        raise ImageReadError(name, "not a recognised image format")
    return kind


# --------------------------------------------------------------------------
# Pixel limit


def resolve_max_pixels(max_pixels: int | None) -> int:
    """The limit to apply: the argument, else ``ARTIFACTS_MAX_PIXELS``, else the default."""
    if max_pixels is not None:
        if max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {max_pixels}")
        return int(max_pixels)
    raw = os.environ.get(MAX_PIXELS_ENV)
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw.replace("_", "")))
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{MAX_PIXELS_ENV} must be a positive number of pixels, got {raw!r}")
    return value


def check_pixels(im: Image.Image, limit: int, name: str) -> None:
    """Reject an opened image whose header size (or tile size) exceeds ``limit`` pixels."""
    width, height = im.size
    _check_size(width, height, limit, name)
    tile = getattr(im, "_tile_size", None)
    if tile and tuple(tile) != (width, height):
        _check_size(int(tile[0]), int(tile[1]), limit, name)


def _check_size(width: int, height: int, limit: int, name: str) -> None:
    if width * height > limit:
        raise ImageReadError(
            name,
            f"image too large: {width}x{height} = {width * height / 1e6:.1f} MP exceeds the limit "
            f"of {limit / 1e6:g} MP (raise it with {MAX_PIXELS_ENV})",
        )


# --------------------------------------------------------------------------
# Pillow state and opening


_guard_lock = threading.Lock()
_guard_depth = 0
_guard_saved: tuple[int | None, bool] = (None, False)


@contextmanager
def pillow_guard() -> Iterator[None]:
    """Swap Pillow's global bomb limit for our own check and forbid truncated loads.

    Nested and concurrent uses share one override; the original values come
    back when the last user leaves.
    """
    global _guard_depth, _guard_saved
    with _guard_lock:
        if _guard_depth == 0:
            _guard_saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
            Image.MAX_IMAGE_PIXELS = None
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        _guard_depth += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_depth -= 1
            if _guard_depth == 0:
                Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = _guard_saved


def _register_heif_opener(name: str) -> None:
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except ImportError:
        raise ImageReadError(name, f"HEIF/AVIF image needs pillow_heif: {HEIF_INSTALL_HINT}") from None
    pillow_heif.register_heif_opener()


def _plugins_for(kind: str, name: str) -> list[str]:
    Image.init()
    wanted = _PIL_FORMATS[kind]
    if kind in ("HEIF", "AVIF") and not any(f in Image.OPEN for f in wanted):
        _register_heif_opener(name)
    return [f for f in wanted if f in Image.OPEN]


def open_pil(stream: BinaryIO, name: str, kind: str) -> ImageFile.ImageFile:
    """Open (header only) with the Pillow plugin matching the signature ``kind``.

    Call it inside :func:`pillow_guard`; every failure is an :class:`ImageReadError`.
    """
    try:
        return Image.open(stream, formats=_plugins_for(kind, name))
    except ImageReadError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageReadError(name, f"truncated or corrupt image data (unreadable {kind} header)") from None
    except Exception as exc:
        raise ImageReadError(name, decoder_reason(exc)) from None


# --------------------------------------------------------------------------
# Header facts


def format_name(im: Image.Image) -> str | None:
    """The reported format: Pillow's, except that multi-picture JPEG (MPO) is ``"JPEG"``."""
    return "JPEG" if im.format == "MPO" else im.format


def png_ihdr(head: bytes) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` from a PNG's IHDR chunk, or None when ``head`` is cut short."""
    return (head[24], head[25]) if len(head) > 25 else None


def stored_bit_depth(im: Image.Image, head: bytes) -> int:
    """Bits per sample as stored in the file (``head``: its leading bytes)."""
    ihdr = png_ihdr(head) if im.format == "PNG" else None
    if ihdr is not None:
        return ihdr[0]
    if im.format == "TIFF":
        bits = getattr(im, "tag_v2", {}).get(258)
        if bits:
            return int(max(bits) if isinstance(bits, tuple) else bits)
    if im.mode == "1":
        return 1
    if im.mode in GREY_MODES_16:
        return 16
    if im.mode in ("I", "F"):
        return 32
    return 8
