"""PuzzleSim speed and memory: the chunked best match (the package's) vs the full similarity matrix.

One 504x378 novel view (a fern view, degraded by the view-artifact generator) against the 20 fern
views as references, at native resolution (``max_side=None``), default layers, on the CPU.
Each implementation runs in its own fresh subprocess (so peak memory is its own), alternating
chunked, full, chunked, full, ...; each subprocess computes the reference features once, then
times ``--views`` detections. Reported: median ms per view and the peak resident memory added
by the detections (ru_maxrss after them minus ru_maxrss after model and reference features).

    python bench/views_puzzlesim.py [--repeats 3] [--views 5] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

FERN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "views" / "fern" / "images_8"


def worker(impl: str, n_views: int) -> dict:
    import artifacts
    import artifacts.detectors.views.similarity as sim
    from artifacts.datasets.view_artifacts import degrade
    from artifacts.detectors.views.inputs import ViewInput
    from artifacts.io import as_images, load_image

    refs = sorted(str(p) for p in FERN.glob("*.png"))
    if len(refs) != 20:
        raise SystemExit(f"needs the 20 fern views in {FERN}")
    if impl == "full":  # the straightforward version: the whole N x HW x hw similarity tensor
        sim.best_match = lambda view, refs, block_bytes=0: sim.best_match_full(view, list(refs))
    det = artifacts.create("views/puzzlesim", device="cpu", max_side=None)
    view = as_images(degrade(load_image(refs[0]).pixels, seed=1, kind="floaters", severity=0.8).image)[0]
    vi = ViewInput(view, tuple(refs))
    det._ref_features(vi, det.working_side(view))  # reference features first: they are not what is measured
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    det.detect_one(vi)  # warm-up
    times = []
    for _ in range(n_views):
        t0 = time.perf_counter()
        det.detect_one(vi)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"ms": [round(t * 1000, 1) for t in times], "extra_peak_mb": round((peak - base) / 1024, 1),
            "view": list(view.pixels.shape[:2]), "layers": list(det.config.layers)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--views", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--worker", choices=("chunked", "full"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.views)))
        return
    runs: dict[str, list[dict]] = {"chunked": [], "full": []}
    for _ in range(args.repeats):
        for impl in runs:
            out = subprocess.run([sys.executable, __file__, "--worker", impl, "--views", str(args.views)],
                                 capture_output=True, text=True, check=True)
            runs[impl].append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}",
              "refs": 20, "view": runs["chunked"][0]["view"], "layers": runs["chunked"][0]["layers"]}
    for impl, rs in runs.items():
        result[impl] = {"median_ms_per_view": statistics.median(t for r in rs for t in r["ms"]),
                        "median_extra_peak_mb": statistics.median(r["extra_peak_mb"] for r in rs)}
    result["time_ratio_full_over_chunked"] = round(result["full"]["median_ms_per_view"]
                                                   / result["chunked"]["median_ms_per_view"], 2)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
