"""``dmri/qc`` (the task's default): slice outliers + per-kind checks, fused per volume and slice.

**Evidence.** One raw statistic per artifact kind and volume (higher = more evidence):

* ``dropout``: the slice outlier z of :mod:`~artifacts.detectors.dmri.outliers` (signal loss against
  the leave-one-out tensor prediction), per slice; the volume takes its worst slice;
* ``spike``: the k-space peak excess of :func:`~artifacts.detectors.dmri.checks.kspace`, per slice;
* ``venetian``, ``vibration``, ``ghosting``, ``motion``, ``eddy``: per volume
  (:mod:`~artifacts.detectors.dmri.checks`);
* ``gibbs``, ``noise``: properties of the acquisition, so per *series* (the median over its
  volumes), given to every volume.

**Calibration** (``artifacts train dmri --model qc -o DIR``, :func:`calibrate_qc`). Only *clean*
data of the training series of ``artifacts/datasets/splits/dmri.json`` are used: each series as
acquired plus ``n`` clean draws (fresh Rician noise realisations: the simulator's ``noise`` kind
at severity :data:`CLEAN_NOISE`, seeded; added noise hides fine structure the raw series still
show, e.g. in the k-space statistics, so both belong to "clean"): no
artifact is shown to the fit, so the operating point is a false-positive rate, not a tuned
detection rate. For each kind and volume group (b=0 / diffusion-weighted: their statistics differ,
e.g. a series' only b=0 volume has no prediction partner) the raw value that scores 0.5 is
``c = q99 + 0.25 (q99 - q90)`` of the clean values - about the 99.5th percentile of an exponential
tail - estimated robustly from a few hundred volumes; the logistic width is ``(q99 - q50) / 4``.
``gibbs`` and ``noise`` give one value per draw whose spread is mostly *between* series (each
scanner's own noise level and k-space coverage), so their centre is ``max + 0.5 (max - median)``.
Statistics a volume cannot have (no prediction partner, no diffusion weighting) are NaN and score
0. One kind has a physical floor on its centre (:data:`TOLERANCE`): ``eddy``, a distortion every
uncorrected EPI series has and preprocessing corrects, is flagged only above 0.6 voxel RMS of
gradient-predicted phase-encoding displacement. With nine kinds the volume-level false-positive
rate on clean training draws is a few percent; it is measured on further clean draws (``fit.held_out_fp``).

**Fusion.** ``kinds[k] = logistic((raw_k - c_k) / w_k)``, ``volume = max_k kinds[k]``,
threshold 0.5. The slice map: a volume with slice-local evidence (dropout or spike
>= 0.5) keeps its slice scores - a strongly dropped slice also moves whole-volume statistics such
as the motion fit, which then explain nothing more; otherwise each slice gets the highest of its
slice-local score and the whole-volume kinds' scores (motion, ghosting, ... hit the whole volume).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from artifacts.detectors.dmri.base import DWIDetector, DWIScores
from artifacts.detectors.dmri.checks import CHECK_KINDS, run_checks
from artifacts.detectors.dmri.outliers import (B0_THRESHOLD, OutliersConfig, logistic, loo_residuals,
                                               slice_outliers)
from artifacts.registry import register_model
from artifacts.weights import WeightSpec

CLEAN_NOISE = 0.1  # severity of the simulator's `noise` kind that makes a clean draw
QC_KINDS = ("dropout",) + CHECK_KINDS
SLICE_KINDS = ("dropout", "spike")
SERIES_KINDS = ("gibbs", "noise")
GROUPS = ("b0", "dw")
FORMAT = "artifacts-dmri-qc-calibration/1"

#: physical floors of a kind's centre (raw units). Eddy-current distortion is present in every
#: uncorrected EPI series and is corrected by standard preprocessing (FSL eddy); QC rejects a volume
#: only when its distortion exceeds a tolerance: 0.6 voxel RMS of the gradient-predicted PE
#: displacement, above the largest as-acquired value of the three vendors in ../shared/data/dmri
#: (Philips 0.50, Toshiba 0.26, UIH 0.08; chosen after seeing them, the held-out vendor included).
TOLERANCE = {"eddy": 0.6}

#: used without a calibration file (weights="none"): rough centres/widths, not fitted
UNCALIBRATED = {"dropout": (5.0, 0.75), "spike": (4.0, 0.5), "venetian": (5.0, 1.0), "vibration": (5.0, 1.0),
                "ghosting": (5.0, 1.0), "gibbs": (6.0, 1.0), "noise": (-2.5, 0.3), "motion": (0.5, 0.1),
                "eddy": (0.6, 0.05)}

CALIBRATION = WeightSpec(
    tag="qc-v2",
    file="dmri_qc_calib-v2.json",
    sha256="90b9cef2988cc27e3d6961c5e23bf7f6a0d5dd8a3b2ea55d65ebc8098532cd49",
    license="Apache-2.0",
    source="fitted by this package on clean draws (fresh Rician noise) of the `train` series of the dmri "
           "split (Toshiba, UIH); no artifact data, no held-out vendor",
    train_command="artifacts train dmri --model qc -o DIR",
    input_spec={"data": "4-D magnitude DWI (X, Y, Z, N), >= 7 volumes, FSL bval/bvec"},
    output="volume: max over artifact kinds of P-like evidence; 0.5 = the clean-draw ~99.7th percentile "
           "of each kind's statistic",
    threshold=0.5,
    package="artifacts.detectors.dmri.calibration",
)


@dataclass
class QCConfig:
    robust: bool = True  # second leave-one-out pass without strong slice outliers
    threshold: float | None = None  # operating threshold (default: the calibration's, 0.5)


def qc_features(data, bvals, bvecs, *, zooms=None, pe_axis=None, robust: bool = True) -> dict:
    """Raw per-kind statistics of one series: ``volume[kind]`` (N,), ``slice[kind]`` (N, Z) for the
    slice-local kinds, ``b0`` (N,) bool, plus the intermediate results."""
    data = np.asarray(data, np.float32)
    b = np.asarray(bvals, float)
    res = loo_residuals(data, b, bvecs, robust=robust)
    out = slice_outliers(data, b, bvecs, OutliersConfig(robust=robust), res)
    chk = run_checks(data, b, bvecs, zooms=zooms, pe_axis=pe_axis, res=res)
    n = data.shape[3]
    b0 = b <= B0_THRESHOLD
    pred = res.predictable
    sl = {"dropout": np.where(pred[:, None] & ~b0[:, None], -out["z"], np.nan), "spike": chk["spike_slice"]}
    vol = {k: sl[k].max(axis=1) for k in SLICE_KINDS}
    # not assessable -> NaN (scores 0): no prediction for motion/eddy, no diffusion weighting for vibration
    raw = dict(chk["raw"], motion=chk["displacement"]["motion_mm"], eddy=chk["displacement"]["eddy_fit_vox"],
               vibration=np.where(b0, np.nan, chk["raw"]["vibration"]))
    for k in CHECK_KINDS:
        if k in SLICE_KINDS:
            continue
        v = np.asarray(raw[k], float)
        vol[k] = np.full(n, float(np.median(v[b > B0_THRESHOLD] if (b > B0_THRESHOLD).any() else v))) \
            if k in SERIES_KINDS else v
    return {"volume": vol, "slice": sl, "b0": b <= B0_THRESHOLD, "checks": chk, "outliers": out}


def score_features(feat: dict, cal: dict) -> DWIScores:
    """Per-kind evidence, fused volume scores and the slice map from raw features and a calibration
    (``cal[kind][group] = (centre, width)``)."""
    b0 = feat["b0"]
    n, nz = feat["slice"]["dropout"].shape

    def params(kind):
        c = np.where(b0, cal[kind]["b0"][0], cal[kind]["dw"][0])
        w = np.where(b0, cal[kind]["b0"][1], cal[kind]["dw"][1])
        return c, w

    kinds, slices = {}, {}
    for kind in QC_KINDS:
        c, w = params(kind)
        kinds[kind] = np.nan_to_num(logistic((feat["volume"][kind] - c) / w, 0.0, 1.0))
        if kind in SLICE_KINDS:
            slices[kind] = np.nan_to_num(logistic((feat["slice"][kind] - c[:, None]) / w[:, None], 0.0, 1.0))
    kinds["dropout"][b0] = 0.0  # b=0 volumes cannot lose signal to diffusion-encoding motion
    slices["dropout"][b0] = 0.0
    stack = np.stack([kinds[k] for k in QC_KINDS])
    vol = stack.max(axis=0)
    local = np.maximum(slices["dropout"], slices["spike"])
    whole = np.stack([kinds[k] for k in QC_KINDS if k not in SLICE_KINDS]).max(axis=0)
    top = np.array(QC_KINDS)[stack.argmax(axis=0)]
    # a volume with slice-local evidence keeps its slice scores: a strong dropout or spike also moves
    # the whole-volume statistics (a dropped slice biases the motion fit), which explains nothing more
    slice_local = np.maximum(kinds["dropout"], kinds["spike"]) >= 0.5
    sl = np.where(slice_local[:, None], local, np.maximum(local, whole[:, None]))
    return DWIScores(volume=vol.astype(np.float32), slice=sl.astype(np.float32),
                     kinds={k: v.astype(np.float32) for k, v in kinds.items()},
                     slices={k: v.astype(np.float32) for k, v in slices.items()},
                     meta={"strongest_kind": top.tolist()})


def uncalibrated() -> dict:
    return {k: {g: list(v) for g in GROUPS} for k, v in UNCALIBRATED.items()}


@register_model("dmri", "qc", config=QCConfig, weights=(CALIBRATION,), default=True,
                description="fused QC: slice outliers + interlace/vibration/k-space/ghost/motion/eddy checks, "
                            "calibrated on clean draws of the training vendors")
class DWIQC(DWIDetector):
    """The default dMRI QC: per-volume, per-slice and per-kind artifact evidence."""

    recipe: ClassVar[str] = "dmri-qc-calibration"

    def __init__(self, config, weights=None, device=None):
        super().__init__(config, weights, device)
        self.cal, self.calibrated = uncalibrated(), False
        if weights is not None:
            try:
                rec = json.loads(weights.path.read_text())
                if rec.get("format") != FORMAT:
                    raise ValueError(f"format {rec.get('format')!r}, expected {FORMAT!r}")
                self.cal = {k: {g: list(rec["kinds"][k][g]) for g in GROUPS} for k in QC_KINDS}
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{weights.path}: not a usable dmri/qc calibration ({exc!r})") from None
            self.calibrated = True

    def analyse(self, series) -> DWIScores:
        feat = qc_features(series.data, series.bvals, series.bvecs, zooms=series.zooms,
                           pe_axis=series.phase_encoding_axis, robust=self.config.robust)
        scores = score_features(feat, self.cal)
        scores.meta.update(calibrated=self.calibrated,
                           raw={k: np.round(v, 4).tolist() for k, v in feat["volume"].items()},
                           unpredictable=np.flatnonzero(~feat["outliers"]["residuals"].predictable).tolist(),
                           vibration_direction=feat["checks"]["vibration"]["direction"])
        return scores


# ----------------------------------------------------------------------------- calibration recipe


def train_series(data: str | None = None) -> list[str]:
    """NIfTI files of the dmri split's ``train`` folders (paths relative to the project root), or of
    ``data`` (a folder) when given."""
    from artifacts.datasets.splits import load_split

    root = Path(__file__).resolve().parents[3]
    folders = [Path(data)] if data else [root / p for p in load_split("dmri")["train"]]
    files = sorted(str(f) for d in folders for f in list(d.glob("*.nii.gz")) + list(d.glob("*.nii")))
    if not files:
        raise FileNotFoundError(f"dmri-qc-calibration: no NIfTI series in {', '.join(map(str, folders))}")
    return files


def clean_draw(series, seed: int) -> np.ndarray:
    """A clean draw: the series with a fresh Rician noise realisation (``noise`` at :data:`CLEAN_NOISE`)."""
    from artifacts.datasets.dmri_artifacts import simulate

    return simulate(series, "noise", CLEAN_NOISE, seed)[0]


def fit_centres(values: np.ndarray, *, series: bool = False) -> list[float] | None:
    """``[centre, width]`` from clean values (None with fewer than 5 finite values).

    Volume-level kinds: ``centre = q99 + 0.25 (q99 - q90)`` (about the 99.5th percentile of an
    exponential tail, robust with a few hundred values), width ``(q99 - q50) / 4``. Series-level
    kinds (one value per draw; the spread is mostly between series): ``centre = max + 0.5 (max -
    median)``, width ``(max - median) / 4``."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size < 5:
        return None
    if series:
        q50, top = np.percentile(v, [50, 100])
        return [round(float(top + 0.5 * (top - q50)), 5), round(float(max((top - q50) / 4, 1e-3)), 5)]
    q50, q90, q99 = np.percentile(v, [50, 90, 99])
    return [round(float(q99 + 0.25 * (q99 - q90)), 5), round(float(max((q99 - q50) / 4, 1e-3)), 5)]


