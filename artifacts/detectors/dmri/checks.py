"""``dmri/checks``: DTIPrep-style and physics-based checks, one raw statistic per artifact kind.

Each check turns one physical signature into a raw number per volume (and, where the artifact is
local to slices, per (volume, slice)); higher = more evidence. They are uncalibrated here: the
``dmri/checks`` detector maps each through a fixed logistic of a robust z-score (documented
defaults), and ``dmri/qc`` maps them through thresholds fitted on clean draws of the training
series (:mod:`artifacts.train.dmri_qc`).

=========== ==================================================================================
kind        check (physical reasoning)
=========== ==================================================================================
venetian    *interlace* (DTIPrep's interlace-wise check): with an interleaved acquisition the
            even and odd slices are two packages excited at different times; motion or spin
            history between them changes one package's intensity. Two statistics: the parity
            difference of the leave-one-out prediction residual (median of even slices minus
            median of odd slices; DW volumes and b=0 volumes with a b=0 partner) and, for every
            volume, the alternation of its own slice-mean profile ``(-1)^z (c_z - (c_{z-1} +
            c_{z+1}) / 2)`` (log slice means), each as a robust z across the series' volumes.
vibration   *vibration* (Gallichan et al. 2010): table vibration dephases spins when the gradient
            lies near one direction, so DW volumes near that direction lose signal in a smooth
            region. The volume's log signal minus the voxel-wise median of all DW volumes, smoothed
            with a large Gaussian (anisotropy of single voxels averages out), its most negative
            region as a robust z across volumes; plus a *direction-coherence* term: the evidence
            is raised when the volumes that lose signal have gradients that cluster around one
            direction (the loss is fitted as ``c (g . u)^2`` over the volumes).
spike       *k-space spike*: an RF spike is one large k-space sample in one slice, so the slice's
            in-plane spectrum has an isolated peak. Per (volume, slice): the largest excess of the
            log k-space magnitude over the median of the same k-location in all volumes, minus the
            median excess (log units), outside the central 20 % of k-space; the same against the
            median of the same k-location over the volume's own slices; the smaller of the two (a
            spike exceeds both references; a lone b=0, whose spectrum is richer than the DW
            volumes', exceeds only the first).
ghosting    *N/2 ghost*: a phase error between odd and even EPI echoes makes a copy of the object
            shifted by half the FOV along phase encoding. The mean signal in the background where
            that copy falls, minus the mean in the remaining background, over the mean object
            signal; as a robust z across the volumes of the same b-value group (an acquisition's
            own ghost is common to all; a lone b=0 is not assessed).
gibbs       *k-space truncation*: a truncated acquisition has no signal beyond its k-space edge,
            not even noise. ``log(E_mid / E_outer)`` of the in-plane power spectrum (mid band
            0.3-0.45 of Nyquist, kept by any truncation to >= half of k-space; outer band beyond
            0.92).
noise       *noise level*: white noise fills k-space evenly, while the object's spectrum decays;
            the outer-band magnitude is the noise standard deviation. ``log(sigma / S_ref)`` with
            ``S_ref`` the mean b=0 foreground signal.
motion      *inter-volume motion*: the volume's *outline* (the smoothed volume over half its
            median head signal, clipped to 1: diffusion contrast saturates away, only where the
            head is remains) registered to the voxel-wise median outline of its group (b=0 / DW)
            by one Lucas-Kanade step of a 12-parameter affine displacement in a band around the
            head's edge (the volume's own outlier slices left out: a dropped slice loses its
            outline, it does not move); the RMS displacement along readout and slice axes in mm
            (eddy fields act along phase encoding only). The median reference is not spoiled by a
            minority of moved volumes, as a model prediction from all volumes would be.
eddy        *eddy currents*: the same fit's displacement along phase encoding (voxels) - eddy
            fields shift, shear and scale along PE only - and, since the eddy field of a volume is
            proportional to its gradient (``e = C g``), its four PE parameters (shift, and the
            scale/shear terms along readout, PE and slice) regressed on the gradient directions of
            the series (trimmed: the worst-fitting quarter of volumes refitted out); each volume's
            evidence is the RMS displacement the regression predicts for it, times the share of
            the parameters' energy the gradient explains (a gradient-coherent shear pattern, not
            chance misfit of one volume).
dropout     see :mod:`artifacts.detectors.dmri.outliers` (slice signal loss).
=========== ==================================================================================

Volumes nothing predicts (the only b=0 of a series) get no residual-based evidence, and a group of
fewer than 3 volumes (a lone b=0) no motion/eddy evidence; their own-profile and k-space checks
still run.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from artifacts.detectors.dmri.base import DWIDetector, DWIScores
from artifacts.detectors.dmri.outliers import (B0_THRESHOLD, Residuals, logistic, loo_residuals,
                                               signal_mask, slice_medians)
from artifacts.registry import register_model

#: kinds each check gives evidence of, in report order
CHECK_KINDS = ("venetian", "vibration", "spike", "ghosting", "gibbs", "noise", "motion", "eddy")


def volume_z(x: np.ndarray, valid: np.ndarray | None = None, *, floor: float = 1e-3) -> np.ndarray:
    """Robust z across volumes: ``0.6745 (x - median) / MAD`` (MAD floored); invalid rows 0."""
    x = np.asarray(x, float)
    valid = np.isfinite(x) if valid is None else (np.asarray(valid, bool) & np.isfinite(x))
    out = np.zeros_like(x)
    if valid.sum() < 3:
        return out
    med = np.median(x[valid])
    mad = max(float(np.median(np.abs(x[valid] - med))), floor)
    out[valid] = 0.6745 * (x[valid] - med) / mad
    return out


# ----------------------------------------------------------------------------- interlace


def interlace(data: np.ndarray, mask: np.ndarray, res: Residuals | None) -> dict:
    """Venetian-blind evidence per volume: parity difference of residuals, own-profile alternation."""
    n, nz = data.shape[3], data.shape[2]
    cnt = mask.sum(axis=(0, 1))
    ok = cnt >= max(20, 0.05 * cnt.max(initial=0))
    sums = (data * mask[..., None]).sum(axis=(0, 1))
    c = np.log(np.maximum(sums / np.maximum(cnt, 1)[:, None], 1e-6)).T  # (N, Z)
    alt = np.zeros(n)
    if nz >= 4:
        inner = np.arange(1, nz - 1)
        inner = inner[ok[inner] & ok[inner - 1] & ok[inner + 1]]
        if inner.size >= 2:
            second = c[:, inner] - 0.5 * (c[:, inner - 1] + c[:, inner + 1])
            alt = np.median(second * np.where(inner % 2 == 0, 1.0, -1.0)[None, :], axis=1)
    z_profile = np.abs(volume_z(alt, floor=0.004))
    z_resid = np.zeros(n)
    if res is not None and res.predictable.sum() >= 3 and nz >= 2:
        med = slice_medians(res.resid)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            par = np.nanmedian(med[:, 0::2], axis=1) - np.nanmedian(med[:, 1::2], axis=1)
        z_resid = np.abs(volume_z(par, res.predictable, floor=0.004))
    return {"profile_alternation": alt, "z_profile": z_profile, "z_residual": z_resid,
            "raw": np.maximum(z_profile, z_resid)}


# ----------------------------------------------------------------------------- k-space


def kspace(data: np.ndarray, mask: np.ndarray, bvals: np.ndarray) -> dict:
    """Spike (per slice), Gibbs and noise (per volume) statistics from the in-plane spectra."""
    nx, ny, nz, n = data.shape
    from scipy import fft as sfft

    k = np.abs(sfft.fft2(data, axes=(0, 1), workers=-1)).astype(np.float32)  # (X, Y, Z, N), complex64 inside
    fx = np.abs(np.fft.fftfreq(nx))[:, None] / 0.5
    fy = np.abs(np.fft.fftfreq(ny))[None, :] / 0.5
    fmax = np.maximum(fx, fy)
    # mid band below half Nyquist: kept by any truncation the check is meant for (>= 50 % of k-space)
    outer, mid, centre = fmax >= 0.92, (fmax >= 0.3) & (fmax < 0.45), fmax < 0.2
    p = k.astype(np.float64) ** 2
    e_outer = p[outer].mean(axis=(0, 1)) if outer.any() else np.ones(n)  # (N,)
    e_mid = p[mid].mean(axis=(0, 1)) if mid.any() else np.ones(n)
    tiny = 1e-12
    gibbs = np.log((e_mid + tiny) / (e_outer + tiny))
    b0 = bvals <= B0_THRESHOLD
    ref_img = data[..., b0].mean(axis=3) if b0.any() else data.mean(axis=3)
    s_ref = float(ref_img[mask].mean()) if mask.any() else float(ref_img.mean() or 1.0)
    sigma = np.sqrt(e_outer / (nx * ny))  # white-noise sigma of each volume (image units)
    noise = np.log(np.maximum(sigma, tiny) / max(s_ref, tiny))
    logk = np.log(k + 1e-6 * (float(k.max()) or 1.0))
    # two references for the same k-sample: the same slice in all volumes, and all slices of the same
    # volume; a spike stands out against both, while a volume whose contrast differs from the others
    # (a lone b=0) stands out only against the first, and an unusual slice only against the second
    spike = _peak_excess(logk, np.median(logk, axis=3, keepdims=True), centre)
    if nz >= 4:
        spike = np.minimum(spike, _peak_excess(logk, np.median(logk, axis=2, keepdims=True), centre))
    return {"spike": spike, "gibbs": gibbs, "noise": noise, "s_ref": s_ref}


def _peak_excess(logk: np.ndarray, ref: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(N, Z): the largest log k-space excess over ``ref`` outside the ``centre`` of each slice, minus
    the slice's median excess."""
    nx, ny, nz, n = logk.shape
    excess = logk - ref
    excess[centre] = -np.inf
    peak = excess.reshape(nx * ny, nz, n).max(axis=0)  # (Z, N)
    excess[centre] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nanmedian(excess.reshape(nx * ny, nz, n), axis=0)
    return (peak - typical).T


