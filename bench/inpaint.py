"""Inpainting speed: median seconds per call of every method at 0.25 MP and 1 MP with a 5 % hole.

Input: the cat photo shipped with scikit-image (``chelsea``, fur texture), resized to 0.25 and
1 MP keeping its aspect, with one square hole of 5 % of the pixels over the fur, off-centre.
Methods run interleaved, repeat by repeat, after one warm-up call each, so machine noise hits them
alike. Also prints the RMSE inside the hole (against the original) next to the RMSE of leaving it
black. Timings only; on a shared machine compare ratios, not absolute rates.

    python bench/inpaint.py [--repeat 3] [--megapixels 0.25 1] [--methods telea ns biharmonic exemplar]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from artifacts.restoration.inpaint import METHODS, inpaint


def case(megapixels: float) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    from skimage import data

    photo = data.chelsea()
    scale = (megapixels * 1e6 / (photo.shape[0] * photo.shape[1])) ** 0.5
    image = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    h, w = image.shape[:2]
    s = int(round((0.05 * h * w) ** 0.5))
    mask = np.zeros((h, w), bool)
    mask[h // 2: h // 2 + s, w // 8: w // 8 + s] = True
    return image, mask


def rmse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64))[mask] ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--megapixels", type=float, nargs="+", default=[0.25, 1.0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    for mp in args.megapixels:
        image, mask = case(mp)
        holed = image.copy()
        holed[mask] = 0
        outs = {m: inpaint(holed, mask, m) for m in args.methods}  # warm-up
        times: dict[str, list[float]] = {m: [] for m in args.methods}
        for _ in range(args.repeat):
            for m in args.methods:
                t0 = time.perf_counter()
                inpaint(holed, mask, m)
                times[m].append(time.perf_counter() - t0)
        h, w = mask.shape
        print(f"\n{w}x{h} ({h * w / 1e6:.2f} MP), hole {mask.mean():.1%}, "
              f"{args.repeat} repeats; RMSE if left black: {rmse(holed, image, mask):.1f}")
        print(f"{'method':<12}{'median s':>10}{'RMSE in hole':>14}")
        for m in args.methods:
            print(f"{m:<12}{statistics.median(times[m]):>10.3f}{rmse(outs[m], image, mask):>14.1f}")


if __name__ == "__main__":
    main()
