"""Pictures of results: colourised heatmaps, overlays with mask outlines, contact sheets.

Inputs are edge arrays (H,W,3 uint8/uint16 images, H,W float heatmaps in [0, 1], bool masks);
outputs are H,W,3 uint8 RGB ready to save.
"""
from __future__ import annotations

import numpy as np


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Display copy of an edge image (uint16 -> uint8, grey -> RGB)."""
    if pixels.dtype == np.uint16:
        pixels = (pixels.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    elif pixels.dtype != np.uint8:
        pixels = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    return np.ascontiguousarray(pixels)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """Heatmap in [0, 1] -> RGB (perceptually ordered 'inferno' colour map)."""
    import cv2

    grey = (np.clip(heatmap, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)[..., ::-1].copy()


def overlay(image: np.ndarray, heatmap: np.ndarray, mask: np.ndarray | None = None, opacity: float = 0.5) -> np.ndarray:
    """Blend the colourised heatmap over the image and outline ``mask`` in cyan."""
    base = to_uint8(image).astype(np.float32)
    heat = colorize(heatmap).astype(np.float32)
    weight = opacity * np.clip(heatmap, 0.0, 1.0)[..., None]
    out = (base * (1.0 - weight) + heat * weight + 0.5).astype(np.uint8)
    return outline(out, mask)


def outline(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``image`` (H,W,3 uint8) with the outer contours of ``mask`` drawn in cyan, in place."""
    import cv2

    if mask is not None and mask.any():
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(image, contours, -1, (0, 255, 255), max(1, round(max(image.shape[:2]) / 400)))
    return image


def contact_sheet(rows: list[list[np.ndarray]], labels: list[str] | None = None, height: int = 160) -> np.ndarray:
    """Grid of images (each row resized to ``height``), with an optional text label per row."""
    import cv2

    lines = []
    for i, row in enumerate(rows):
        tiles = []
        for img in row:
            img = to_uint8(img)
            w = max(1, round(img.shape[1] * height / img.shape[0]))
            tiles.append(cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA))
            tiles.append(np.full((height, 4, 3), 255, np.uint8))
        line = np.concatenate(tiles[:-1], axis=1)
        if labels:
            text = labels[i][:120]
            (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            if tw + 8 > line.shape[1]:  # the label is wider than the row: widen the row, not cut the text
                line = np.pad(line, ((0, 0), (0, tw + 8 - line.shape[1]), (0, 0)), constant_values=255)
            band = np.full((22, line.shape[1], 3), 255, np.uint8)
            cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            line = np.concatenate([band, line], axis=0)
        lines.append(line)
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, 6), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    return np.concatenate(padded, axis=0)


def before_after(before: np.ndarray, after: np.ndarray, mask: np.ndarray | None = None,
                 max_side: int = 1024) -> np.ndarray:
    """Input | result side by side at the result's scale (the input enlarged by nearest neighbour,
    so super-resolution is compared with plain pixels), the repaired ``mask`` outlined on both;
    the pair is shrunk so that its long side is at most ``max_side``."""
    import cv2

    a, b = to_uint8(before), to_uint8(after)
    h, w = b.shape[:2]
    if a.shape[:2] != (h, w):
        a = cv2.resize(a, (w, h), interpolation=cv2.INTER_NEAREST)
    if mask is not None and mask.any():
        m = mask if mask.shape == (h, w) else cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        a, b = outline(a.copy(), m), outline(b.copy(), m)
    gap = np.full((h, max(2, w // 100), 3), 255, np.uint8)
    pair = np.concatenate([a, gap, b], axis=1)
    f = max_side / max(pair.shape[:2])
    if f < 1:
        pair = cv2.resize(pair, (max(1, round(pair.shape[1] * f)), max(1, round(pair.shape[0] * f))),
                          interpolation=cv2.INTER_AREA)
    return pair
