"""IML-ViT forward time at its native 1024x1024 input: median seconds per pass, random weights.

Speed only (random weights in the official layout; no checkpoint needed). Times one network
forward on a (1, 3, 1024, 1024) input after one warm-up pass, in fp32 and, where the device
supports it, bf16 autocast; on CUDA also fp16. ``--tiling-diff`` also measures how far a tiled
pass (tiles of ``--tile`` px, zero-padded to 1024) is from a whole-image pass on one 1024 px image
(random weights: a measure of the tiling machinery, not of a trained model's behaviour).

    python bench/imlvit.py [--device cpu|cuda] [--runs 3] [--threads N] [--precisions fp32,bf16,fp16]
                           [--tiling-diff [--tile 640 --overlap 128]] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from artifacts.detectors.manipulation import imlvit as M


def time_forward(net, device: str, dtype, runs: int, size: int) -> list[float]:
    x = torch.rand(1, 3, size, size, device=device)
    kind = device.split(":")[0]
    times = []
    with torch.inference_mode(), torch.autocast(device_type=kind, dtype=dtype, enabled=dtype is not None):
        for i in range(runs + 1):  # the first pass is a warm-up
            if kind == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            net(x)
            if kind == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
    return times


def tiling_diff(device: str, tile: int, overlap: int) -> dict:
    """Whole 1024 px pass vs tiles of ``tile`` px on the same image (random weights)."""
    from artifacts.io import ImageData

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1024, 0:1024]
    img = np.stack([np.sin(xx / 31.0 + c) * np.cos(yy / 17.0 - c) for c in range(3)], -1) * 0.4 + 0.5
    img = (np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1) * 255).round().astype(np.uint8)
    whole = M.IMLViTDetector(M.IMLViTConfig(), device=device)
    tiled = M.IMLViTDetector(M.IMLViTConfig(tile=tile, tile_overlap=overlap), device=device)
    tiled.net.load_state_dict(whole.net.state_dict())
    a, b = whole.detect(ImageData(img)), tiled.detect(ImageData(img))
    d = np.abs(a.heatmap - b.heatmap)
    return {"tile": tile, "overlap": overlap, "tiles": b.meta["preprocessing"]["tiles"],
            "max_abs_diff": round(float(d.max()), 5), "mean_abs_diff": round(float(d.mean()), 5),
            "score_whole": round(a.score, 5), "score_tiled": round(b.score, 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--precisions", default="fp32,bf16,fp16",
                    help="comma list of fp32, bf16, fp16 (fp16 only on CUDA); empty = no timing")
    ap.add_argument("--tiling-diff", action="store_true")
    ap.add_argument("--tile", type=int, default=640)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = M.IMLViTConfig()
    net = M.build(cfg).eval().to(args.device)
    known = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    wanted = [p for p in args.precisions.split(",") if p]
    precisions = {p: known[p] for p in wanted if p != "fp16" or args.device.startswith("cuda")}
    result = {
        "model": "manipulation/iml-vit", "input": [cfg.img_size, cfg.img_size], "weights": "random",
        "device": args.device, "runs": args.runs, "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"torch {torch.__version__}" + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""),
        "parameters": sum(p.numel() for p in net.parameters()),
        "forward": {},
    }
    for name, dtype in precisions.items():
        try:
            t = time_forward(net, args.device, dtype, args.runs, cfg.img_size)
        except RuntimeError as exc:  # a precision the device does not support
            result["forward"][name] = {"error": str(exc).splitlines()[0]}
            continue
        med = statistics.median(t)
        result["forward"][name] = {"median_s": round(med, 4), "images_per_s": round(1 / med, 3)}
    if args.tiling_diff:
        result["tiling_vs_whole"] = tiling_diff(args.device, args.tile, args.overlap)
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
