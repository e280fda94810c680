"""Recipe ``iml``: train a learned manipulation-localisation model (``manipulation/effnet-iml``).

Data (the ``iml`` split list, ``artifacts/datasets/splits/iml.json``): the seeded generator
(:mod:`artifacts.datasets.manipulation`) synthesises ``n`` tampered images (splice, blended
splice, copy-move, removal; a third of the splices colour-matched to their host; post-processing
chains of resize / JPEG / blur / noise; every other sample from photos that were JPEGs before the
edit) and ``n // 3`` authentic ones through the same chains, from the bundled photos (less the
example run's) and the split's real photo folders; plus the real tampered pairs of
``real_pairs`` (CASIA v2 samples, NoSo copy-move), drawn for ``real_p`` of the training slots.
With ``data=DIR`` (a ``Tp/`` + ``Gt/`` folder or JSON list) that replaces the real pairs.
Photo families and real pairs whose hash falls in the split's hold-out fractions are kept out of
fitting: the held-out part is generated once (other seeds, held-out photos) plus the held-out
real pairs, and picks the best epoch by ``select = (pixel F1 at 0.5 + image AUC) / 2`` over it.

Training: EfficientNet-Lite0 from its packaged ImageNet weights, the decoder from scratch;
random ``crop`` px crops (centred near a manipulated pixel for 80 % of tampered crops, zero
padding when the image is smaller), horizontal flips, and a JPEG re-save of the crop
(quality 70-100) with probability 0.3 for every class alike; AdamW, linear warm-up then
half-cosine per step; IML-ViT's edge loss (:func:`~artifacts.detectors.manipulation.imlvit.edge_loss`).
``time_limit_s`` (default none) stops after the epoch past which another would not fit; the
result then depends on the machine's speed, so the shipped weights were trained without it.

Outputs, rewritten after every epoch (an interrupted run keeps its best epoch so far):
``OUT/effnet_iml-v1.safetensors`` (the best epoch's state dict, fp16) and ``OUT/train.json``
(command, data counts, per-epoch loss, the loss of a fixed batch of training crops before
training and after each epoch (``probe_loss``), held-out metrics, seconds, sha256).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from artifacts.datasets.processing import jpeg

FORMAT = "artifacts-train-iml/1"
LOAD_MAX_SIDE = 1024  # photos are downscaled to this when loaded (the generator crops to 512 anyway)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def _hashed_out(names: list[str], fraction: float, seed: int) -> set[str]:
    from artifacts.datasets.sid import holdout

    _, held = holdout([SimpleNamespace(name=n) for n in sorted(set(names))], fraction, seed)
    return {h.name for h in held}


def load_photos(split: dict, root: Path) -> list:
    """The photo pool the split allows: bundled photos and every listed folder's files."""
    from artifacts.datasets.photos import Photo, _to_rgb_uint8, as_photos, is_grey, photo_names
    from artifacts.datasets.processing import resize
    from artifacts.engine.items import IMAGE_EXTENSIONS
    from artifacts.io import ImageReadError, load_image

    skip = set(split.get("exclude_bundled", []))
    photos = as_photos([n for n in photo_names() if n not in skip])
    for entry in split["photo_folders"]:
        folder = root / entry["path"]
        if not folder.is_dir():
            continue  # a machine without ../shared trains on the bundled photos only
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:: entry.get("every", 1)]
        for f in files:
            try:
                img = _to_rgb_uint8(load_image(f).pixels)
            except ImageReadError:
                continue
            scale = LOAD_MAX_SIDE / max(img.shape[:2])
            if scale < 1:
                img = resize(img, (round(img.shape[0] * scale), round(img.shape[1] * scale)), "area")
            name = f"{folder.name}-{f.stem}"
            photos.append(Photo(name, img, is_grey(img), entry.get("family", name)))
    return photos


def real_pairs(split: dict, root: Path, data: str | None) -> list:
    from artifacts.datasets.iml import read_iml

    sources = [data] if data else [str(root / p) for p in split["real_pairs"] if (root / p).exists()]
    never = {(root / p).resolve() for p in split.get("never", []) if (root / p).exists()}
    out = []
    for src in sources:
        if Path(src).resolve() in never:
            raise ValueError(f"{src} is listed under 'never' in the iml split (it is reported on)")
        out += [(Path(src).name, s) for s in read_iml(src) if s.tampered]
    return out


def decode_pair(sample) -> tuple[np.ndarray, np.ndarray]:
    from artifacts.datasets.photos import _to_rgb_uint8
    from artifacts.io import load_image

    img = _to_rgb_uint8(load_image(sample.image).pixels)
    return img, sample.load_mask(img.shape[:2], resize=True)


def generator_configs() -> list:
    """Two generator settings, alternated by seed: photos without / with a JPEG past."""
    from artifacts.datasets.manipulation import GeneratorConfig

    common = dict(max_side=512, min_side=256, colour_match=0.33)
    return [GeneratorConfig(**common), GeneratorConfig(host_jpeg=(60, 95), **common)]


