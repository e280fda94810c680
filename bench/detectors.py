"""Detector speed at ~1 megapixel: median seconds per image and images/s for every model of a task.

Inputs: generator photos (shipped with scikit-image) resized to ~1 MP and stored as JPEG q90 (so
JPEG-aware detectors apply), decoded once; only ``detect_batch`` is timed, one image per call,
after one warm-up call. All models run in the same process, interleaved image by image, so
machine noise hits them alike.

    python bench/detectors.py [--task manipulation] [--model NAME ...] [--n 12] [--megapixels 1.0] [--device cpu]
                              [--threads N] [--json OUT.json]

Default models: every model of the task whose weights are found offline (or that needs none).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

import artifacts
from artifacts.io import encode_image, load_image


def make_images(n: int, megapixels: float) -> list:
    import cv2

    from artifacts.datasets.manipulation import generate

    images = []
    for i in range(n):
        img = generate(2000 + i).image
        scale = (megapixels * 1e6 / (img.shape[0] * img.shape[1])) ** 0.5
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        images.append(load_image(encode_image(img, ".jpg", quality=90)))
    return images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="manipulation")
    ap.add_argument("--model", action="append", help="model to time (repeatable; default: all usable offline)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--megapixels", type=float, default=1.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    args = ap.parse_args()
    from artifacts.eval.runner import usable_models

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    images = make_images(args.n, args.megapixels)
    names = [artifacts.model_info(m, task=args.task).full_name for m in args.model] if args.model else usable_models(args.task)
    models = {name: artifacts.create(name, device=args.device) for name in names}
    for det in models.values():
        det.detect_batch(images[:1])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for image in images:
        for name, det in models.items():
            t0 = time.perf_counter()
            det.detect_batch([image])
            times[name].append(time.perf_counter() - t0)
    mp = float(np.mean([im.pixels.shape[0] * im.pixels.shape[1] for im in images])) / 1e6
    result = {
        "megapixels": round(mp, 3), "images": args.n, "device": args.device,
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}",
        "threads": args.threads or "torch default",
        "models": {name: {"median_s": round(statistics.median(t), 4), "images_per_s": round(1 / statistics.median(t), 2)}
                   for name, t in times.items()},
    }
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
