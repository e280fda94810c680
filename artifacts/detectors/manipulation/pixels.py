"""Pixel-level helpers shared by the manipulation detectors: luminance and clipped pixels.

Both take ``pixels`` as :attr:`artifacts.io.ImageData.pixels` holds them (H x W x 3, uint8 or
uint16; a greyscale image has its channel replicated) and work on the 8-bit scale, so that
thresholds in grey levels mean the same for 8- and 16-bit files. The packaged calibrations were
fitted with exactly these formulas: a change here changes every detector's output.
"""
from __future__ import annotations

from typing import Literal

import numpy as np


def luminance(pixels: np.ndarray, grey: bool = False) -> np.ndarray:
    """BT.601 (JPEG) luminance ``0.299 R + 0.587 G + 0.114 B`` on the 8-bit scale (0..255), float32.

    uint16 values are scaled by 255 / 65535. With ``grey`` the first channel is returned as it is
    (scaled), which is exact for a greyscale image; without it the weighted sum is taken even when
    the three channels are equal (float32 rounding can then differ from the channel by an ulp).
    """
    scale = np.float32(255.0 / 65535.0 if pixels.dtype == np.uint16 else 1.0)
    if grey:
        return pixels[..., 0].astype(np.float32) * scale
    rgb = pixels.astype(np.float32)
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114) * scale


def clipped(pixels: np.ndarray, black: Literal["all", "any"] = "all") -> np.ndarray:
    """Per pixel: True where it is clipped, i.e. any channel is at the white point (255, or 65535
    for uint16) or the pixel is black.

    ``black="all"``: black means all channels at 0 (no noise survives there). ``black="any"``: a
    single channel at 0 counts, as the JPEG models need (the colour conversion clipped that
    channel, so the decoded pixels no longer follow the stored coefficients).
    """
    if black not in ("all", "any"):
        raise ValueError(f"black must be 'all' or 'any', got {black!r}")
    top = 65535 if pixels.dtype == np.uint16 else 255
    high = pixels.max(axis=-1)
    low = high if black == "all" else pixels.min(axis=-1)
    return (high >= top) | (low == 0)