def synthesise(photos, n: int, seed: int, progress: bool, desc: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` tampered images (seeds seed..) and ``n // 3`` authentic ones (seeds after them)."""
    from tqdm.auto import tqdm

    from artifacts.datasets.manipulation import authentic, generate

    cfgs = generator_configs()
    out = []
    for i in tqdm(range(n + n // 3), desc=desc, unit="image", disable=not progress, leave=False):
        s = seed + i
        sample = generate(s, config=cfgs[s % 2], photos=photos) if i < n else authentic(s, config=cfgs[s % 2], photos=photos)
        out.append((sample.image, sample.mask))
    return out


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------
def random_crop(img: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator):
    h, w = mask.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)))
        mask = np.pad(mask, ((0, ph), (0, pw)))
        h, w = mask.shape
    if mask.any() and rng.random() < 0.8:
        ys, xs = np.nonzero(mask)
        k = int(rng.integers(len(ys)))
        y = int(np.clip(ys[k] - rng.integers(size // 8, size - size // 8), 0, h - size))
        x = int(np.clip(xs[k] - rng.integers(size // 8, size - size // 8), 0, w - size))
    else:
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return img[y : y + size, x : x + size], mask[y : y + size, x : x + size]


def augment(img: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator, jpeg_p: float):
    img, mask = random_crop(img, mask, size, rng)
    if rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
    img = np.ascontiguousarray(img)
    if rng.random() < jpeg_p:
        img = jpeg(img, int(rng.integers(70, 101)))
    return img.astype(np.float32).transpose(2, 0, 1) / 255.0, mask.astype(np.float32)[None]


# --------------------------------------------------------------------------------------------
# Held-out evaluation
# --------------------------------------------------------------------------------------------
def evaluate(detector, items: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Pixel F1 / IoU at 0.5 and pixel AUC (means over tampered images), image AUC (all)."""
    from artifacts.detectors.manipulation.learned import top_fraction_mean
    from artifacts.metrics import pixel_scores, roc_auc

    detector.net.eval()
    f1, iou, pauc, scores, labels = [], [], [], [], []
    for img, mask in items:
        heat, _ = detector.heatmap(img)
        scores.append(top_fraction_mean(heat, detector.config.score_top_fraction))
        labels.append(int(mask.any()))
        if mask.any():
            s = pixel_scores(heat >= 0.5, mask)
            f1.append(s["f1"])
            iou.append(s["iou"])
            pauc.append(roc_auc(heat.ravel(), mask.ravel()))
    res = {"pixel_f1": float(np.mean(f1)), "pixel_iou": float(np.mean(iou)), "pixel_auc": float(np.mean(pauc)),
           "n_tampered": len(f1), "n_authentic": len(labels) - len(f1)}
    if 0 < sum(labels) < len(labels):
        res["image_auc"] = float(roc_auc(np.array(scores), np.array(labels)))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}


# --------------------------------------------------------------------------------------------
# The recipe
# --------------------------------------------------------------------------------------------
def train_iml(info, out: str, *, data: str | None = None, n: int = 1200, epochs: int = 4, steps: int = 100,
              batch: int = 8, crop: int = 256, lr: float = 5e-4, weight_decay: float = 1e-4,
              warmup_steps: int = 50, real_p: float = 0.15, jpeg_p: float = 0.3, n_held: int = 48,
              seed: int = 0, threads: int | None = 1, time_limit_s: float | None = None,
              progress: bool = True, **overrides: Any) -> dict:
    """Train (see the module docstring); returns the file, its sha256 and the held-out metrics."""
    import random

    import torch
    from tqdm.auto import tqdm

    from artifacts.datasets.splits import load_split
    from artifacts.detectors.manipulation.imlvit import edge_loss
    from artifacts.detectors.manipulation.learned import build
    from artifacts.registry import build_config
    from artifacts.train.run import TrainRun, optimiser_step
    from artifacts.train.synthetic import lr_at, param_groups, project_root

    t_start = time.perf_counter()
    if epochs < 1 or steps < 1 or batch < 2 or n < 4:
        raise ValueError("train iml: epochs >= 1, steps >= 1, batch >= 2 and n >= 4 are required")
    config = build_config(info, overrides)
    if not threads:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(int(threads))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    split = load_split("iml")
    root = project_root()
    hold = split["holdout"]
    photos = load_photos(split, root)
    held_families = _hashed_out([p.family for p in photos], hold["photo_fraction"], hold["seed"])
    train_photos = [p for p in photos if p.family not in held_families]
    held_photos = [p for p in photos if p.family in held_families]
    pairs = real_pairs(split, root, data)
    held_pair_names = _hashed_out([f"{src}/{s.name}" for src, s in pairs], hold["pair_fraction"], hold["seed"])
    train_pairs = [s for src, s in pairs if f"{src}/{s.name}" not in held_pair_names]
    held_pairs = [s for src, s in pairs if f"{src}/{s.name}" in held_pair_names]

    gen_seed = 1_000_000 + 10_000 * seed  # generator seeds apart from the calibration recipes' (10000..)
    pool = synthesise(train_photos, n, gen_seed, progress, "synthesising")
    real = [decode_pair(s) for s in train_pairs]
    held_syn = synthesise(held_photos, n_held, gen_seed + 500_000, progress, "held-out") if held_photos else []
    held_real = [decode_pair(s) for s in held_pairs]
    t_data = time.perf_counter() - t_start

    detector = info.cls(config=config, weights=None, device="cpu")  # its inference path runs the held-out part
    net = detector.net = build(config, pretrained=True)
    opt = torch.optim.AdamW(param_groups(net, weight_decay), lr=lr)
    total = epochs * steps
    cmd = f"artifacts train manipulation --model {info.name} -o {out}" + (f" --data {data}" if data else "")

    def fields() -> dict:
        return {
            "format": FORMAT,
            "model": info.full_name,
            "command": cmd,
            "call": {"data": data, "n": n, "epochs": epochs, "steps": steps, "batch": batch, "crop": crop, "lr": lr,
                     "weight_decay": weight_decay, "warmup_steps": warmup_steps, "real_p": real_p, "jpeg_p": jpeg_p,
                     "n_held": n_held, "seed": seed, "threads": int(threads), "time_limit_s": time_limit_s,
                     "overrides": overrides},
            "config": dataclasses.asdict(config),
            "generator": [dataclasses.asdict(c) for c in generator_configs()],
            "data": {
                "split": "iml",
                "generator_seeds": {"train": [gen_seed, gen_seed + n + n // 3 - 1],
                                    "held_out": [gen_seed + 500_000, gen_seed + 500_000 + n_held + n_held // 3 - 1]},
                "train_photos": len(train_photos), "held_out_photo_families": sorted(held_families),
                "synthetic_train": {"tampered": n, "authentic": n // 3},
                "real_pairs_train": [s.name for s in train_pairs], "real_pairs_held_out": [s.name for s in held_pairs],
                "synthetic_held_out": {"tampered": n_held if held_photos else 0,
                                       "authentic": n_held // 3 if held_photos else 0},
                "seconds": round(t_data, 1),
            },
            "probe_loss_start": probe_start,
        }

    run = TrainRun(out, info.weight_spec().file, epochs=epochs, t_start=t_start, fields=fields, dtype=torch.float16,
                   metadata={"model": info.full_name, "config": json.dumps(dataclasses.asdict(config))},
                   weights_info={"dtype": "float16"})

    # a fixed batch of training crops, scored before training and after each epoch as the optimiser
    # sees it (batch statistics in BatchNorm, which is not updated; no dropout): a loss curve free
    # of the batch-to-batch noise of the training loss (what the smoke test checks)
    probe_rng = np.random.default_rng([seed, 999])
    probe = [augment(*pool[int(probe_rng.integers(len(pool)))], crop, probe_rng, 0.0) for _ in range(batch)]
    probe_x, probe_m = (torch.from_numpy(np.stack(v)) for v in zip(*probe))

    def probe_loss() -> float:
        net.train()
        norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.momentum = 0.0  # running statistics stay as they are
        net.dropout.eval()
        with torch.no_grad():
            loss = edge_loss(net(probe_x), probe_m, edge_width=config.edge_width, lam=config.edge_lambda)
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        return round(float(loss), 5)

    probe_start = probe_loss()
    bar = tqdm(total=total, desc=f"training {info.name}", unit="step", disable=not progress)
    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        net.train()
        losses = []
        for step in range(steps):
            xs, ms = [], []
            for _ in range(batch):
                if real and rng.random() < real_p:
                    img, mask = real[int(rng.integers(len(real)))]
                else:
                    img, mask = pool[int(rng.integers(len(pool)))]
                x, m = augment(img, mask, crop, rng, jpeg_p)
                xs.append(x)
                ms.append(m)
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch * steps + step, lr, warmup_steps, total, lr * 0.01)
            loss = edge_loss(net(torch.from_numpy(np.stack(xs))), torch.from_numpy(np.stack(ms)),
                             edge_width=config.edge_width, lam=config.edge_lambda)
            losses.append(optimiser_step(opt, loss, epoch, step))
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses):.4f}")
        held = {"synthetic": evaluate(detector, held_syn) if held_syn else None,
                "real_pairs": evaluate(detector, held_real) if held_real else None}
        both = evaluate(detector, held_syn + held_real)
        held["select"] = round((both["pixel_f1"] + both.get("image_auc", 0.5)) / 2, 4)
        held["all"] = both
        row = {"epoch": epoch, "train_loss": round(float(np.mean(losses)), 5),
               "train_loss_last_quarter": round(float(np.mean(losses[-max(1, steps // 4):])), 5),
               "probe_loss": probe_loss(), "lr_end": float(f"{opt.param_groups[0]['lr']:.3g}"), "held_out": held,
               "seconds": round(time.perf_counter() - t_epoch, 1)}
        stop = run.end_epoch(row, net.state_dict(), better=run.better(lambda r: r["held_out"]["select"], row),
                             time_limit_s=time_limit_s)
        bar.write(json.dumps(row))
        if stop:
            break
    bar.close()
    return run.result()
