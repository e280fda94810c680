"""Training-free dMRI detectors: slice outliers, interlace/vibration checks, the fused default QC."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from artifacts.datasets.dmri_artifacts import simulate
from tests.conftest import shared

UIH = ("dmri", "uih-umr770", "dti_tra_dir16_AP_9.nii.gz")
TOSHIBA = ("dmri", "toshiba-galan", "DTI_ortho_7006.nii.gz")
PHILIPS = ("dmri", "philips-dwi", "701_DTI_Biobank_2mm_MB3S2_EPI.nii.gz")  # the held-out vendor


@pytest.fixture(scope="module")
def uih():
    from artifacts.io.dmri import load_dwi

    return load_dwi(shared(*UIH))


def _noisy(series, seed=0):
    from artifacts.detectors.dmri.qc import clean_draw

    return clean_draw(series, 50_000 + seed)


def _kw(s):
    return dict(pe_axis=s.phase_encoding_axis, zooms=s.zooms, slice_timing=s.sidecar.get("SliceTiming"))


def test_registered_and_default():
    from artifacts.registry import default_model, list_models

    names = list_models(task="dmri")
    assert {"dmri/outliers", "dmri/checks", "dmri/qc"} <= set(names)
    assert default_model("dmri") == "dmri/qc"


def test_modified_z_pooled_and_loo_hat():
    from artifacts.detectors.dmri.outliers import hat_matrix, modified_z

    x = np.zeros((10, 4))
    x[3, 2] = -1.0
    z = modified_z(x + np.random.default_rng(0).normal(0, 0.01, x.shape))
    assert z.argmin() == 3 * 4 + 2 and z.min() < -20
    # a single b=0 has leverage 1 (nothing predicts it), DW volumes do not
    b = np.r_[0, np.full(12, 1000.0)]
    g = np.random.default_rng(1).normal(size=(13, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    h = np.diag(hat_matrix(b, g))
    assert h[0] > 0.99 and (h[1:] < 0.95).all()


def test_outliers_find_a_dropout_at_its_volume_and_slice(uih):
    from artifacts.detectors.dmri.outliers import DWIOutliers, OutliersConfig

    data, lab = simulate((_noisy(uih), uih.bvals, uih.bvecs), "dropout", 0.75, 3, **_kw(uih))
    det = DWIOutliers(OutliersConfig()).detect(data, bvals=uih.bvals, bvecs=uih.bvecs)
    sl = det.elements["slice"]
    for v in np.flatnonzero(lab.volumes):
        assert det.elements["volume"][v] >= 0.5
        assert lab.slices[v, int(np.argmax(sl[v]))], "the worst slice of a dropout volume is a dropped one"
    assert set(det.meta["flagged_volumes"]) == set(np.flatnonzero(lab.volumes).tolist())
    assert det.meta["unpredictable"] == [0]  # the series' only b=0


def test_interlace_finds_venetian(uih):
    from artifacts.detectors.dmri.checks import interlace
    from artifacts.detectors.dmri.outliers import loo_residuals, signal_mask

    data, lab = simulate((_noisy(uih), uih.bvals, uih.bvecs), "venetian", 0.75, 2, **_kw(uih))
    raw = interlace(data, signal_mask(data, uih.bvals), loo_residuals(data, uih.bvals, uih.bvecs))["raw"]
    top = np.argsort(raw)[::-1][: lab.volumes.sum()]
    assert set(top) == set(np.flatnonzero(lab.volumes))
    assert raw[lab.volumes].min() > 5 * np.median(raw[~lab.volumes])


def test_vibration_check_finds_the_direction(uih):
    from artifacts.detectors.dmri.checks import vibration
    from artifacts.detectors.dmri.outliers import signal_mask

    data, lab = simulate((_noisy(uih), uih.bvals, uih.bvecs), "vibration", 1.0, 0, **_kw(uih))
    assert lab.volumes.sum() >= 2
    out = vibration(data, signal_mask(data, uih.bvals), uih.bvals, uih.bvecs)
    hit = np.flatnonzero(lab.volumes)
    assert np.mean(out["raw"][hit]) > np.percentile(out["raw"][~lab.volumes], 90)
    assert abs(out["direction"][0]) > 0.8  # the simulator's default axis is x


def test_qc_on_clean_real_series_flags_few_volumes():
    from artifacts.registry import create

    qc = create("dmri/qc")
    assert qc.calibrated
    flagged = total = 0
    for parts in (UIH, TOSHIBA, PHILIPS):
        det = qc.detect(str(shared(*parts)))
        flagged += len(det.meta["flagged_volumes"])
        total += det.elements["volume"].size
        assert set(det.categories) >= {"dropout", "venetian", "vibration", "motion"}
        assert len(det.meta["flagged_volumes"]) <= 2, parts
    assert flagged <= 0.05 * total


def test_outline_motion_points_at_the_moved_volumes_only(uih):
    """The outline fit against the median outline: moved volumes stand out and do not raise the others
    (a model prediction from all volumes would carry their displacement into every volume)."""
    from artifacts.detectors.dmri.checks import displacement
    from artifacts.detectors.dmri.outliers import signal_mask

    data, lab = simulate((_noisy(uih), uih.bvals, uih.bvecs), "motion", 0.5, 3, **_kw(uih))
    moved = lab.volumes & (np.asarray(uih.bvals) > 50)
    assert moved.sum() >= 2
    out = displacement(data, signal_mask(data, uih.bvals), uih.bvals, uih.zooms, uih.phase_encoding_axis)
    rest = (~lab.volumes) & (np.asarray(uih.bvals) > 50)
    assert out["motion_mm"][moved].min() > 1.5 * np.nanmax(out["motion_mm"][rest])
    clean = displacement(_noisy(uih), signal_mask(data, uih.bvals), uih.bvals, uih.zooms, uih.phase_encoding_axis)
    assert np.nanmax(np.abs(out["motion_mm"][rest] - clean["motion_mm"][rest])) < 0.2


def test_qc_flags_a_spike_in_the_lone_b0(uih):
    """A lone b=0 has a richer spectrum than every other volume; against its own slices a spike
    still stands out, so it is flagged like a spike in a DW volume (and the clean b=0 is not)."""
    from artifacts.registry import create

    qc = create("dmri/qc")
    data = _noisy(uih, 2)
    b0 = int(np.flatnonzero(np.asarray(uih.bvals) <= 50)[0])
    clean = qc.detect(data, bvals=uih.bvals, bvecs=uih.bvecs)
    assert clean.elements["volume/spike"][b0] < 0.5
    z = data.shape[2] // 2
    k = np.fft.fft2(data[:, :, z, b0])
    k[9, -14] += np.abs(k[0, 0])  # the simulator's strongest spike (amplitude 1 at s=1)
    data[:, :, z, b0] = np.abs(np.fft.ifft2(k)).astype(np.float32)
    det = qc.detect(data, bvals=uih.bvals, bvecs=uih.bvecs)
    assert det.elements["volume/spike"][b0] >= 0.5 and det.elements["slice"][b0, z] >= 0.5


def test_qc_flags_a_spike_slice_and_a_dropout(uih):
    from artifacts.registry import create

    qc = create("dmri/qc")
    noisy = _noisy(uih, 1)
    data, lab = simulate((noisy, uih.bvals, uih.bvecs), "spike", 1.0, 4, **_kw(uih))
    det = qc.detect(data, bvals=uih.bvals, bvecs=uih.bvecs)
    for v in np.flatnonzero(lab.volumes):
        assert det.elements["volume"][v] >= 0.5
        assert det.elements["volume/spike"][v] >= 0.5
    data, lab = simulate((noisy, uih.bvals, uih.bvecs), "dropout", 1.0, 5, **_kw(uih))
    det = qc.detect(data, bvals=uih.bvals, bvecs=uih.bvecs)
    assert all(det.elements["volume"][v] >= 0.5 for v in np.flatnonzero(lab.volumes))
    # the slice map points at the dropped slices
    sl = det.elements["slice"] >= 0.5
    tp = (sl & lab.slices).sum()
    assert tp / max(sl.sum(), 1) > 0.8 and tp / lab.slices.sum() > 0.8


def test_checks_detector_runs_on_arrays():
    from artifacts.registry import create

    rng = np.random.default_rng(0)
    b = np.r_[0, 0, np.full(10, 1000.0)]
    g = rng.normal(size=(12, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    g[:2] = 0
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in (24, 24, 8)], indexing="ij")
    head = ((x / 0.8) ** 2 + (y / 0.45) ** 2 + (z / 1.2) ** 2 < 1).astype(np.float32)
    data = 500 * head[..., None] * np.exp(-b * 0.8e-3) + rng.rayleigh(5, (24, 24, 8, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = create("dmri/checks").detect(data.astype(np.float32), bvals=b, bvecs=g)
    assert det.elements["slice"].shape == (12, 8)
    assert set(det.categories) == {"venetian", "vibration", "spike", "ghosting", "gibbs", "noise", "motion", "eddy"}


@pytest.mark.slow
def test_calibration_recipe_reproduces_the_shipped_file(tmp_path):
    from importlib import resources

    from artifacts.registry import model_info
    from artifacts.train import train

    shared("dmri")
    info = model_info("dmri/qc")
    shipped = json.loads(resources.files("artifacts.detectors.dmri.calibration")
                         .joinpath(info.weight_spec().file).read_text())
    fit = shipped["fit"]
    out = train("dmri", "qc", str(tmp_path), options={"n": fit["draws_per_series"]["fit"],
                                                       "n_check": fit["draws_per_series"]["check"],
                                                       "seed": fit["seed"]}, progress=False)
    again = json.loads(open(out["file"]).read())
    assert again["kinds"] == shipped["kinds"]
    assert again["fit"]["held_out_fp"] == fit["held_out_fp"]
