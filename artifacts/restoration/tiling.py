"""Tiled inference for image-to-image networks: any image size in bounded memory.

The image is cut into a grid of *cores* of at most ``tile`` x ``tile`` input pixels. Each core is
run with ``overlap`` pixels of real image context on every side (less at the image border,
where the network sees its own zero padding exactly as in a whole-image pass), and only the
core's part of the output is kept, written straight into the output array. Because every output
pixel comes from the one tile whose core holds it, computed with ``overlap`` pixels of context,
the result equals the whole-image pass (up to float summation order) whenever ``overlap`` is at
least the network's receptive-field radius in input pixels (SPAN x4: 21; bicubic: 2), and
differs only near core borders otherwise (RRDBNet's radius is ~350 pixels; the difference is
measured in ``tests/test_sr_backends.py``). No seam blending is needed for that reason, and no
full-size float buffer exists: peak memory is the network's activations on one batch of tiles
plus the uint8 output.

Tiles of equal shape are run ``batch`` at a time. On CUDA, ``precision`` "fp16"/"bf16" runs the
network in that dtype (autocast); on CPU everything stays float32.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

__all__ = ["tile_grid", "run_tiled"]


def tile_grid(h: int, w: int, tile: int, overlap: int) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """Yield ``(core, window)`` boxes ``(y0, y1, x0, x1)``: cores partition the image; a window is
    its core grown by ``overlap`` on each side, clipped to the image."""
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            yield (y0, y1, x0, x1), (max(0, y0 - overlap), min(h, y1 + overlap), max(0, x0 - overlap), min(w, x1 + overlap))


def run_tiled(net: Callable, pixels: np.ndarray, scale: int, *, tile: int | None = 256, overlap: int = 24,
              batch: int = 1, device: str = "cpu", precision: str = "auto") -> tuple[np.ndarray, dict]:
    """Run ``net`` (a float ``B,3,h,w`` -> ``B,3,h*scale,w*scale`` module, RGB in [0, 1]) over an
    ``H,W,3`` uint8/uint16 image; returns the output (same dtype) and a record of the tiling.
    ``tile=None`` (or a tile larger than the image) runs the whole image at once."""
    import torch

    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an H,W,3 image, got shape {pixels.shape}")
    peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
    h, w = pixels.shape[:2]
    tile_size = tile if tile and tile < max(h, w) else max(h, w)
    boxes = list(tile_grid(h, w, tile_size, overlap if tile_size < max(h, w) else 0))
    out = np.empty((h * scale, w * scale, 3), dtype=pixels.dtype)
    dtype = _autocast_dtype(device, precision)
    groups: dict[tuple[int, int], list] = {}
    for core, window in boxes:
        groups.setdefault((window[1] - window[0], window[3] - window[2]), []).append((core, window))
    with torch.inference_mode():
        for group in groups.values():
            for i in range(0, len(group), max(1, batch)):
                chunk = group[i:i + max(1, batch)]
                x = np.stack([pixels[wy0:wy1, wx0:wx1] for _, (wy0, wy1, wx0, wx1) in chunk])
                t = torch.from_numpy(x.astype(np.float32) / peak).permute(0, 3, 1, 2).to(device)
                with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                    y = net(t)
                y = (y.float().clamp_(0, 1) * peak).round_().permute(0, 2, 3, 1).cpu().numpy().astype(pixels.dtype)
                for k, ((cy0, cy1, cx0, cx1), (wy0, _, wx0, _)) in enumerate(chunk):
                    oy, ox = (cy0 - wy0) * scale, (cx0 - wx0) * scale
                    out[cy0 * scale:cy1 * scale, cx0 * scale:cx1 * scale] = \
                        y[k, oy:oy + (cy1 - cy0) * scale, ox:ox + (cx1 - cx0) * scale]
    record = {"tile": None if len(boxes) == 1 else tile_size, "overlap": overlap if len(boxes) > 1 else 0,
              "tiles": len(boxes), "batch": batch, "precision": "fp32" if dtype is None else str(dtype).split(".")[-1]}
    return out, record


def _autocast_dtype(device: str, precision: str):
    import torch

    if precision not in ("auto", "fp32", "fp16", "bf16"):
        raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
    if not str(device).startswith("cuda") or precision == "fp32":
        return None
    if precision == "auto":
        return torch.float16
    return torch.float16 if precision == "fp16" else torch.bfloat16
