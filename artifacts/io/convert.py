"""Conversion between edge formats and model tensors: the one place it happens.

Edge format
    numpy ``H, W, 3`` RGB arrays, ``uint8`` or ``uint16`` (files, PIL images and
    user arrays are all brought to this form as :class:`ImageData`).
Model format
    torch ``float32`` ``B, C, H, W`` RGB with values in [0, 1].

Rules applied here:

* ``uint8`` maps to [0, 1] by ``/ 255``, ``uint16`` by ``/ 65535``, bool to 0/1.
* Float input must already lie in [0, 1]; NaN, infinities or values outside
  the range raise ``ValueError`` (nothing is silently clipped on the way *in*).
  Float arrays/tensors given to :func:`as_images` are quantised to ``uint8``
  (``round(x * 255)``); ``meta["dtype"]`` keeps the original type.
* On the way *out* (:func:`from_tensor`) model outputs are clipped to [0, 1]
  before quantising, since networks overshoot slightly; NaN still raises.
* numpy arrays are channels-last, torch tensors channels-first.

torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from PIL import Image

from ._decode import owned
from .image import ImageData, load_image, pil_to_arrays

if TYPE_CHECKING:
    import torch

__all__ = ["ARRAY_SHAPES", "TENSOR_SHAPES", "as_images", "from_tensor", "to_float", "to_tensor"]

ARRAY_SHAPES = "H,W | H,W,1 | H,W,3 | H,W,4 | N,H,W,1 | N,H,W,3 | N,H,W,4 (numpy arrays are channels-last)"
TENSOR_SHAPES = "C,H,W | B,C,H,W with C in 1, 3, 4 (tensors are channels-first)"
_CHANNELS = (1, 3, 4)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """Return ``pixels`` as a new float32 array in [0, 1] with the same shape.

    ``uint8`` is divided by 255, ``uint16`` by 65535, bool becomes 0/1 and
    floats are checked to lie in [0, 1] (ValueError otherwise).
    """
    arr = np.asarray(pixels)
    if arr.dtype == np.uint8:
        return np.divide(arr, 255, dtype=np.float32)
    if arr.dtype == np.uint16:
        return np.divide(arr, 65535, dtype=np.float32)
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        _check_unit_range(arr, "pixels")
        return arr.astype(np.float32)
    raise TypeError(f"to_float accepts uint8, uint16, bool or float pixels, got {arr.dtype}")


def to_tensor(images: np.ndarray | ImageData | Sequence[np.ndarray | ImageData]) -> "torch.Tensor":
    """Stack edge images into a float32 ``B, C, H, W`` tensor in [0, 1].

    Accepts one ``H, W, C`` (or ``H, W``) array, an ``N, H, W, C`` array, an
    :class:`ImageData`, or a list of those with identical shapes.
    """
    import torch

    arrays = _hwc_list(images)
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ValueError(f"to_tensor needs images of one size to batch them, got shapes {shapes}")
    batch = np.stack([to_float(a) for a in arrays])
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def from_tensor(t: "torch.Tensor") -> np.ndarray:
    """Convert a ``C, H, W`` or ``B, C, H, W`` tensor to ``H, W, C`` (or ``N, H, W, C``) uint8.

    Float values are clipped to [0, 1] and rounded (``x * 255``); NaN or
    infinite values raise ValueError.  uint8 tensors are only transposed and
    bool tensors become 0/255.
    """
    import torch

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"from_tensor expects a torch.Tensor, got {type(t).__name__}")
    if t.ndim not in (3, 4):
        raise ValueError(f"from_tensor expects C,H,W or B,C,H,W, got shape {tuple(t.shape)}")
    x = t.detach().cpu()
    if x.dtype == torch.uint8:
        arr = x.numpy()
    elif x.dtype == torch.bool:
        arr = x.numpy().astype(np.uint8) * 255
    elif x.is_floating_point():
        values = x.float().numpy()
        if not np.isfinite(values).all():
            raise ValueError("from_tensor: tensor contains NaN or infinite values")
        arr = np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    else:
        raise TypeError(f"from_tensor accepts float, uint8 or bool tensors, got {x.dtype}")
    axes = (1, 2, 0) if arr.ndim == 3 else (0, 2, 3, 1)
    return np.ascontiguousarray(arr.transpose(axes))


def as_images(x: Any) -> list[ImageData]:
    """Normalise any supported input to a list of :class:`ImageData`.

    Accepts a path (str / os.PathLike) or bytes (decoded by
    :func:`~artifacts.io.load_image`), an :class:`ImageData`, a numpy array
    (``ARRAY_SHAPES``; uint8, uint16, bool or float in [0, 1]), a PIL image, a
    torch tensor (``TENSOR_SHAPES``; float in [0, 1], uint8 or bool), or a
    list/tuple of any of these (flattened in order).  Alpha is split off,
    greyscale replicated to RGB and floats quantised to uint8; ``meta``
    records ``source`` ("file", "array", "pil", "tensor"), the original
    ``dtype`` and ``shape``, and ``index`` for items of a batch.  PIL images
    are taken as they are (no EXIF orientation).
    """
    if isinstance(x, ImageData):
        return [x]
    if isinstance(x, (str, os.PathLike, bytes, bytearray, memoryview)):
        image = load_image(x)
        image.meta.setdefault("source", "file")
        return [image]
    if isinstance(x, np.ndarray):
        return _from_array(x)
    if isinstance(x, Image.Image):
        return [_from_pil(x)]
    if _is_tensor(x):
        return _from_tensor_input(x)
    if isinstance(x, (list, tuple)):
        return [image for item in x for image in as_images(item)]
    raise TypeError(
        f"as_images cannot use a {type(x).__name__}; pass a path, bytes, numpy array, "
        "PIL image, torch tensor, ImageData, or a list of these"
    )


# --------------------------------------------------------------------------
# Helpers


def _check_unit_range(arr: np.ndarray, what: str) -> None:
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(
            f"{what}: float values must lie in [0, 1], got range [{float(arr.min()):.4g}, {float(arr.max()):.4g}]; "
            "divide 0-255 data by 255 or pass uint8"
        )


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _hwc_list(images: Any) -> list[np.ndarray]:
    """Flatten ``to_tensor`` input into a list of H,W,C arrays."""
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    out: list[np.ndarray] = []
    for item in items:
        arr = item.pixels if isinstance(item, ImageData) else item
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"to_tensor accepts numpy arrays or ImageData, got {type(item).__name__}")
        if arr.ndim == 2:
            out.append(arr[..., None])
        elif arr.ndim == 3:
            out.append(arr)
        elif arr.ndim == 4:
            out.extend(arr)
        else:
            raise ValueError(f"to_tensor accepts H,W / H,W,C / N,H,W,C arrays, got shape {arr.shape}")
    if not out:
        raise ValueError("to_tensor needs at least one image")
    return out


def _from_array(arr: np.ndarray) -> list[ImageData]:
    meta = {"source": "array", "dtype": str(arr.dtype), "shape": list(arr.shape)}
    if arr.ndim == 4 and arr.shape[3] in _CHANNELS:
        return [_from_hwc(item, {**meta, "index": i}, "array") for i, item in enumerate(arr)]
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in _CHANNELS):
        return [_from_hwc(arr, meta, "array")]
    hint = " (channel-first data: transpose with arr.transpose(1, 2, 0))" if arr.ndim == 3 else ""
    raise ValueError(f"unsupported array shape {arr.shape}; accepted shapes: {ARRAY_SHAPES}{hint}")


def _from_tensor_input(t: "torch.Tensor") -> list[ImageData]:
    meta = {"source": "tensor", "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}
    if t.ndim not in (3, 4) or t.shape[-3] not in _CHANNELS:
        raise ValueError(f"unsupported tensor shape {tuple(t.shape)}; accepted shapes: {TENSOR_SHAPES}")
    x = t.detach().cpu()
    if x.is_floating_point():
        x = x.float()
    arr = x.numpy()
    if arr.ndim == 3:
        return [_from_hwc(arr.transpose(1, 2, 0), meta, "tensor")]
    return [_from_hwc(item.transpose(1, 2, 0), {**meta, "index": i}, "tensor") for i, item in enumerate(arr)]


def _from_hwc(a: np.ndarray, meta: dict[str, Any], what: str) -> ImageData:
    """One H,W or H,W,C (C in 1,3,4) array -> ImageData following the edge conventions."""
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        _check_unit_range(a, f"{what} values")
        a = np.rint(a.astype(np.float64) * 255).astype(np.uint8)
    elif a.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"{what} dtype {a.dtype} is not supported: use uint8, uint16, bool or float in [0, 1] (cast explicitly)"
        )
    if a.ndim == 2:
        a = a[..., None]
    channels = a.shape[2]
    # owned() copies views: never alias the caller's array
    alpha = owned(a[..., 3]) if channels == 4 else None
    rgb = np.repeat(a[..., :1], 3, axis=2) if channels == 1 else owned(a[..., :3])
    meta = {
        **meta,
        "size": [int(a.shape[1]), int(a.shape[0])],
        "bit_depth": 16 if a.dtype == np.uint16 else 8,
        "grayscale": channels == 1,
        "has_alpha": alpha is not None,
    }
    return ImageData(pixels=rgb, meta=meta, alpha=alpha)


def _from_pil(im: Image.Image) -> ImageData:
    rgb, alpha, notes = pil_to_arrays(im)
    meta = {
        "source": "pil",
        "mode": im.mode,
        "format": im.format,
        "size": [im.width, im.height],
        "bit_depth": 16 if rgb.dtype == np.uint16 else 8,
        **notes,
        "has_alpha": alpha is not None,
    }
    return ImageData(pixels=rgb, meta=meta, alpha=alpha)
