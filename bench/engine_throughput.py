"""Engine overhead: a no-op detector through the full engine vs raw decoding of the same files.

Both sides decode with the same number of worker threads; the engine adds hashing, the skip
check, batching and the store commit of each item's row (a score-only result has no item files,
so this measures the engine, not PNG encoding). Runs alternate (raw, engine,
raw, engine, ...) in one process so machine noise hits both alike; the medians and their ratio
are printed and written as JSON.

    python bench/engine_throughput.py [--n 120] [--repeats 5] [--workers 2] [--scale 1] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts.detectors.base import Detector
from artifacts.engine import run_batch
from artifacts.io import load_image, save_image
from artifacts.types import Detection


@dataclass
class _NoConfig:
    pass


class NoOp(Detector):
    """Returns a constant score without looking at the pixels."""

    task, name = "manipulation", "noop"

    def detect_one(self, image):
        return Detection(score=0.0)


def make_files(folder: Path, n: int, scale: float) -> list[Path]:
    """n real-photo files (JPEG q90 and PNG alternately) from the generator's authentic samples
    (photos shipped with scikit-image, 200-768 px), resized by ``scale``."""
    import cv2

    from artifacts.datasets.manipulation import authentic

    files = []
    for i in range(n):
        image = authentic(1000 + i).image
        if scale != 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        path = folder / f"img{i:04d}.{'jpg' if i % 2 else 'png'}"
        save_image(path, image, quality=90)
        files.append(path)
    return files


def raw_decode(files: list[Path], workers: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for image in pool.map(load_image, files):
            assert image.pixels.size > 0
    return time.perf_counter() - t0


def engine(files: list[Path], workers: int, out: Path) -> float:
    t0 = time.perf_counter()
    summary = run_batch([str(f) for f in files], out, detector=NoOp(_NoConfig(), device="cpu"),
                        workers=workers, progress=False)
    assert summary.counts["ok"] == len(files)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0, help="resize the photos (e.g. 3 for ~2 MP files)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        files = make_files(tmp / "in", args.n, args.scale)
        mp = float(np.mean([load_image(f).pixels.shape[0] * load_image(f).pixels.shape[1] for f in files])) / 1e6
        raw_decode(files, args.workers)  # warm the page cache and imports
        raw, eng = [], []
        for r in range(args.repeats):
            raw.append(raw_decode(files, args.workers))
            eng.append(engine(files, args.workers, tmp / f"out{r}"))
    result = {
        "files": args.n, "workers": args.workers, "repeats": args.repeats, "mean_megapixels": round(mp, 3),
        "raw_decode_items_per_s": round(args.n / statistics.median(raw), 1),
        "engine_noop_items_per_s": round(args.n / statistics.median(eng), 1),
        "engine_vs_raw": round(statistics.median(raw) / statistics.median(eng), 3),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}",
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
