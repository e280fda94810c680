"""``dmri/outliers``: model-based slice outliers, in the spirit of FSL EDDY's outlier replacement
(Andersson et al. 2016, NeuroImage 141:556) and SOLID (Sairanen et al. 2018, NeuroImage 179:505).

**Prediction.** Every volume is predicted from the *other* volumes by a log-linear diffusion-tensor
model fitted voxel by voxel: ``log S = log S0 - b g^T D g`` (7 unknowns; with one b-value shell the
isotropic part and ``S0`` are told apart by the b=0 volumes). The leave-one-out prediction needs no
refit: for a linear model with hat matrix ``H = X X^+`` the leave-one-out residual of row ``i`` is
``r_i / (1 - h_ii)`` (the PRESS residual). A b=0 volume is thereby predicted from the other b=0
volumes (their mean, through the constant); a volume nothing else predicts (``h_ii ~ 1``: the only
b=0 of a series) gets no prediction and no outlier score (``meta["unpredictable"]``).

**Slice statistic.** Per (volume, slice): the median over the slice's voxels of the leave-one-out
log residual ``log(observed / predicted)`` (all voxels with signal: brain *and* background, so a
slice that holds only noise still shows a dropout as a drop of its noise floor). Signal lost by
bulk motion during diffusion encoding scales the whole slice and moves this median by
``log(1 - loss)`` (about -0.1 for a 10 % loss) while the median over thousands of voxels of a clean
slice stays within a few thousandths.

**Standardisation.** Per slice across the predictable volumes, the modified z-score of Iglewicz and
Hoaglin, ``z = 0.6745 (x - median) / MAD``, with the MAD *pooled* over the series' (volume, slice) cells (floored at ``mad_floor``, log units):
with 12-16 volumes a per-slice MAD is too noisy a scale. Before that, each volume's own offset per
slice package (even / odd slices) is removed (:func:`detrend_parity`): real series drift in global
intensity from volume to volume. Negative ``z`` is signal loss.

**Score.** ``slice = logistic((-z - z_threshold) / z_width)``; the default ``z_threshold = 9``
(width 1.5) makes 0.5 the outlier boundary. It is far above EDDY's 4 standard deviations because
the pooled MAD is the *typical* cell's spread while edge slices and real intensity drifts make the
tails heavy, and every (volume, slice) cell of a series is tested (several hundred tests per
series): on clean draws of the training series the 99th percentile of a volume's worst cell is
about 8 (``dmri/qc``'s fitted centre is 9.4). ``volume`` = the highest slice score of the volume; ``kinds["dropout"]`` =
the volume score (signal-loss evidence). Positive deviations are kept in ``meta`` (a spike or
ghost can raise a slice) but do not score here. ``dmri/qc`` reuses :func:`loo_residuals` and
:func:`slice_medians` and fuses them with :mod:`artifacts.detectors.dmri.checks`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from artifacts.detectors.dmri.base import DWIDetector, DWIScores
from artifacts.registry import register_model

B0_THRESHOLD = 50.0
MIN_SIGNAL = 1e-3


def design_matrix(bvals: np.ndarray, bvecs: np.ndarray) -> np.ndarray:
    """(N, 7) log-linear DTI design: ``[1, -b gx^2, -b gy^2, -b gz^2, -2b gxgy, -2b gxgz, -2b gygz]``."""
    b = np.asarray(bvals, float)
    b = np.where(b <= B0_THRESHOLD, 0.0, b)
    g = np.asarray(bvecs, float)
    q = np.stack([g[:, 0] ** 2, g[:, 1] ** 2, g[:, 2] ** 2, 2 * g[:, 0] * g[:, 1], 2 * g[:, 0] * g[:, 2],
                  2 * g[:, 1] * g[:, 2]], axis=1)
    return np.hstack([np.ones((b.size, 1)), -b[:, None] * q])


def hat_matrix(bvals: np.ndarray, bvecs: np.ndarray) -> np.ndarray:
    """``H = X X^+`` of the DTI design (rank-deficient designs handled by the pseudo-inverse)."""
    x = design_matrix(bvals, bvecs)
    return x @ np.linalg.pinv(x, rcond=1e-8)


def signal_mask(data: np.ndarray, bvals: np.ndarray) -> np.ndarray:
    """Foreground: the mean b=0 image (all volumes when there is none) above 20 % of its 98th percentile."""
    b0 = bvals <= B0_THRESHOLD
    ref = data[..., b0].mean(axis=3) if b0.any() else data.mean(axis=3)
    pos = ref[ref > 0]
    if pos.size == 0:
        return np.zeros(ref.shape, bool)
    return ref > 0.2 * np.percentile(pos, 98)


@dataclass
class Residuals:
    """Leave-one-out log residuals of a series."""

    log_obs: np.ndarray  # (X, Y, Z, N) log signal (clipped at MIN_SIGNAL * robust max)
    resid: np.ndarray  # (X, Y, Z, N) leave-one-out residual log(obs / pred); NaN where unpredictable
    predictable: np.ndarray  # (N,) bool
    leverage: np.ndarray  # (N,) h_ii

    def prediction(self, v: int) -> np.ndarray:
        """Leave-one-out predicted signal of volume ``v`` (linear units)."""
        return np.exp(self.log_obs[..., v] - self.resid[..., v])


def loo_residuals(data: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray, *, max_leverage: float = 0.95,
                  robust: bool = True) -> Residuals:
    """Leave-one-out tensor-model residuals in log space for every voxel and volume (PRESS residuals).

    With ``robust`` a second pass refits each voxel without the (volume, slice) cells whose first-pass
    residual median is a strong outlier (|z| > 6), so one dropout or spike slice does not pull the
    predictions of the other volumes of that slice.
    """
    data = np.asarray(data, np.float32)
    x, y, z, n = data.shape
    hi = float(np.percentile(data[data > 0], 99)) if (data > 0).any() else 1.0
    log_obs = np.log(np.maximum(data, MIN_SIGNAL * hi))
    h = hat_matrix(bvals, bvecs)
    lev = np.clip(np.diag(h).copy(), 0.0, 1.0)
    predictable = lev < max_leverage
    flat = log_obs.reshape(-1, n)  # (V, N)
    r = flat - flat @ h.T  # ordinary residuals
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = r / (1.0 - lev)[None, :]
    loo[:, ~predictable] = np.nan
    resid = loo.reshape(x, y, z, n).astype(np.float32)
    if robust and predictable.sum() >= 8:
        excluded = np.zeros((n, z), bool)
        for _ in range(2):  # the worst cells first; a second round for outliers they were hiding
            resid, excluded = _robust_pass(log_obs, resid, bvals, bvecs, predictable, max_leverage, excluded)
    return Residuals(log_obs.astype(np.float32), resid, predictable, lev)


def _robust_pass(log_obs, resid, bvals, bvecs, predictable, max_leverage, excluded, z_cut: float = 6.0):
    """Refit the slices that hold a strong outlier (either sign: a k-space spike raises a slice and
    would push the other volumes' predictions up) without those (volume, slice) cells.

    Only the cells within a factor 3 of the slice's worst |z| are excluded in one round: a strong
    outlier shifts the predictions (and so the z) of every other volume of its slice, and those
    secondary deviations must not be excluded with it."""
    med = slice_medians(resid)
    z = np.abs(modified_z(detrend_parity(med), predictable))
    worst = z.max(axis=0, keepdims=True)
    bad = excluded | ((z > z_cut) & (z >= worst / 3.0) & predictable[:, None])
    todo = np.flatnonzero((bad & ~excluded).any(axis=0))
    if todo.size == 0:
        return resid, bad
    x = design_matrix(bvals, bvecs)
    out = resid.copy()
    for zi in todo:
        keep = ~bad[:, zi]
        xk = x[keep]
        pk = np.linalg.pinv(xk, rcond=1e-8)  # (7, K)
        ys = log_obs[:, :, zi, :].reshape(-1, x.shape[0])  # (V, N)
        coef = ys[:, keep] @ pk.T  # (V, 7)
        pred = coef @ x.T  # (V, N): kept volumes are in-sample, excluded ones out of sample
        hk = xk @ pk
        lev = np.clip(np.diag(hk), 0, 1)
        r = ys - pred
        rk = r[:, keep]
        with np.errstate(divide="ignore", invalid="ignore"):
            rk = rk / (1.0 - lev)[None, :]
        rk[:, lev >= max_leverage] = np.nan
        r[:, keep] = rk
        r[:, ~predictable] = np.nan
        out[:, :, zi, :] = r.reshape(log_obs.shape[0], log_obs.shape[1], -1).astype(np.float32)
    return out, bad


def slice_medians(resid: np.ndarray) -> np.ndarray:
    """(N, Z) median over each slice's voxels of the residual (NaN for unpredictable volumes)."""
    x, y, z, n = resid.shape
    flat = resid.reshape(x * y, z, n)
    with np.errstate(all="ignore"):
        return np.median(flat, axis=0).T  # NaN columns stay NaN


def modified_z(x: np.ndarray, valid: np.ndarray | None = None, *, mad_floor: float = 0.005) -> np.ndarray:
    """Modified z-score of ``x`` (N volumes, Z slices): ``0.6745 (x - median) / MAD`` with the median
    taken per slice across the ``valid`` volumes and the MAD pooled over all valid (volume, slice)
    cells of the series (floored at ``mad_floor``). A per-slice MAD from 12-16 volumes is itself too
    noisy (its relative error is ~30 %), which makes per-slice z heavy-tailed; the pooled MAD is the
    series' own typical slice-level prediction error. Rows not ``valid`` get 0."""
    x = np.asarray(x, float)
    valid = np.ones(x.shape[0], bool) if valid is None else np.asarray(valid, bool)
    out = np.zeros_like(x)
    if valid.sum() < 3:
        return out
    xv = x[valid]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(xv, axis=0)
        dev = xv - med
        mad = np.nanmedian(np.abs(dev)) if np.isfinite(dev).any() else mad_floor
    out[valid] = np.nan_to_num(0.6745 * dev / max(float(mad), mad_floor))
    return out


def logistic(x, centre: float, width: float):
    return 1.0 / (1.0 + np.exp(-np.clip((np.asarray(x, float) - centre) / width, -60, 60)))


@dataclass
class OutliersConfig:
    z_threshold: float = 9.0  # modified z (pooled MAD) of signal loss at which a slice scores 0.5
    z_width: float = 1.5  # logistic width (z units)
    mad_floor: float = 0.005  # log units (~0.5 % signal): smallest pooled spread
    robust: bool = True  # second pass without strong outliers
    threshold: float | None = None  # operating threshold (default 0.5)


def detrend_parity(med: np.ndarray) -> np.ndarray:
    """Remove each volume's own offset per slice package (median over its even, resp. odd, slices).

    Real series differ in global intensity from volume to volume (drift, spin history, the two
    packages of an interleaved acquisition); a dropout hits one or two shots, so the median of the
    package is its clean level."""
    out = np.array(med, float)
    for parity in (0, 1):
        cols = out[:, parity::2]
        with warnings.catch_warnings():  # all-NaN rows: volumes nothing predicts
            warnings.simplefilter("ignore", RuntimeWarning)
            off = np.nanmedian(cols, axis=1, keepdims=True) if cols.size else 0.0
        out[:, parity::2] = cols - np.nan_to_num(off)
    return out


def slice_outliers(data, bvals, bvecs, config: OutliersConfig, res: Residuals | None = None) -> dict:
    """The raw and scored slice outliers of a series (shared with ``dmri/qc``)."""
    res = res or loo_residuals(data, bvals, bvecs, robust=config.robust)
    med = slice_medians(res.resid)
    z = modified_z(detrend_parity(med), res.predictable, mad_floor=config.mad_floor)
    score = logistic(-z, config.z_threshold, config.z_width)
    score[~res.predictable] = 0.0
    return {"residuals": res, "median": med, "z": z, "slice": score}


@register_model("dmri", "outliers", config=OutliersConfig,
                description="leave-one-out tensor prediction, slice outliers by modified z (EDDY/SOLID style)")
class DWIOutliers(DWIDetector):
    """Model-based slice outliers: leave-one-out DTI prediction, robust z of slice residuals."""

    def analyse(self, series) -> DWIScores:
        data = series.data
        out = slice_outliers(data, series.bvals, series.bvecs, self.config)
        sl = out["slice"].astype(np.float32)
        vol = sl.max(axis=1)
        z = out["z"]
        return DWIScores(volume=vol, slice=sl, kinds={"dropout": vol}, slices={"dropout": sl},
                         meta={"unpredictable": np.flatnonzero(~out["residuals"].predictable).tolist(),
                               "min_z": np.round(z.min(axis=1), 2).tolist(),
                               "max_z": np.round(z.max(axis=1), 2).tolist(),
                               "z_threshold": self.config.z_threshold})
