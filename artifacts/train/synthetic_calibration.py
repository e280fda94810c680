"""Recipe ``synthetic-calibration``: fit the logistic curves of a training-free synthetic-image detector.

For the detectors of :mod:`artifacts.detectors.synthetic.spectral`, ``.correlation`` and
``.fusion`` (``artifacts train synthetic --model spectral|correlation|fusion -o DIR``).

Data: the ``synthetic`` split list's training roots plus its ``extra_real`` photos (or ``data=DIR``
in a 0_real/1_fake layout), divided by the split's hash-based held-out fraction
(:func:`artifacts.train.synthetic.split_samples`, shared with the SAFE recipe); the split's ``eval``
roots are never read. Only the training part is fitted; the held-out part is scored.

The training data confound format and size with the class (generated images mostly PNG, real ones
mostly JPEG; sizes differ by source), so every image goes through the same steps whatever its class:

1. the centre ``crop`` px (default 256, the smallest training size; offsets on the 8 px grid), so
   the statistics see the same area and window count for every image;
2. *history*: a crop from a losslessly stored file first gets a JPEG pass (quality 65-100, its 8x8
   grid at a random offset) with the probability that gives both classes the same share of crops
   with a JPEG past (:func:`artifacts.train.synthetic.history_probabilities`);
3. *storage*: the crop is read twice, once as a PNG file and once as a JPEG file at a random
   quality in ``JPEG_QUALITY`` (75-95), as the detector would read them.

The detector's ``raw`` statistic of each stored crop (one or several features) is the input of the
image-level logistic curve; cells of its raw map (at most ``CELLS_PER_IMAGE`` per crop, labelled by
the image's class) are the input of the map-level curve. Both are fitted with
:func:`artifacts.calibration.fit_logistic` (class-balanced) and written in the calibration format of
:mod:`artifacts.train.calibration`, with the held-out AUCs: overall, per storage (PNG / JPEG), per
source, and the "container" AUC of the score for telling a crop's JPEG copy from its PNG copy (0.5 =
the score does not see the container).
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

import numpy as np

from artifacts.calibration import fit_logistic
from artifacts.train.calibration import FORMAT, write_record
from artifacts.types import Detection

JPEG_QUALITY = (75, 95)  # storage quality range (inclusive)
HISTORY_QUALITY = (65, 100)  # quality range of the earlier JPEG pass (inclusive)
CELLS_PER_IMAGE = 32


def centre_crop(pixels: np.ndarray, size: int) -> np.ndarray | None:
    """The centre ``size`` x ``size`` crop, its corner on the 8 px grid (None when smaller)."""
    h, w = pixels.shape[:2]
    if min(h, w) < size:
        return None
    y, x = (h - size) // 2 // 8 * 8, (w - size) // 2 // 8 * 8
    return np.ascontiguousarray(pixels[y : y + size, x : x + size])


def with_history(pixels: np.ndarray, size: int, quality: int, rng: np.random.Generator) -> np.ndarray:
    """The centre crop after a JPEG pass of its neighbourhood, the 8x8 grid at a random offset."""
    from artifacts.datasets.processing import jpeg

    h, w = pixels.shape[:2]
    y, x = (h - size) // 2 // 8 * 8, (w - size) // 2 // 8 * 8
    dy, dx = min(y, int(rng.integers(0, 8))), min(x, int(rng.integers(0, 8)))
    window = np.ascontiguousarray(pixels[y - dy : y + size + 8, x - dx : x + size + 8])
    return np.ascontiguousarray(jpeg(window, quality)[dy : dy + size, dx : dx + size])


def stored(pixels: np.ndarray, ext: str, quality: int = 95):
    """The crop as read back from a file of that format (``ImageData`` with its metadata)."""
    from artifacts.io import encode_image, load_image

    return load_image(encode_image(pixels, ext, quality=quality))


def _auc(scores, labels) -> float | None:
    from artifacts.metrics import roc_auc

    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return None
    return round(float(roc_auc(np.asarray(scores, dtype=np.float64), labels)), 4)


def calibrate_synthetic(info, out: str, *, data: str | None = None, seed: int = 0, progress: bool = True,
                        crop: int = 256, **overrides: Any) -> dict:
    """Fit and write the calibration file of a training-free synthetic-image detector."""
    from tqdm.auto import tqdm

    from artifacts.registry import build_config
    from artifacts.train.synthetic import counts, decode, history_probabilities, split_samples

    t_start = time.perf_counter()
    if crop < 64:
        raise ValueError("synthetic-calibration: crop must be at least 64 px")
    config = build_config(info, overrides)
    detector = info.cls(config=config, weights=None, device="cpu")
    train, held, where = split_samples(data)
    samples = train + held
    is_held = np.array([False] * len(train) + [True] * len(held))
    decoded = decode(samples, progress=progress)
    p_history = history_probabilities(samples, decoded)
    rng = np.random.default_rng(seed)

    rows = []  # per stored crop: stat, label, held, storage, source, JPEG past
    cells = {False: ([], []), True: ([], [])}
    skipped = Counter()
    for i, (s, (pixels, lossy)) in enumerate(tqdm(list(zip(samples, decoded)), desc="calibrating", unit="image",
                                                   disable=not progress)):
        # every draw happens for every image, so the stream does not depend on which are skipped
        hist_draw, hist_q = rng.random(), int(rng.integers(HISTORY_QUALITY[0], HISTORY_QUALITY[1] + 1))
        store_q = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        cell_seed = int(rng.integers(2**31))
        c = centre_crop(pixels, crop)
        if c is None:
            skipped["smaller than the crop"] += 1
            continue
        history = not lossy and hist_draw < p_history[s.label]
        if history:
            c = with_history(pixels, crop, hist_q, rng=np.random.default_rng(cell_seed))
        for storage, image in (("png", stored(c, ".png")), ("jpeg", stored(c, ".jpg", quality=store_q))):
            raw = detector.raw(image)
            if isinstance(raw, Detection):
                skipped[f"not applicable ({storage})"] += 1
                continue
            rows.append((np.atleast_1d(raw.stat).astype(np.float64), s.label, bool(is_held[i]), storage,
                         str(s.source), bool(history or lossy)))
            feats = raw.map.reshape(-1, *raw.map.shape[-2:])
            flat = feats.reshape(len(feats), -1)
            take = np.random.default_rng(cell_seed).choice(flat.shape[1], size=min(CELLS_PER_IMAGE, flat.shape[1]),
                                                           replace=False)
            cells[bool(is_held[i])][0].append(flat[:, take].T)
            cells[bool(is_held[i])][1].append(np.full(take.size, s.label))

    if not rows:
        raise ValueError("synthetic-calibration: the detector applied to no training crop")
    x = np.stack([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    held_rows = np.array([r[2] for r in rows])
    storage = np.array([r[3] for r in rows])
    source = np.array([r[4] for r in rows])
    clean = np.array([not r[5] for r in rows]) & (storage == "png")  # never saw JPEG (as far as known)
    for name, part in (("training", ~held_rows), ("held-out", held_rows)):
        if len(set(y[part])) < 2:
            raise ValueError(f"synthetic-calibration: the {name} part needs real and generated crops")
    image_cal = fit_logistic(x[~held_rows], y[~held_rows])
    cx = {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in cells.items() if v[0]}
    pixel_cal = fit_logistic(*cx[False])

    z = np.ravel(image_cal.linear(x.T))  # log-odds per stored crop
    h = held_rows
    held_out = {
        "image_auc": _auc(z[h], y[h]),
        "image_auc_png": _auc(z[h & (storage == "png")], y[h & (storage == "png")]),
        "image_auc_jpeg": _auc(z[h & (storage == "jpeg")], y[h & (storage == "jpeg")]),
        # PNG copies of crops with no known JPEG past (the training reals all have one, so this is
        # "generated, never compressed" vs real: an upper bound, not a fair comparison)
        "image_auc_png_no_jpeg_past_fakes": _auc(z[h & (clean | (y == 0)) & (storage == "png")],
                                                 y[h & (clean | (y == 0)) & (storage == "png")]),
        "image_accuracy_at_0.5": round(float(((z[h] >= 0) == y[h]).mean()), 4),
        "map_cell_auc": _auc(np.ravel(pixel_cal.linear(cx[True][0].T)), cx[True][1]) if True in cx else None,
        # does the score see the container? JPEG copy vs PNG copy of the same crops (0.5 = no)
        "container_auc": _auc(z[h], (storage[h] == "jpeg").astype(int)),
        "real_score_mean": {st: round(float(np.mean(1 / (1 + np.exp(-z[h & (storage == st) & (y == 0)])))), 4)
                            for st in ("png", "jpeg") if (h & (storage == st) & (y == 0)).any()},
        "per_source_mean_score": {src: round(float(np.mean(1 / (1 + np.exp(-z[h & (source == src)])))), 4)
                                  for src in sorted(set(source[h]))},
        "n_crops": int(h.sum()),
    }
    fit = {
        "image_auc_training": _auc(z[~h], y[~h]),
        "n_crops": int((~h).sum()),
    }
    record = {
        "format": FORMAT,
        "model": info.full_name,
        "config": dataclasses.asdict(config),
        "pixel": pixel_cal.to_dict(),
        "image": image_cal.to_dict(),
        "features": list(getattr(info.cls, "feature_names", ("stat",))),
        "fit": {
            "recipe": "synthetic-calibration",
            "data": where,
            "counts": {"training": counts(train, decoded[: len(train)]),
                       "held_out": counts(held, decoded[len(train) :])},
            "crop_px": crop,
            "storage": {"png": "lossless", "jpeg_quality": list(JPEG_QUALITY)},
            "history": {"quality": list(HISTORY_QUALITY),
                        "probability_lossless": {str(k): round(v, 4) for k, v in p_history.items()}},
            "cells_per_image": CELLS_PER_IMAGE,
            "seed": seed,
            "skipped": dict(skipped),
            "training": fit,
            "held_out": held_out,
            "seconds": round(time.perf_counter() - t_start, 1),
        },
    }
    return write_record(info, out, record, held_out)