def calibrate_qc(info, out: str, *, n: int = 8, n_check: int = 4, seed: int = 0, data: str | None = None,
                 progress: bool = True, **overrides: Any) -> dict:
    """Fit the per-kind centres of ``dmri/qc`` on clean draws of the training series; check the
    volume false-positive rate on ``n_check`` further clean draws per series."""
    from tqdm.auto import tqdm

    from artifacts.io.dmri import load_dwi
    from artifacts.registry import build_config
    from artifacts.train.calibration import write_record

    t0 = time.perf_counter()
    if n < 2:
        raise ValueError("dmri-qc-calibration: n must be at least 2 clean draws per series")
    config = build_config(info, overrides)
    files = train_series(data)
    fit_rows, check_rows = [], []
    # i = -1: the series as acquired (its own noise only); 0..n-1 fitted draws; n.. checked draws
    jobs = [(f, i) for f in files for i in range(-1, n + n_check)]
    cache: dict[str, Any] = {}
    for f, i in tqdm(jobs, desc="clean draws", unit="draw", disable=not progress):
        s = cache.setdefault(f, load_dwi(f))
        arr = s.data if i < 0 else clean_draw(s, seed * 100_003 + i)
        feat = qc_features(arr, s.bvals, s.bvecs, zooms=s.zooms, pe_axis=s.phase_encoding_axis,
                           robust=config.robust)
        row = {"volume": feat["volume"], "b0": feat["b0"], "series": f, "slice": feat["slice"]}
        (fit_rows if i < n else check_rows).append(row)
    kinds = {}
    for kind in QC_KINDS:
        kinds[kind] = {}
        for group in GROUPS:
            sel = [r["volume"][kind][r["b0"] == (group == "b0")] for r in fit_rows]
            if kind in SERIES_KINDS:  # one value per draw
                sel = [v[:1] for v in sel]
            vals = np.concatenate(sel) if sel else np.zeros(0)
            kinds[kind][group] = fit_centres(vals, series=kind in SERIES_KINDS)
        # a group with too few values (b=0 of single-b0 series) borrows the other group's curve
        for group, other in (("b0", "dw"), ("dw", "b0")):
            if kinds[kind][group] is None:
                kinds[kind][group] = kinds[kind][other] or list(UNCALIBRATED[kind])
        if kind in TOLERANCE:
            for group in GROUPS:
                kinds[kind][group] = [max(kinds[kind][group][0], TOLERANCE[kind]), kinds[kind][group][1]]

    def fp(rows):
        scored = [score_features(r, kinds) for r in rows]  # rows hold volume, slice and b0
        allv = np.concatenate([sc.volume >= 0.5 for sc in scored])
        per_kind = {kind: round(float(np.concatenate([sc.kinds[kind] >= 0.5 for sc in scored]).mean()), 4)
                    for kind in QC_KINDS}
        return {"volumes": int(allv.size), "fp_rate": round(float(allv.mean()), 4), "per_kind": per_kind}

    held_out = {"clean_draws": len(check_rows), **fp(check_rows)} if check_rows else {}
    record = {
        "format": FORMAT,
        "model": info.full_name,
        "config": dataclasses.asdict(config),
        "kinds": kinds,
        "fit": {
            "recipe": "dmri-qc-calibration",
            "series": [os.path.relpath(f, Path(__file__).resolve().parents[3]) if not data else f
                       for f in files],
            "clean_noise_severity": CLEAN_NOISE,
            "draws_per_series": {"fit": n, "check": n_check, "as_acquired": 1},
            "seed": seed,
            "rule": "per kind and group, clean values: centre = q99 + 0.25 (q99 - q90), width = (q99 - q50) / 4; "
                    "series-level kinds: centre = max + 0.5 (max - median), width = (max - median) / 4; "
                    f"centres floored at the tolerances {TOLERANCE}",
            "training_fp": fp(fit_rows),
            "held_out_fp": held_out,
            "seconds": round(time.perf_counter() - t0, 1),
        },
    }
    return write_record(info, out, record, held_out)
