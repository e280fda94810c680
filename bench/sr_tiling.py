"""Super-resolution: peak memory of tiled inference across input sizes, and speed per backend.

Each (backend, size) runs in its own fresh subprocess: build the model, warm it on a 32x32 input,
note ru_maxrss, make the input (a real photo, scikit-image's astronaut, resized to the size),
upscale it x4 with tiling, note ru_maxrss again. Reported: the peak resident memory added by the
upscaling minus the bytes of the input and output arrays ("extra peak": the network's
activations and tile buffers, which tiling keeps flat), and the seconds it took.

Defaults: SPAN (the efficient backend) at 0.25, 1 and 4 MP with 256 px tiles; Real-ESRGAN only on
small inputs (0.01 and 0.03 MP, 48 px tiles: it takes seconds per tile on a CPU). The workers
run with ``MALLOC_MMAP_THRESHOLD_=1048576`` (see ``WORKER_ENV``).

    python bench/sr_tiling.py [--json OUT.json]
    python bench/sr_tiling.py --model sr/span --mp 0.25 1 4 --tile 256
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

DEFAULT_RUNS = [("sr/span", (0.25, 1.0, 4.0), 256), ("sr/realesrgan", (0.01, 0.03), 48)]
#: glibc keeps freed blocks below its (self-raising) mmap threshold in the heap, so ru_maxrss would
#: count allocator fragmentation as use; a fixed 1 MB threshold returns every large buffer
#: (activations, tiles) to the system when freed, so the peak is what was in use at once.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def worker(model: str, mp: float, tile: int) -> dict:
    import cv2
    import numpy as np
    from skimage import data

    import artifacts

    m = artifacts.create(model, device="cpu", tile=tile, overlap=24 if "span" in model else 16)
    m.restore(np.zeros((32, 32, 3), np.uint8))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    side_w = int(round((mp * 1e6 * 4 / 3) ** 0.5))
    side_h = int(round(side_w * 3 / 4))
    img = cv2.resize(data.astronaut(), (side_w, side_h), interpolation=cv2.INTER_CUBIC)
    t0 = time.perf_counter()
    res = m.restore(img)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    arrays = img.nbytes + res.image.nbytes
    return {"model": model, "megapixels": round(side_w * side_h / 1e6, 3), "input": [side_h, side_w],
            "tile": tile, "tiles": res.meta["tiling"]["tiles"], "seconds": round(seconds, 2),
            "seconds_per_mp": round(seconds / (side_w * side_h / 1e6), 2),
            "extra_peak_mb": round(max(0, peak - before - arrays) / 2**20, 1),
            "output_mb": round(res.image.nbytes / 2**20, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="one backend (default: SPAN and Real-ESRGAN, see above)")
    ap.add_argument("--mp", type=float, nargs="+", help="input sizes in megapixels")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], float(args.worker[1]), int(args.worker[2]))))
        return
    runs = [(args.model, tuple(args.mp or (0.25, 1.0, 4.0)), args.tile)] if args.model else DEFAULT_RUNS
    rows = []
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    print(f"{'model':<16}{'MP':>7}{'tiles':>7}{'seconds':>10}{'s/MP':>8}{'extra peak MB':>15}{'output MB':>11}")
    for model, sizes, tile in runs:
        for mp in sizes:
            out = subprocess.run([sys.executable, __file__, "--worker", model, str(mp), str(tile)],
                                 capture_output=True, text=True, check=True, env={**os.environ, **WORKER_ENV})
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{model:<16}{row['megapixels']:>7}{row['tiles']:>7}{row['seconds']:>10}{row['seconds_per_mp']:>8}"
                  f"{row['extra_peak_mb']:>15}{row['output_mb']:>11}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
