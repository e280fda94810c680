"""Diffusion step caching: speed-up and output change over the cache interval.

Same model, same sampler (DDIM, ``--steps`` steps, eta=0), same seeded start noise; for each
cache interval N in 1..``--max-interval`` the sampler runs with DeepCache-style feature reuse
(:class:`artifacts.restoration.diffusion.caching.StepCache`, branch ``--branch``) and, as a
second curve, with the ERTACache-style rectification (``correction="extrapolate"``). Reported per
interval: wall time of the whole sampling loop and the speed-up against the uncached loop timed
alternately in the same process (from the median and from the minimum over ``--repeats``: on a
shared machine the minimum is the less disturbed estimate), and the change of the output
(relative L2 ``||x_N - x_1|| / ||x_1||`` and PSNR of the images in [0, 1] against the uncached
images). ``--mode generate`` samples from pure noise; ``--mode img2img`` runs SDEdit-style from
held-out photo crops (scikit-image ``camera``, never used in training) noised to ``--strength``.
``--nonuniform`` adds, per interval, a non-uniform schedule with the same number of full UNet
passes (``StepCache(full_steps=...)``), placed by :func:`~artifacts.restoration.diffusion.caching.
schedule_from_changes` from the deep-feature change per step measured in one uncached calibration
run on other noise (seed + 1000; other crops in img2img), plain and rectified, and prints the
uniform and non-uniform rows side by side; ``--intervals 2,3,4`` picks the intervals.

The model is not random: a small unconditional ``UNet2DModel`` (16/32/64/64 channels, 1.04 M
parameters) trained here (seeded, epsilon prediction, 1000-step linear DDPM schedule, 1000
iterations of batch 16) on random 32x32 crops of the colour photos bundled in the scikit-image
wheel (astronaut, chelsea, coffee, rocket, hubble_deep_field, immunohistochemistry, retina,
stereo_motorcycle; no pooch download). It is trained once and kept in ``--model-dir`` (default
``$ARTIFACTS_HOME`` or ``~/.cache/artifacts``, under ``bench/diffusion_cache_unet``). The output
JSON records how well it denoises the held-out crops (one-step x0 PSNR at t = 50/200/500). A
tiny model, not a text-to-image checkpoint: its numbers say how the mechanism behaves, not what
Stable Diffusion would give. ``--model-dir`` pointing at any local diffusers ``UNet2DModel``
directory (``config.json`` + weights) benchmarks that instead.

    python bench/diffusion_cache.py                      # generate mode, 50 steps, intervals 1..8
    python bench/diffusion_cache.py --mode img2img --strength 0.6 \
        --json bench/results/diffusion_cache_img2img.json --png bench/results/diffusion_cache_img2img.png
    python bench/diffusion_cache.py --train-only         # just train and save the model
    python bench/diffusion_cache.py --nonuniform --intervals 2,3,4,6,8 --n 4 --repeats 3 \
        --json bench/results/diffusion_cache_nonuniform.json --png bench/results/diffusion_cache_nonuniform.png

Run single-threaded by default (``--threads 1``): on the shared 2-core machine two OpenMP threads
competing with other jobs were ~20x slower than one.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
          "retina", "stereo_motorcycle")
UNET_CONFIG = dict(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                   block_out_channels=(16, 32, 64, 64), norm_num_groups=8,
                   down_block_types=("DownBlock2D",) * 4, up_block_types=("UpBlock2D",) * 4)


def default_model_dir() -> Path:
    home = os.environ.get("ARTIFACTS_HOME") or os.path.expanduser("~/.cache/artifacts")
    return Path(home) / "bench" / "diffusion_cache_unet"


def _photos():
    import numpy as np
    from skimage import data

    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
            img = img[0]
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[2] < 3:
            continue
        out.append(img[..., :3].astype(np.float32) / 255.0)
    return out


def _batch(photos, rng, n: int, size: int = 32):
    """Random crops at a random scale (1/2..1/6 of the photo, so a crop holds structure), flips."""
    import cv2
    import numpy as np

    crops = []
    for _ in range(n):
        img = photos[rng.integers(len(photos))]
        s = rng.uniform(1 / 6, 1 / 2)
        h, w = img.shape[:2]
        small = cv2.resize(img, (max(size, int(w * s)), max(size, int(h * s))), interpolation=cv2.INTER_AREA)
        y = rng.integers(0, small.shape[0] - size + 1)
        x = rng.integers(0, small.shape[1] - size + 1)
        c = small[y:y + size, x:x + size]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        crops.append(c)
    arr = np.stack(crops).transpose(0, 3, 1, 2) * 2.0 - 1.0  # [-1, 1]
    return arr.astype(np.float32)


def train(model_dir: Path, iters: int, batch: int, seed: int = 0, lr: float = 2e-3) -> dict:
    import numpy as np
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    photos = _photos()
    unet = UNet2DModel(**UNET_CONFIG)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    lr_at = lambda i: lr * min(1.0, (i + 1) / 50) * 0.5 * (1 + math.cos(math.pi * i / iters))  # noqa: E731
    log, t0, ema = [], time.time(), None
    unet.train()
    for i in range(iters):
        for g in opt.param_groups:
            g["lr"] = lr_at(i)
        x0 = torch.from_numpy(_batch(photos, rng, batch))
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch,))
        xt = sched.add_noise(x0, noise, t)
        loss = torch.nn.functional.mse_loss(unet(xt, t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if i % 50 == 0 or i == iters - 1:
            log.append({"iter": i, "loss_ema": round(ema, 5), "s": round(time.time() - t0, 1)})
            print(f"iter {i} loss(ema) {ema:.4f} {time.time() - t0:.0f}s", flush=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(model_dir)
    sched.save_pretrained(model_dir / "scheduler")
    info = {"iters": iters, "batch": batch, "seed": seed, "lr": lr, "photos": list(PHOTOS),
            "train_s": round(time.time() - t0, 1), "loss_log": log,
            "params": sum(p.numel() for p in unet.parameters())}
    (model_dir / "train_log.json").write_text(json.dumps(info, indent=1))
    return info


def _sample(unet, sched, noise, steps, cache=None, init=None, strength=1.0):
    """DDIM from pure noise, or (``init`` given) SDEdit-style from ``init`` noised to the
    timestep at ``strength`` of the schedule."""
    import torch

    sched.set_timesteps(steps)
    ts = sched.timesteps
    if init is not None:
        ts = ts[int(round(steps * (1 - strength))):]
        x = sched.add_noise(init, noise, ts[:1])
    else:
        x = noise.clone()
    ctx = cache if cache is not None else _Null()
    with torch.no_grad(), ctx:
        for t in ts:
            eps = unet(x, t).sample
            x = sched.step(eps, t, x, eta=0.0).prev_sample
    return x


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _psnr(a, b):
    import torch

    a = ((a.clamp(-1, 1) + 1) / 2)
    b = ((b.clamp(-1, 1) + 1) / 2)
    mse = torch.mean((a - b) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def held_out_crops(n: int, seed: int):
    """``n`` 32x32 crops (scale 1/4) of scikit-image's ``camera`` (grey, replicated to RGB): a real
    photo the bench model never saw in training. In [-1, 1]."""
    import numpy as np
    import torch
    from skimage import data

    img = np.repeat(data.camera()[..., None], 3, axis=2)
    rng = np.random.default_rng(seed + 1)
    return torch.from_numpy(_batch([img.astype(np.float32) / 255.0], rng, n))


def denoise_check(unet, crops) -> list[dict]:
    """Does the model denoise real photos? PSNR of its one-step x0 estimate against the clean
    held-out crops, and of the noisy input rescaled, at a few timesteps."""
    import torch
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    g = torch.Generator().manual_seed(123)
    out = []
    for t in (50, 200, 500):
        a = sched.alphas_cumprod[t]
        noise = torch.randn(crops.shape, generator=g)
        xt = sched.add_noise(crops, noise, torch.tensor([t]))
        with torch.no_grad():
            eps = unet(xt, t).sample
        x0 = (xt - (1 - a).sqrt() * eps) / a.sqrt()
        out.append({"t": t, "psnr_noisy_db": round(_psnr(xt / a.sqrt(), crops), 2),
                    "psnr_denoised_db": round(_psnr(x0, crops), 2)})
    return out


def bench(model_dir: Path, steps: int, max_interval: int, branch: int, n: int, repeats: int,
          seed: int, mode: str = "generate", strength: float = 0.6, intervals=None, nonuniform: bool = False,
          measure: str = "sensitivity", calib_n: int = 2) -> dict:
    import torch
    from diffusers import DDIMScheduler, UNet2DModel

    from artifacts.restoration.diffusion.caching import (StepCache, feature_changes, reuse_sensitivity,
                                                         schedule_from_changes, uniform_full_steps)

    unet = UNet2DModel.from_pretrained(model_dir, local_files_only=True).eval()
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
                          set_alpha_to_one=False)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 3, 32, 32, generator=g)
    crops = held_out_crops(n, seed)
    check = denoise_check(unet, crops)
    init = crops if mode == "img2img" else None
    _sample(unet, sched, noise, 2)  # warm-up
    intervals = list(intervals or range(2, max_interval + 1))
    max_interval = max(intervals)
    n_run = steps if init is None else len(range(int(round(steps * (1 - strength))), steps))
    kinds = ["deepcache", "erta"] + (["nonuniform", "nonuniform_erta"] if nonuniform else [])
    variants = [("uncached", None)]
    calibration = None
    if nonuniform:  # one calibration run on other noise (and other crops): never the evaluated samples
        g_cal = torch.Generator().manual_seed(seed + 1000)
        cal_noise = torch.randn(calib_n, 3, 32, 32, generator=g_cal)
        cal_init = held_out_crops(calib_n, seed + 1000) if init is not None else None
        cal_run = lambda: _sample(unet, sched, cal_noise, steps, init=cal_init, strength=strength)  # noqa: E731
        t_cal = time.perf_counter()
        changes = feature_changes(unet, cal_run, branch=branch, measure="output" if measure == "output" else "feature")
        sens = reuse_sensitivity(unet, cal_run, n_run, branch=branch) if measure == "sensitivity" else None
        calibration = {"measure": measure, "calib_images": calib_n, "change_per_step": [round(c, 5) for c in changes],
                       "sensitivity_per_step": sens and [round(c, 6) for c in sens], "schedules": {},
                       "calibration_s": round(time.perf_counter() - t_cal, 1)}
    for k in intervals:
        variants.append((f"deepcache_i{k}", dict(interval=k, branch=branch, correction=None)))
        variants.append((f"erta_i{k}", dict(interval=k, branch=branch, correction="extrapolate")))
        if nonuniform:
            full = schedule_from_changes(changes, len(uniform_full_steps(n_run, k)), sensitivity=sens)
            calibration["schedules"][k] = full
            variants.append((f"nonuniform_i{k}", dict(full_steps=full, branch=branch, correction=None)))
            variants.append((f"nonuniform_erta_i{k}", dict(full_steps=full, branch=branch, correction="extrapolate")))
    times = {name: [] for name, _ in variants}
    outs = {}
    for r in range(repeats):  # alternate variants inside each repeat: drift hits all alike
        for name, kw in variants:
            cache = None if kw is None else StepCache(unet, num_inference_steps=steps, **kw)
            t0 = time.perf_counter()
            out = _sample(unet, sched, noise, steps, cache, init=init, strength=strength)
            times[name].append(time.perf_counter() - t0)
            outs[name] = out
            if cache is not None:
                outs[name + "/stats"] = cache.stats()
    ref = outs["uncached"]
    samples = {k: v for k, v in outs.items() if k in ("uncached", f"deepcache_i{max_interval}",
                                                       f"erta_i{max_interval}", f"nonuniform_i{max_interval}")}
    t_ref = statistics.median(times["uncached"])
    rows = []
    for k in [1] + intervals:
        for kind in kinds:
            name = "uncached" if k == 1 else f"{kind}_i{k}"
            out = outs[name]
            t = statistics.median(times[name])
            tmin = min(times[name])
            rel = (torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref)).item()
            rows.append({"method": kind, "interval": k, "median_s": round(t, 4),
                         "speedup": round(t_ref / t, 3), "min_s": round(tmin, 4),
                         "speedup_min": round(min(times["uncached"]) / tmin, 3), "rel_l2": round(rel, 5),
                         "psnr_db": round(_psnr(out, ref), 2),
                         "full_steps": (outs.get(name + "/stats") or {}).get("full_steps", n_run)})
    if init is not None:
        samples = {"input (held-out camera crops)": crops, **samples}
    res = {"rows": rows, "uncached_median_s": round(t_ref, 4), "_samples": samples,
           "denoise_check_held_out": check}
    if calibration is not None:
        res["nonuniform_calibration"] = calibration
    return res


def side_by_side(rows: list[dict]) -> str:
    """Uniform and non-uniform schedules at the same number of full UNet passes: speed-up from the
    medians, relative L2 change (plain reuse / rectified)."""
    by = {(r["method"], r["interval"]): r for r in rows}
    lines = ["| full passes (interval) | uniform: speed-up | change | rectified | non-uniform: speed-up | change "
             "| rectified |", "|---|---|---|---|---|---|---|"]
    for k in sorted({r["interval"] for r in rows if r["interval"] > 1}):
        u, ue, nu, ne = (by.get((m, k)) for m in ("deepcache", "erta", "nonuniform", "nonuniform_erta"))
        if None in (u, ue, nu, ne):
            continue
        lines.append(f"| {u['full_steps']} ({k}) | {u['speedup']:.2f}x | {100 * u['rel_l2']:.2f} % | "
                     f"{100 * ue['rel_l2']:.2f} % ({ue['speedup']:.2f}x) | {nu['speedup']:.2f}x | "
                     f"{100 * nu['rel_l2']:.2f} % | {100 * ne['rel_l2']:.2f} % ({ne['speedup']:.2f}x) |")
    return "\n".join(lines)


def save_samples(samples: dict, path: Path) -> None:
    """One row per variant (uncached, largest interval plain / rectified), images 4x enlarged."""
    import cv2
    import numpy as np

    rows = []
    for name, x in samples.items():
        imgs = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        row = np.concatenate([cv2.resize(i, (128, 128), interpolation=cv2.INTER_NEAREST) for i in imgs], 1)
        label = np.full((18, row.shape[1], 3), 255, np.uint8)
        cv2.putText(label, name, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        rows += [label, row]
    w = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


def plot(result: dict, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_cv2(result, path)
    rows = result["rows"]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for kind, style in (("deepcache", "o-"), ("erta", "s--"), ("nonuniform", "^-"), ("nonuniform_erta", "v--")):
        r = [x for x in rows if x["method"] == kind]
        if not r:
            continue
        ax[0].plot([x["interval"] for x in r], [x["speedup_min"] for x in r], style, label=kind)
        ax[1].plot([x["interval"] for x in r], [100 * x["rel_l2"] for x in r], style, label=kind)
    ax[0].set(xlabel="cache interval", ylabel="speed-up x")
    ax[1].set(xlabel="cache interval", ylabel="relative L2 change %")
    ax[1].axhline(1.0, color="grey", lw=0.8)
    for a in ax:
        a.legend()
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return "matplotlib"


def _plot_cv2(result: dict, path: Path) -> str:
    """Two line charts drawn with OpenCV (matplotlib is not installed in every venv)."""
    import cv2
    import numpy as np

    rows = result["rows"]
    W, H, m = 420, 300, 50
    canvas = np.full((H, 2 * W, 3), 255, np.uint8)
    colours = {"deepcache": (200, 80, 0), "erta": (0, 120, 230), "nonuniform": (0, 160, 0),
               "nonuniform_erta": (160, 0, 160)}
    colours = {k: v for k, v in colours.items() if any(r["method"] == k for r in rows)}
    panels = (("speedup_min", "speed-up x (min time)", 1.0), ("rel_l2", "relative L2 change %", 100.0))
    kmax = max(r["interval"] for r in rows)
    for p, (key, label, scale) in enumerate(panels):
        ox = p * W
        vals = [r[key] * scale for r in rows]
        vmax = max(max(vals), 1.05 if key == "rel_l2" else 1.0) * 1.1
        px = lambda k: int(ox + m + (k - 1) / max(kmax - 1, 1) * (W - 1.5 * m))  # noqa: E731
        shown = sorted({r["interval"] for r in rows})
        py = lambda v: int(H - m - v / vmax * (H - 1.6 * m))  # noqa: E731
        cv2.line(canvas, (ox + m, H - m), (ox + W - m // 2, H - m), (0, 0, 0), 1)
        cv2.line(canvas, (ox + m, H - m), (ox + m, m // 2), (0, 0, 0), 1)
        for k in shown:
            cv2.putText(canvas, str(k), (px(k) - 4, H - m + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
        for frac in (0, 0.5, 1.0):
            v = vmax * frac / 1.1
            cv2.putText(canvas, f"{v:.2f}", (ox + 5, py(v) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
        if key == "rel_l2":
            cv2.line(canvas, (ox + m, py(1.0)), (ox + W - m // 2, py(1.0)), (160, 160, 160), 1)
        cv2.putText(canvas, label + " vs cache interval", (ox + m, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        for j, (kind, col) in enumerate(colours.items()):
            pts = [(px(r["interval"]), py(r[key] * scale)) for r in rows if r["method"] == kind]
            for a, b in zip(pts, pts[1:]):
                cv2.line(canvas, a, b, col, 2, cv2.LINE_AA)
            for q in pts:
                cv2.circle(canvas, q, 3, col, -1)
            cv2.putText(canvas, kind, (ox + W - 130, 40 + 15 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.4, col, 1)
    cv2.imwrite(str(path), canvas)
    return "opencv"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--train-iters", type=int, default=1000)
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--max-interval", type=int, default=8)
    ap.add_argument("--intervals", type=lambda v: [int(x) for x in v.split(",")], default=None,
                    help="comma list of cache intervals (default 2..--max-interval)")
    ap.add_argument("--nonuniform", action="store_true",
                    help="also run non-uniform schedules with the same number of full steps as each interval, "
                         "picked from the feature change measured in one calibration run on other noise")
    ap.add_argument("--measure", choices=("sensitivity", "output", "feature"), default="sensitivity",
                    help="--nonuniform: how the schedule is picked: sensitivity = deep-feature drift weighted by the "
                         "final output's change when each step alone reuses (one run per step, dynamic programming); "
                         "output / feature = greedy split of the per-step change of the UNet output / deep feature")
    ap.add_argument("--calib-n", type=int, default=2, help="--nonuniform: images in the calibration runs")
    ap.add_argument("--branch", type=int, default=1, help="outer UNet levels recomputed on cached steps")
    ap.add_argument("--n", type=int, default=8, help="images sampled per run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", choices=("generate", "img2img"), default="generate",
                    help="sample from pure noise, or SDEdit-style from held-out photo crops")
    ap.add_argument("--strength", type=float, default=0.6, help="img2img: fraction of the schedule run")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "diffusion_cache.json")
    ap.add_argument("--png", type=Path, default=REPO / "bench" / "results" / "diffusion_cache.png")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    model_dir = a.model_dir or default_model_dir()
    trained = None
    if not (model_dir / "config.json").exists():
        print(f"training the bench model into {model_dir} ...", flush=True)
        trained = train(model_dir, a.train_iters, a.train_batch, seed=a.seed)
    if a.train_only:
        return 0
    log_file = model_dir / "train_log.json"
    train_info = json.loads(log_file.read_text()) if log_file.exists() else None
    res = bench(model_dir, a.steps, a.max_interval, a.branch, a.n, a.repeats, a.seed, a.mode, a.strength,
                a.intervals, a.nonuniform, a.measure, a.calib_n)
    import diffusers

    res.update({
        "model": ("UNet2DModel 16/32/64/64, trained here on 32x32 crops of scikit-image photos"
                  if train_info else f"UNet2DModel from {model_dir}"),
        "model_dir": str(model_dir), "train": {k: v for k, v in (train_info or {}).items() if k != "loss_log"},
        "train_final_loss_ema": (train_info or {}).get("loss_log", [{}])[-1].get("loss_ema"),
        "sampler": f"DDIM {a.steps} steps, eta=0" + (
            f", img2img from held-out crops at strength {a.strength} ({int(round(a.steps * a.strength))} steps run)"
            if a.mode == "img2img" else ", from pure noise"), "mode": a.mode, "branch": a.branch, "n_images": a.n,
        "repeats": a.repeats, "threads": a.threads,
        "command": "python bench/diffusion_cache.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"torch {torch.__version__}, diffusers {diffusers.__version__}, no GPU, shared VM",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    })
    a.json.parent.mkdir(parents=True, exist_ok=True)
    samples_png = a.png.with_name(a.png.stem + "_samples.png")
    save_samples(res.pop("_samples"), samples_png)
    res["samples_png"] = str(samples_png.relative_to(REPO)) if samples_png.is_relative_to(REPO) else str(samples_png)
    a.json.write_text(json.dumps(res, indent=1))
    res["plot_backend"] = plot(res, a.png)
    print(f"model: {res['model']}; sampler: {res['sampler']}; uncached {res['uncached_median_s']} s")
    print("denoising check on held-out crops:", res["denoise_check_held_out"])
    print("| method | interval | full UNet passes | median s | speed-up (median) | min s | speed-up (min) "
          "| rel. L2 % | PSNR dB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        print(f"| {r['method']} | {r['interval']} | {r['full_steps']} | {r['median_s']} | {r['speedup']} | "
              f"{r['min_s']} | {r['speedup_min']} | {100 * r['rel_l2']:.3f} | {r['psnr_db']} |")
    if a.nonuniform:
        print(side_by_side(res["rows"]))
        print("non-uniform full steps:", res["nonuniform_calibration"]["schedules"])
    print(f"wrote {a.json} and {a.png} ({res['plot_backend']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
