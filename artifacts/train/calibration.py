"""Recipe ``calibration``: fit the Platt curves of a training-free detector on generator data.

The detector is a :class:`~artifacts.detectors.calibrated.CalibratedDetector`: ``raw(image)``
gives its raw map and image statistic (or ``not_applicable``); a fusion gives several raw
features per pixel and per image, and the same fit becomes a stacked logistic combiner. For each seed the generator makes a manipulated image (even seeds) or an authentic one through the same
post-processing (odd seeds), from the photos the ``calibration`` split allows. Image-level
curve: image statistic vs manipulated/authentic. Pixel-level curve: balanced samples of
manipulated vs untouched pixels. Both are fitted on the first 75 % of the seeds; the last 25 %
are held out and their AUCs are recorded with the file (synthetic data: an honest check of the
fit, not a benchmark).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.calibration import fit_logistic
from artifacts.types import Detection
from artifacts.weights import file_sha256

FORMAT = "artifacts-calibration/1"
PIXELS_PER_CLASS = 400
JPEG_QUALITY = (70, 96)  # quality range of calibration samples stored as JPEG


def as_stored(pixels: np.ndarray, encoding: str | None, rng: np.random.Generator):
    """The sample as a detector would read it from disk: as generated, or through a JPEG file."""
    from artifacts.io import ImageData, load_image

    if encoding is None:
        return ImageData(pixels=pixels, meta={"format": "generated"})
    if encoding != "jpeg":
        raise ValueError(f"unknown calibration encoding {encoding!r}")
    from artifacts.io import encode_image

    return load_image(encode_image(pixels, ".jpg", quality=int(rng.integers(*JPEG_QUALITY))))


def calibrate(info, out: str, *, n: int = 400, seed: int = 10_000, progress: bool = True, **overrides: Any) -> dict:
    from tqdm.auto import tqdm

    from artifacts.datasets.manipulation import GeneratorConfig, authentic, generate
    from artifacts.datasets.splits import load_split
    from artifacts.metrics import roc_auc
    from artifacts.registry import build_config

    if n < 8:
        raise ValueError("calibration needs at least 8 images (--n)")
    config = build_config(info, overrides)
    detector = info.cls(config=config, weights=None, device="cpu")
    photos = load_split("manipulation")["calibration"]
    gen_cfg = GeneratorConfig(kinds=tuple(getattr(info.cls, "calibration_kinds", GeneratorConfig().kinds)),
                              **dict(getattr(info.cls, "calibration_generator", None) or {}))
    rng = np.random.default_rng(seed)
    n_fit = int(round(n * 0.75))
    img_x, img_y, pix = [], [], {"fit": ([], []), "held": ([], [])}
    stats_fit = []
    for i in tqdm(range(n), desc="calibrating", unit="image", disable=not progress):
        s = seed + i
        sample = generate(s, config=gen_cfg, photos=photos) if i % 2 == 0 else authentic(s, config=gen_cfg, photos=photos)
        raw = detector.raw(as_stored(sample.image, info.cls.calibration_encoding, rng))
        if isinstance(raw, Detection):  # not applicable to this sample
            continue
        features = raw.map.reshape(-1, *sample.mask.shape)  # (K, H, W): K = 1 for a single raw map
        part = "fit" if i < n_fit else "held"
        img_x.append(np.atleast_1d(raw.stat))
        img_y.append(int(sample.kind != "authentic"))
        stats_fit.append(part == "fit")
        for label, where in ((1, sample.mask), (0, ~sample.mask)):
            idx = np.flatnonzero(where)
            if idx.size:
                take = rng.choice(idx, size=min(PIXELS_PER_CLASS, idx.size), replace=False)
                pix[part][0].append(features.reshape(len(features), -1)[:, take].T)
                pix[part][1].append(np.full(take.size, label))
    img_x, img_y, fit_rows = np.stack(img_x), np.array(img_y), np.array(stats_fit)
    px = {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in pix.items()}
    image_cal = fit_logistic(img_x[fit_rows], img_y[fit_rows])
    pixel_cal = fit_logistic(*px["fit"])
    held = {
        "image_auc": round(roc_auc(image_cal.linear(img_x[~fit_rows].T), img_y[~fit_rows]), 4),
        "pixel_auc": round(roc_auc(pixel_cal.linear(px["held"][0].T), px["held"][1]), 4),
        "image_accuracy_at_0.5": round(float(((image_cal(img_x[~fit_rows].T) >= 0.5) == img_y[~fit_rows]).mean()), 4),
        "n_images": int((~fit_rows).sum()),
    }
    record = {
        "format": FORMAT,
        "model": info.full_name,
        "config": dataclasses.asdict(config),
        "pixel": pixel_cal.to_dict(),
        "image": image_cal.to_dict(),
        "fit": {
            "seeds": [seed, seed + n_fit - 1],
            "held_out_seeds": [seed + n_fit, seed + n - 1],
            "photos": photos,
            "generator": dataclasses.asdict(gen_cfg),
            "pixels_per_class_per_image": PIXELS_PER_CLASS,
            "held_out": held,
        },
    }
    return write_record(info, out, record, held)


def write_record(info, out: str, record: dict, held_out: dict) -> dict:
    """Write a calibration record as ``OUT/<the spec's file name>``; returns file, sha256 and the
    held-out figures (what `artifacts train` prints)."""
    spec = info.weight_spec()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (spec.file if spec else f"{info.name}_calibration.json")
    path.write_text(json.dumps(record, indent=1, default=list) + "\n")
    return {"file": str(path), "sha256": file_sha256(path), "held_out": held_out}