# ----------------------------------------------------------------------------- ghost


def ghost(data: np.ndarray, mask: np.ndarray, pe_axis: int, bvals: np.ndarray | None = None) -> dict:
    """N/2 ghost evidence: background signal where the half-FOV-shifted object falls."""
    from scipy.ndimage import binary_dilation

    n = data.shape[3]
    big = binary_dilation(mask, iterations=3)
    shifted = np.roll(big, big.shape[pe_axis] // 2, axis=pe_axis)
    gregion = shifted & ~big
    ctrl = ~big & ~shifted
    per_slice = np.zeros((n, data.shape[2]))
    vol = np.zeros(n)
    if gregion.sum() < 20 or ctrl.sum() < 20 or not mask.any():
        return {"ratio": vol, "slice": per_slice, "raw": vol}
    m = mask.astype(np.float32)
    gm, cm = gregion.astype(np.float32), ctrl.astype(np.float32)
    flat = data.reshape(-1, data.shape[2], n)

    def sums(w):
        return (flat * w.reshape(-1, data.shape[2], 1)).sum(axis=0)  # (Z, N)

    s_obj, s_g, s_c = sums(m), sums(gm), sums(cm)
    n_obj, n_g, n_c = m.sum((0, 1)), gm.sum((0, 1)), cm.sum((0, 1))
    vol = ((s_g.sum(0) / n_g.sum()) - (s_c.sum(0) / n_c.sum())) / np.maximum(s_obj.sum(0) / n_obj.sum(), 1e-9)
    ok = (n_g >= 10) & (n_c >= 10) & (n_obj >= 10)
    with np.errstate(all="ignore"):
        sl = (s_g / np.maximum(n_g, 1)[:, None] - s_c / np.maximum(n_c, 1)[:, None]) / \
            np.maximum(s_obj / np.maximum(n_obj, 1)[:, None], 1e-9)
    per_slice[:, ok] = sl[ok].T
    # robust z within each b-value group (b=0 / DW): their edges and hence their background leakage
    # differ; a group of fewer than 3 volumes (a lone b=0) has no reference and is not assessed
    b0 = np.zeros(n, bool) if bvals is None else np.asarray(bvals) <= B0_THRESHOLD
    raw = np.full(n, np.nan)
    for group in (b0, ~b0):
        if group.sum() >= 3:
            raw[group] = volume_z(vol[group], floor=0.002)
    return {"ratio": vol, "slice": per_slice, "raw": raw}


# ----------------------------------------------------------------------------- motion / eddy


def outline_images(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Contrast-free outline of every volume: the smoothed volume over half its median foreground
    signal, clipped to [0, 1] and smoothed again. Inside the head everything saturates to 1, so
    diffusion contrast (anisotropy, CSF darkening with b) leaves it alone; only the outline, and
    hence where the volume *is*, remains."""
    from scipy.ndimage import gaussian_filter

    out = np.empty(data.shape, np.float32)
    for v in range(data.shape[3]):
        sm = gaussian_filter(data[..., v], 1.0)
        thr = 0.5 * float(np.median(sm[mask])) if mask.any() else float(np.median(sm))
        out[..., v] = gaussian_filter(np.clip(sm / max(thr, 1e-9), 0.0, 1.0), 1.0)
    return out


def displacement(data: np.ndarray, mask: np.ndarray, bvals: np.ndarray, zooms, pe_axis: int,
                 exclude: np.ndarray | None = None) -> dict:
    """Affine displacement of each volume's outline against the voxel-wise median outline of its
    group (b=0 / diffusion-weighted), one Lucas-Kanade step of 12 parameters in a band around the
    head's edge.

    The median reference is robust to a minority of displaced volumes (the moved volumes do not
    spoil the others' reference, as they would a model prediction), and the outline carries no
    diffusion contrast. ``exclude`` (N, Z): a volume's slices left out of its own fit (slice
    outliers: a dropped slice moves the outline of that slice only by losing it). ``motion_mm``:
    RMS over the band of the displacement along the readout and slice axes, in mm (eddy fields
    move signal along phase encoding only, so they do not enter it); ``eddy_vox``: RMS of the PE
    component in voxels. A group of fewer than 3 volumes (a lone b=0) has no reference: NaN."""
    from scipy.ndimage import binary_dilation, binary_erosion

    n = data.shape[3]
    motion, eddy = np.full(n, np.nan), np.full(n, np.nan)
    params = np.full((n, 12), np.nan)
    band = binary_dilation(mask, iterations=3) & ~binary_erosion(mask, iterations=3)
    if band.sum() < 50:
        return {"motion_mm": motion, "eddy_vox": eddy, "params": params}
    soft = outline_images(data, mask)
    idx = np.nonzero(band)
    coords = [(idx[a] - (data.shape[a] - 1) / 2) / data.shape[a] for a in range(3)]
    z = np.asarray(zooms, float)[:3]
    other = [a for a in range(3) if a != pe_axis]
    b0 = np.asarray(bvals, float) <= B0_THRESHOLD
    ones = np.ones_like(coords[0])
    for group in (b0, ~b0):
        if group.sum() < 3:
            continue
        ref = np.median(soft[..., group], axis=3)
        grads = np.gradient(ref)
        x = np.stack([g[idx] * c for g in grads for c in (ones, *coords)], axis=1).astype(np.float64)
        for v in np.flatnonzero(group):
            rows = slice(None)
            if exclude is not None and exclude[v].any():
                rows = ~np.asarray(exclude[v], bool)[idx[2]]
                if rows.sum() < 50:
                    continue
            xv = x[rows]
            xtx = xv.T @ xv
            coef = np.linalg.solve(xtx + 1e-9 * np.trace(xtx) / 12 * np.eye(12), xv.T @ (soft[..., v][idx][rows] - ref[idx][rows]))
            p = -coef  # displacement parameters (voxels): obs(x) ~ ref(x - d)
            params[v] = p
            d = [p[4 * a] + p[4 * a + 1] * coords[0] + p[4 * a + 2] * coords[1] + p[4 * a + 3] * coords[2]
                 for a in range(3)]
            motion[v] = float(np.sqrt(np.mean(sum((d[a] * z[a]) ** 2 for a in other))))
            eddy[v] = float(np.sqrt(np.mean(d[pe_axis] ** 2)))
    return {"motion_mm": motion, "eddy_vox": eddy, "params": params}


def eddy_coherence(params: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray, pe_axis: int) -> np.ndarray:
    """RMS PE displacement (voxels) that a regression of each volume's PE parameters on its gradient
    direction predicts (eddy fields are linear in the gradient); NaN where not assessable."""
    n = params.shape[0]
    out = np.full(n, np.nan)
    p = params[:, 4 * pe_axis: 4 * pe_axis + 4]
    use = (bvals > B0_THRESHOLD) & np.isfinite(p).all(axis=1)
    if use.sum() < 7:
        return out
    g = bvecs[use] * (bvals[use] / bvals[use].max())[:, None]
    pu = p[use]
    coef, *_ = np.linalg.lstsq(g, pu, rcond=None)
    # trimmed refit: a volume with another artifact (a dropped slice, head motion) misfits and would
    # spread its displacement to every volume through the regression; drop the worst quarter
    miss = np.linalg.norm(pu - g @ coef, axis=1)
    keep = miss <= np.quantile(miss, 0.75)
    if keep.sum() >= 6:
        coef, *_ = np.linalg.lstsq(g[keep], pu[keep], rcond=None)
    else:
        keep = np.ones(len(pu), bool)
    # share of the (kept) parameters' energy the gradient explains: ~1 for an eddy field, ~3/K for
    # chance misfit of K volumes; it weights the evidence so that noise-driven fits stay small
    resid = pu[keep] - g[keep] @ coef
    r2 = float(max(0.0, 1.0 - (resid ** 2).sum() / max(float((pu[keep] ** 2).sum()), 1e-12)))
    fit = r2 * (g @ coef)  # (K, 4): shift, readout, PE and slice terms over coordinates in [-0.5, 0.5]
    out[use] = np.sqrt(fit[:, 0] ** 2 + (fit[:, 1:] ** 2).sum(axis=1) / 12.0)
    return out


# ----------------------------------------------------------------------------- vibration


def vibration(data: np.ndarray, mask: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray) -> dict:
    """Regional signal loss of DW volumes against the voxel-wise median of all DW volumes, and the
    coherence of the losing volumes' gradient directions."""
    from scipy.ndimage import gaussian_filter

    n = data.shape[3]
    dw = np.flatnonzero(bvals > B0_THRESHOLD)
    loss = np.zeros(n)
    out = {"loss": loss, "z": np.zeros(n), "coherence": 0.0, "direction": [0.0, 0.0, 0.0], "raw": np.zeros(n)}
    if dw.size < 4 or not mask.any():
        return out
    # a regional effect: work on 2x2 in-plane block means (4x less smoothing work)
    nx2, ny2 = data.shape[0] // 2 * 2, data.shape[1] // 2 * 2
    small = data[:nx2, :ny2][..., dw].reshape(nx2 // 2, 2, ny2 // 2, 2, data.shape[2], dw.size).mean(axis=(1, 3))
    msmall = mask[:nx2, :ny2].reshape(nx2 // 2, 2, ny2 // 2, 2, data.shape[2]).mean(axis=(1, 3)) > 0.5
    # against the voxel-wise median DW volume, not the tensor prediction: a loss growing with
    # (g . u)^2 is itself tensor-shaped, so a tensor fit would absorb much of it
    logs = np.log(np.maximum(small, 1e-3 * float(np.percentile(small, 99)) + 1e-9))
    q = logs - np.median(logs, axis=3, keepdims=True)
    sig = np.array(small.shape[:3]) * 0.12
    m = msmall.astype(np.float32)
    wm = gaussian_filter(m, sig)
    keep = wm > 0.3
    if not keep.any():
        return out
    sm = np.stack([gaussian_filter(q[..., j] * m, sig) / np.maximum(wm, 1e-6) for j in range(dw.size)], axis=-1)
    sm = sm[keep]  # (V, K) regional log signal of each DW volume against the median volume
    # voxel-wise robust spread across volumes: regions where anisotropy makes DW volumes differ
    # (large fibre bundles) need a larger loss before it counts
    loss[dw] = -sm.min(axis=0)
    z = np.zeros(n)
    z[dw] = volume_z(loss[dw], floor=0.003)
    # direction coherence: weighted scatter of the gradients of the volumes that lose signal
    w = np.clip(z[dw], 0, None)
    coherence, u = 0.0, np.zeros(3)
    if w.sum() > 0:
        g = bvecs[dw]
        t = (g * w[:, None]).T @ g / w.sum()
        evals, evecs = np.linalg.eigh(t)
        u = evecs[:, -1]
        coherence = float(evals[-1])  # 1 = all losing volumes share one axis, 1/3 = isotropic
    align = np.abs(bvecs @ u) if np.any(u) else np.zeros(n)
    # a volume's vibration evidence: its regional loss, raised when it lies near the common axis of
    # the losing volumes and that axis is well defined
    raw = np.zeros(n)
    raw[dw] = z[dw] * (0.5 + align[dw] ** 2 * coherence)
    out.update(loss=loss, z=z, coherence=coherence, direction=np.round(u, 4).tolist(), raw=raw)
    return out


# ----------------------------------------------------------------------------- all together


def run_checks(data: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray, *, zooms=None, pe_axis: int | None = None,
               res: Residuals | None = None, mask: np.ndarray | None = None) -> dict:
    """Every check's raw statistics for one series (arrays of the :class:`DWIScores` shapes)."""
    data = np.asarray(data, np.float32)
    pe = 1 if pe_axis is None else int(pe_axis)
    mask = signal_mask(data, bvals) if mask is None else mask
    res = res or loo_residuals(data, bvals, bvecs)
    zooms = np.ones(3) if zooms is None else zooms
    k = kspace(data, mask, bvals)
    gh = ghost(data, mask, pe, bvals)
    il = interlace(data, mask, res)
    from artifacts.detectors.dmri.outliers import detrend_parity, modified_z

    # a volume's own outlier slices (a dropout, a spike) are left out of its outline fit
    outlier_cells = np.abs(modified_z(detrend_parity(slice_medians(res.resid)), res.predictable)) > 6.0
    mo = displacement(data, mask, bvals, zooms, pe, exclude=outlier_cells)
    vib = vibration(data, mask, bvals, bvecs)
    n = data.shape[3]
    mo["eddy_fit_vox"] = eddy_coherence(mo["params"], np.asarray(bvals, float), np.asarray(bvecs, float), pe)
    eddy_z = np.nan_to_num(mo["eddy_fit_vox"], nan=0.0)
    motion = np.nan_to_num(mo["motion_mm"], nan=0.0)
    raw = {"venetian": il["raw"], "vibration": vib["raw"], "spike": k["spike"].max(axis=1),
           "ghosting": gh["raw"], "gibbs": k["gibbs"], "noise": k["noise"], "motion": motion, "eddy": eddy_z}
    return {"raw": raw, "spike_slice": k["spike"], "ghost_slice": gh["slice"], "interlace": il, "kspace": k,
            "ghost": gh, "displacement": mo, "vibration": vib, "mask": mask, "residuals": res}


@dataclass
class ChecksConfig:
    # raw value at which each check scores 0.5 and the logistic width (uncalibrated defaults: robust
    # z of 5 for the z-type checks; log / mm / voxel units for the others)
    venetian: tuple = (5.0, 1.0)
    vibration: tuple = (5.0, 1.0)
    spike: tuple = (4.0, 0.5)
    ghosting: tuple = (5.0, 1.0)
    gibbs: tuple = (6.0, 1.0)
    noise: tuple = (-2.5, 0.3)
    motion: tuple = (0.5, 0.1)
    eddy: tuple = (0.3, 0.05)
    threshold: float | None = None


def score_checks(out: dict, params: dict) -> tuple[dict, np.ndarray]:
    """Per-kind volume evidence in [0, 1] and the (N, Z) slice map of the slice-local checks."""
    kinds = {kind: np.nan_to_num(logistic(out["raw"][kind], *params[kind])) for kind in CHECK_KINDS}
    spike_slice = logistic(out["spike_slice"], *params["spike"])
    n, nz = spike_slice.shape
    sl = spike_slice.copy()
    for kind in CHECK_KINDS:
        if kind != "spike":
            sl = np.maximum(sl, np.repeat(kinds[kind][:, None], nz, axis=1))
    return kinds, sl


@register_model("dmri", "checks", config=ChecksConfig,
                description="interlace, vibration, k-space spike, N/2 ghost, Gibbs, noise, motion and eddy checks")
class DWIChecks(DWIDetector):
    """DTIPrep-style and physics-based per-kind checks with fixed (uncalibrated) logistic maps."""

    def analyse(self, series) -> DWIScores:
        out = run_checks(series.data, series.bvals, series.bvecs, zooms=series.zooms,
                         pe_axis=series.phase_encoding_axis)
        params = {k: getattr(self.config, k) for k in CHECK_KINDS}
        kinds, sl = score_checks(out, params)
        vol = np.max(np.stack(list(kinds.values())), axis=0)
        return DWIScores(volume=vol, slice=sl, kinds=kinds,
                         meta={"raw": {k: np.round(v, 4).tolist() for k, v in out["raw"].items()},
                               "vibration_direction": out["vibration"]["direction"],
                               "vibration_coherence": round(out["vibration"]["coherence"], 4)})
