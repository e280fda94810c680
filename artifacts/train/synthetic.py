"""Recipe ``safe``: train the SAFE synthetic-image detector on real/fake folders.

Data: without ``data``, the ``synthetic`` split list (``artifacts/datasets/splits/synthetic.json``):
its ``train`` roots (0_real/1_fake, ForenSynths or GenImage layouts, read by
:func:`artifacts.datasets.sid.read_sid`) plus its ``extra_real`` folders (plain folders of real
photos), never its ``eval`` roots. With ``data=DIR``, that folder. Held-out part: a layout's own
``val`` folders when it has both ``train`` and ``val`` (ForenSynths, GenImage), else the split's
hash-based ``holdout`` fraction (:func:`artifacts.datasets.sid.holdout`). The held-out part picks
the best epoch (mean AUC over its re-encoded variants, below) and its metrics are recorded.

Training follows the official recipe (``Ouxiang-Li/SAFE`` at
``46801cacbd50e4763d09783e169475dfa92c5ee4``; see :mod:`artifacts.detectors.synthetic.safe`): from
scratch; random 256 px crops, never resized (zero padding of smaller images); horizontal flip,
rotation up to 180 degrees (nearest, zero fill), colour jitter 0.5 (brightness, contrast,
saturation, random order), random 16 px patch masking (ratio 0-0.75, p 0.5); AdamW with
``lr = blr * batch / 256`` (``blr`` 1e-2), weight decay 0.01 on weights only, one warm-up epoch
then half-cosine to 1e-6 per step, cross-entropy with label smoothing 0.1. Fewer epochs than the
official 20 so that a run fits a CPU; the classes are weighted inversely to their counts.

Format balance (an addition, not in the official code): a detector trained where fakes are mostly
PNG and reals mostly JPEG learns the container. Every training crop therefore goes through the
same two storage steps whatever its class:

1. *history*: a lossless-stored crop gets an earlier JPEG pass (quality 65-100, 8x8 grid at a
   random offset to the crop) with the probability that brings its class's share of crops with a
   JPEG past to the same target (``max(0.5, share of the most-JPEG class)``), so a JPEG past no
   longer tells the classes apart;
2. *storage*: after the augmentations, a JPEG pass at a random quality (60-100) with probability
   ``jpeg_p`` (0.5), else the crop stays lossless.

The held-out images are scored on their centre crop as stored and re-encoded as JPEG 90 and 75
(identically for both classes); the AUC of "the file is a JPEG" on the same images is recorded
beside them as the container baseline.

Outputs, rewritten after every epoch (an interrupted run keeps its best epoch so far):
``OUT/safe.safetensors`` (the best epoch's state dict in the official key layout) and
``OUT/train.json`` (command, data counts per class / source / format, per-epoch loss and held-out
AUC / accuracy at 0.5, seconds, sha256; ``complete`` once the run ended).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.datasets.processing import jpeg

FORMAT = "artifacts-train-safe/1"
LOSSY_FORMATS = {"JPEG", "MPO", "HEIF", "AVIF", "WEBP"}
HELD_OUT_JPEG = (90, 75)  # held-out variants besides the stored pixels


@dataclasses.dataclass
class Aug:
    """Training augmentation settings (official values, plus the storage steps)."""

    flip_p: float = 0.5
    rotation: float = 180.0
    jitter: float = 0.5
    mask_p: float = 0.5
    mask_ratio: tuple[float, float] = (0.0, 0.75)
    mask_patch: int = 16
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 100)
    history_quality: tuple[int, int] = (65, 100)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def project_root() -> Path:
    import artifacts

    return Path(artifacts.__file__).resolve().parents[1]


def read_flat_reals(folder: str | Path) -> list:
    """Every image below a plain folder of real photos, as label-0 samples (source = folder name)."""
    from artifacts.datasets.sid import SIDSample
    from artifacts.engine.items import IMAGE_EXTENSIONS, natural_key

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    paths = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    paths.sort(key=lambda p: natural_key(str(p.relative_to(folder))))
    return [SIDSample(str(p), 0, folder.name, f"{folder.name}/{p.relative_to(folder).as_posix()}") for p in paths]


def split_samples(data: str | None, fraction: float | None = None, seed: int | None = None):
    """(train, held-out, description of where they came from)."""
    from artifacts.datasets.sid import holdout, read_sid
    from artifacts.datasets.splits import load_split

    split = load_split("synthetic")
    hold = dict(split.get("holdout", {}))
    fraction = hold.get("fraction", 0.2) if fraction is None else fraction
    seed = hold.get("seed", 0) if seed is None else seed
    if data is None:
        root = project_root()
        roots = [root / r for r in split["train"]]
        samples = [s for r in roots for s in read_sid(r)]
        extra = [root / r for r in split.get("extra_real", [])]
        samples += [s for r in extra for s in read_flat_reals(r)]
        where = {"split": "synthetic", "roots": split["train"], "extra_real": split.get("extra_real", [])}
    else:
        samples = read_sid(data)
        where = {"data": str(data)}
    parts = [set(Path(s.name).parts[:-1]) for s in samples]
    has_val = [bool(p & {"val", "valid", "validation"}) for p in parts]
    if any(has_val) and any("train" in p for p in parts):
        train = [s for s, v in zip(samples, has_val) if not v]
        held = [s for s, v in zip(samples, has_val) if v]
        where["held_out_from"] = "the layout's val folders"
    else:
        train, held = holdout(samples, fraction, seed)
        where["held_out_from"] = {"fraction": fraction, "seed": seed, "by": "hash of the relative path"}
    if not train or not held:
        raise ValueError(f"need images in both the training and the held-out part, got {len(train)} and {len(held)}")
    for part, name in ((train, "training"), (held, "held-out")):
        if len({s.label for s in part}) < 2:
            raise ValueError(f"the {name} part needs real and generated images")
    return train, held, where


def decode(samples, progress: bool = False) -> list[tuple[np.ndarray, bool]]:
    """Decode each image once: (H,W,3 uint8 pixels, stored in a lossy format)."""
    from tqdm.auto import tqdm

    from artifacts.io import load_image

    out = []
    for s in tqdm(samples, desc="decoding", unit="image", disable=not progress, leave=False):
        im = load_image(s.image)
        px = im.pixels
        if px.dtype == np.uint16:
            px = (px >> 8).astype(np.uint8)
        out.append((np.ascontiguousarray(px), str(im.meta.get("format", "")).upper() in LOSSY_FORMATS))
    return out


def counts(samples, decoded) -> dict[str, Any]:
    """Counts per class, per source and per stored format (lossy / lossless)."""
    out: dict[str, Any] = {}
    for cls, label in (("real", 0), ("fake", 1)):
        idx = [i for i, s in enumerate(samples) if s.label == label]
        out[cls] = {
            "n": len(idx),
            "sources": dict(sorted(Counter(str(samples[i].source) for i in idx).items())),
            "lossy_stored": int(sum(decoded[i][1] for i in idx)),
        }
    return out


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------
def history_probabilities(samples, decoded) -> dict[int, float]:
    """Per class: P(an earlier JPEG pass) for its lossless-stored images, so that every class
    ends with the same share of crops with a JPEG past (see the module docstring)."""
    share = {}
    for label in (0, 1):
        lossy = [d[1] for s, d in zip(samples, decoded) if s.label == label]
        share[label] = float(np.mean(lossy)) if lossy else 0.0
    target = max(0.5, *share.values())
    return {label: (0.0 if f >= 1 else max(0.0, (target - f) / (1 - f))) for label, f in share.items()}


def random_crop(pixels: np.ndarray, size: int, rng: np.random.Generator, history_q: int | None):
    """A random ``size`` crop (zero padding when the image is smaller, as RandomCrop(pad_if_needed));
    with ``history_q``, the crop's neighbourhood first goes through JPEG at that quality with its
    8x8 grid at a random offset to the crop."""
    from artifacts.detectors.synthetic.safe import pad_to

    pixels, _ = pad_to(pixels, size, "constant")
    h, w = pixels.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    if history_q is None:
        return pixels[y : y + size, x : x + size].copy()
    dy, dx = min(y, int(rng.integers(0, 8))), min(x, int(rng.integers(0, 8)))
    window = np.ascontiguousarray(pixels[y - dy : y + size + 8, x - dx : x + size + 8])
    return jpeg(window, history_q)[dy : dy + size, dx : dx + size].copy()


def augment(pixels: np.ndarray, rng: np.random.Generator, aug: Aug, size: int, history_p: float, lossy: bool):
    """One training crop: float32 (3, size, size) in [0, 1]."""
    import torch
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    history_q = None
    if not lossy and rng.random() < history_p:
        history_q = int(rng.integers(aug.history_quality[0], aug.history_quality[1] + 1))
    crop = random_crop(pixels, size, rng, history_q)
    t = torch.from_numpy(crop).permute(2, 0, 1).contiguous()
    if rng.random() < aug.flip_p:
        t = TF.hflip(t)
    if aug.rotation:
        angle = float(rng.uniform(-aug.rotation, aug.rotation))
        t = TF.rotate(t, angle, interpolation=InterpolationMode.NEAREST, fill=[0.0])
    if aug.jitter:
        ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation]
        for k in rng.permutation(3):
            t = ops[k](t, float(rng.uniform(max(0.0, 1 - aug.jitter), 1 + aug.jitter)))
    crop = t.permute(1, 2, 0).contiguous().numpy()
    if rng.random() < aug.jpeg_p:
        crop = jpeg(crop, int(rng.integers(aug.jpeg_quality[0], aug.jpeg_quality[1] + 1)))
    x = crop.astype(np.float32).transpose(2, 0, 1) / 255.0
    if rng.random() < aug.mask_p:
        x = random_mask(x, rng, aug.mask_ratio, aug.mask_patch)
    return np.ascontiguousarray(x)


def random_mask(x: np.ndarray, rng: np.random.Generator, ratio: tuple[float, float], patch: int) -> np.ndarray:
    """Zero ``int(H*W*r / patch^2)`` distinct cells of the ``patch`` grid, r ~ U(ratio)."""
    _, h, w = x.shape
    gh, gw = h // patch, w // patch
    if gh < 1 or gw < 1:
        return x
    n = min(gh * gw, int(h * w * rng.uniform(*ratio) / patch**2))
    x = x.copy()
    for cell in rng.choice(gh * gw, size=n, replace=False):
        r, c = divmod(int(cell), gw)
        x[:, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = 0
    return x


def held_out_crops(decoded, size: int) -> dict[str, np.ndarray]:
    """Centre crops (as the official evaluation) as stored and re-encoded: name -> (N, 3, S, S)."""
    from artifacts.detectors.synthetic.safe import crop_boxes, pad_to

    base = []
    for pixels, _ in decoded:
        p, _ = pad_to(pixels, size, "constant")
        y, x = crop_boxes(p.shape[0], p.shape[1], size, 1)[0]
        base.append(np.ascontiguousarray(p[y : y + size, x : x + size]))
    variants = {"stored": base}
    for q in HELD_OUT_JPEG:
        variants[f"jpeg{q}"] = [jpeg(c, q) for c in base]
    return {k: np.stack(v).transpose(0, 3, 1, 2) for k, v in variants.items()}


# --------------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------------
def lr_at(step: float, base: float, warmup: float, total: float, min_lr: float) -> float:
    """Linear warm-up then half-cosine (the official per-iteration schedule, in epochs)."""
    if step < warmup:
        return base * step / warmup
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1e-9)))


def param_groups(net, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim == 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def score_crops(net, crops: np.ndarray, batch: int) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            x = torch.from_numpy(crops[i : i + batch].astype(np.float32) / 255.0)
            out.append(torch.softmax(net(x), 1)[:, 1].numpy())
    return np.concatenate(out)


def evaluate(net, variants: dict[str, np.ndarray], labels: np.ndarray, batch: int) -> dict[str, Any]:
    from artifacts.metrics import roc_auc

    res: dict[str, Any] = {}
    for name, crops in variants.items():
        p = score_crops(net, crops, batch)
        res[name] = {"auc": round(float(roc_auc(p, labels)), 4), "acc_at_0.5": round(float(((p >= 0.5) == labels).mean()), 4)}
    res["mean_auc"] = round(float(np.mean([v["auc"] for v in res.values()])), 4)
    return res


# --------------------------------------------------------------------------------------------
# The recipe
# --------------------------------------------------------------------------------------------
def train_safe(info, out: str, *, data: str | None = None, epochs: int = 12, batch: int = 16, lr: float | None = None,
               blr: float = 1e-2, weight_decay: float = 0.01, warmup_epochs: float = 1.0, min_lr: float = 1e-6,
               smoothing: float = 0.1, seed: int = 0, progress: bool = True, threads: int | None = None,
               holdout_fraction: float | None = None, jpeg_p: float | None = None, time_limit_s: float | None = None,
               **overrides: Any) -> dict:
    """Train SAFE (see the module docstring); returns the file, its sha256 and the held-out metrics.

    ``time_limit_s`` stops after the epoch past which another epoch would not fit (the schedule
    stays the one planned for ``epochs``; the record says ``stopped_early``)."""
    import random

    import torch
    from tqdm.auto import tqdm

    from artifacts.detectors.synthetic.safe import SAFENet
    from artifacts.metrics import roc_auc
    from artifacts.registry import build_config
    from artifacts.train.run import TrainRun, optimiser_step

    t_start = time.perf_counter()
    if epochs < 1 or batch < 2:
        raise ValueError("train safe: epochs >= 1 and batch >= 2 are required")
    config = build_config(info, overrides)
    aug = Aug() if jpeg_p is None else Aug(jpeg_p=float(jpeg_p))
    if not threads:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(int(threads))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    train, held, where = split_samples(data, holdout_fraction)
    dec_train, dec_held = decode(train, progress), decode(held, progress)
    hist_p = history_probabilities(train, dec_train)
    labels_train = np.array([s.label for s in train])
    labels_held = np.array([s.label for s in held])
    variants = held_out_crops(dec_held, config.crop)
    container_auc = round(float(roc_auc(np.array([0.0 if d[1] else 1.0 for d in dec_held]), labels_held)), 4)

    net = SAFENet(**config.arch())
    n_per_class = np.bincount(labels_train, minlength=2)
    class_w = torch.tensor(len(labels_train) / (2.0 * np.maximum(n_per_class, 1)), dtype=torch.float32)
    criterion = torch.nn.CrossEntropyLoss(weight=class_w, label_smoothing=smoothing)
    base_lr = lr if lr is not None else blr * batch / 256
    opt = torch.optim.AdamW(param_groups(net, weight_decay), lr=base_lr, eps=1e-8)
    steps_per_epoch = max(1, len(train) // batch)  # drop_last, as the official loader
    cmd = f"artifacts train synthetic --model safe -o {out}" + (f" --data {data}" if data else "")

    def fields() -> dict:
        return {
            "format": FORMAT,
            "model": info.full_name,
            "command": cmd,
            "call": {"data": data, "epochs": epochs, "batch": batch, "lr": base_lr, "blr": blr,
                     "weight_decay": weight_decay, "warmup_epochs": warmup_epochs, "min_lr": min_lr,
                     "smoothing": smoothing, "seed": seed, "threads": int(threads), "time_limit_s": time_limit_s,
                     "overrides": overrides},
            "config": dataclasses.asdict(config),
            "augmentation": dataclasses.asdict(aug),
            "history_jpeg_p": {"real": round(hist_p[0], 4), "fake": round(hist_p[1], 4)},
            "data": {**where, "train": counts(train, dec_train), "held_out": counts(held, dec_held)},
            "held_out_container_baseline_auc": container_auc,
            "class_weights": [round(float(w), 4) for w in class_w],
            "steps_per_epoch": steps_per_epoch,
        }

    run = TrainRun(out, "safe.safetensors", epochs=epochs, t_start=t_start, fields=fields,
                   metadata={"format": "SAFE official key layout (models/resnet.py)"})

    bar = tqdm(total=epochs * steps_per_epoch, desc="training safe", unit="step", disable=not progress)
    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(train))[: steps_per_epoch * batch]
        net.train()
        losses, correct = [], 0
        for step in range(steps_per_epoch):
            idx = order[step * batch : (step + 1) * batch]
            x = torch.from_numpy(np.stack([augment(dec_train[i][0], rng, aug, config.crop, hist_p[train[i].label], dec_train[i][1])
                                           for i in idx]))
            y = torch.from_numpy(labels_train[idx]).long()
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch + step / steps_per_epoch, base_lr, warmup_epochs, epochs, min_lr)
            logits = net(x)
            loss = criterion(logits, y)
            losses.append(optimiser_step(opt, loss, epoch, step))
            correct += int((logits.argmax(1) == y).sum())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses):.4f}")
        held_res = evaluate(net, variants, labels_held, config.batch)
        row = {"epoch": epoch, "train_loss": round(float(np.mean(losses)), 5),
               "train_acc": round(correct / (steps_per_epoch * batch), 4),
               "lr_end": float(f"{opt.param_groups[0]['lr']:.3g}"), "held_out": held_res,
               "seconds": round(time.perf_counter() - t_epoch, 1)}
        # written after every epoch: an interrupted run keeps its best epoch so far
        stop = run.end_epoch(row, net.state_dict(), better=run.better(lambda r: r["held_out"]["mean_auc"], row),
                             time_limit_s=time_limit_s)
        bar.write(json.dumps(row))
        if stop:
            break
    bar.close()
    return run.result()
