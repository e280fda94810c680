"""dMRI detector speed: median seconds per 112x112x32x17 series for every model of the ``dmri`` task.

Input: the real Philips series of ``../shared/data/dmri`` (112x112x32, 17 volumes) when present,
else the diffusion phantom of :mod:`artifacts.datasets.dmri_phantom` at the same shape; read
into memory once (file reading is not timed). Only ``detect_batch`` is timed, one series per
call, after one warm-up call; models run interleaved, repeat by repeat, so machine noise hits
them alike.

    python bench/dmri.py [--repeat 5] [--device cpu] [--json bench/results/dmri.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import artifacts

PHILIPS = Path(__file__).resolve().parents[1].parent / "shared/data/dmri/philips-dwi/701_DTI_Biobank_2mm_MB3S2_EPI.nii.gz"


def load_series():
    from artifacts.io.dmri import from_arrays, load_dwi

    if PHILIPS.is_file():
        s = load_dwi(PHILIPS)
        source = "real Philips series (../shared/data/dmri/philips-dwi)"
    else:
        from artifacts.datasets.dmri_phantom import phantom

        s = phantom(shape=(112, 112, 32), n_b0=5, n_dirs=12)
        source = "phantom (../shared/data absent)"
    return from_arrays(np.asarray(s.data), s.bvals, s.bvecs, s.affine, sidecar=s.sidecar), source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    args = ap.parse_args()
    series, source = load_series()
    models = {}
    for name in artifacts.list_models(task="dmri"):
        try:
            models[name] = artifacts.create(name, device=args.device)
        except Exception as exc:  # e.g. a model whose weights are not installed
            print(f"{name}: skipped ({exc})")
    for det in models.values():
        det.detect_batch([series])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeat):
        for name, det in models.items():
            t0 = time.perf_counter()
            det.detect_batch([series])
            times[name].append(time.perf_counter() - t0)
    result = {
        "series": source, "shape": list(series.shape), "repeat": args.repeat, "device": args.device,
        "threads": __import__("torch").get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "models": {name: {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3)}
                   for name, t in times.items()},
    }
    for name, r in result["models"].items():
        print(f"{name:24s} {r['median_s']:8.3f} s per series (median of {args.repeat}; min {r['min_s']:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
