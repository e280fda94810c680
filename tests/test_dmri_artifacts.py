"""The seeded diffusion-MRI artifact simulator: determinism, labels, physics of each kind."""
from __future__ import annotations

import json

import numpy as np
import pytest

from artifacts.datasets.dmri_artifacts import KINDS, simulate
from tests.conftest import shared

LOCAL = ("dropout", "motion", "venetian", "ghosting", "spike", "eddy", "vibration")
B0_EXEMPT = ("dropout", "eddy", "vibration")


def _series():
    """An ellipsoid 'head' (inside the central half along PE, so an N/2 ghost lands on background)
    with a few sharp-edged blobs, 2 b=0 + 8 DW volumes; two gradients lie near x."""
    shape = (32, 32, 12)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    head = (x / 0.8) ** 2 + (y / 0.45) ** 2 + (z / 1.1) ** 2 < 1
    tissue = np.where(head, 1.0, 0.0) + 0.5 * ((x - 0.2) ** 2 + y ** 2 < 0.05)
    g = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [0.95, 0.31, 0], [0, 1, 0], [0, 0, 1],
                  [0.707, 0.707, 0], [0, 0.707, 0.707], [0.577, -0.577, 0.577], [0.31, 0, 0.95]], float)
    g[2:] /= np.linalg.norm(g[2:], axis=1, keepdims=True)
    b = np.r_[0, 0, np.full(8, 1000.0)]
    adc = 0.7e-3 + 0.5e-3 * x[..., None] ** 2
    data = (800 * tissue[..., None] * np.exp(-b * adc)).astype(np.float32)
    return data, b, g


@pytest.fixture(scope="module")
def toy():
    return _series()


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_seeded_labelled_and_leaves_the_input_alone(toy, kind):
    data, b, g = toy
    before = data.copy()
    out, lab = simulate((data, b, g), kind, 0.8, seed=5)
    assert np.array_equal(data, before)  # input untouched
    out2, lab2 = simulate((data, b, g), kind, 0.8, seed=5)
    assert np.array_equal(out, out2) and np.array_equal(lab.slices, lab2.slices) and lab.params == lab2.params
    assert out.dtype == np.float32 and out.shape == data.shape
    n, nz = data.shape[3], data.shape[2]
    assert lab.volumes.shape == (n,) and lab.slices.shape == (n, nz)
    assert lab.volumes.dtype == bool and lab.slices.dtype == bool
    assert np.array_equal(lab.volumes, lab.slices.any(axis=1)) and lab.volumes.any()
    assert lab.kind == kind and lab.severity == 0.8 and lab.seed == 5
    changed = (out != data).any(axis=(0, 1)).T
    assert np.array_equal(changed, lab.slices)  # labelled slices changed, the rest exactly equal
    if kind in B0_EXEMPT:
        assert not lab.volumes[b <= 50].any()
    json.dumps(lab.to_dict())
    if kind == "gibbs":
        return  # truncation is a property of the acquisition: no random numbers
    other, lab3 = simulate((data, b, g), kind, 0.8, seed=6)
    assert not np.array_equal(out, other) or not np.array_equal(lab.slices, lab3.slices)


@pytest.mark.parametrize("kind", KINDS)
def test_severity_zero_is_identity_and_higher_is_stronger(toy, kind):
    data, b, g = toy
    out, lab = simulate((data, b, g), kind, 0.0, seed=1)
    assert np.array_equal(out, data) and not lab.slices.any() and not lab.volumes.any()
    weak, lw = simulate((data, b, g), kind, 0.3, seed=1)
    strong, ls = simulate((data, b, g), kind, 0.9, seed=1)
    assert np.abs(strong - data).sum() > np.abs(weak - data).sum()


def test_motion_moves_whole_volumes(toy):
    data, b, g = toy
    out, lab = simulate((data, b, g), "motion", 1.0, seed=2, fraction=0.3)
    assert lab.volumes.sum() == 3
    for v in np.flatnonzero(lab.volumes):
        assert lab.slices[v].sum() >= data.shape[2] - 2  # (an empty edge slice may stay empty)
        p = lab.params["volumes"][int(v)]
        assert len(p["rotation_deg"]) == 3 and max(map(abs, p["translation_mm"])) <= 3


def test_dropout_follows_multiband_and_venetian_one_parity(toy):
    data, b, g = toy
    nz = data.shape[2]
    out, lab = simulate((data, b, g), "dropout", 1.0, seed=3, multiband=2)
    for v in np.flatnonzero(lab.volumes):
        zs = set(np.flatnonzero(lab.slices[v]).tolist())
        assert all((z + nz // 2) % nz in zs for z in zs)  # simultaneous slices drop together
        ratio = out[..., sorted(zs), v].sum() / data[..., sorted(zs), v].sum()
        assert ratio < 0.6
    out, lab = simulate((data, b, g), "venetian", 1.0, seed=3)
    for v in np.flatnonzero(lab.volumes):
        zs = np.flatnonzero(lab.slices[v])
        assert len(set(zs % 2)) == 1 and out[..., zs, v].sum() < data[..., zs, v].sum()
    # slice timing (here: sequential ascending) decides which slices are one shot
    out, lab = simulate((data, b, g), "dropout", 1.0, seed=3, slice_timing=np.arange(nz) * 0.1)
    for v in np.flatnonzero(lab.volumes):
        zs = np.flatnonzero(lab.slices[v])
        assert np.all(np.diff(zs) == 1) or set(zs) >= {0, nz - 1}  # consecutive in time (may wrap)


def test_ghost_appears_at_half_the_field_of_view(toy):
    data, b, g = toy
    out, lab = simulate((data, b, g), "ghosting", 1.0, seed=4, pe_axis=1)
    v = int(np.flatnonzero(lab.volumes)[0])
    z = data.shape[2] // 2
    band = np.r_[0:5, 27:32]  # outside the head along PE (the head spans the central half)
    assert data[:, band, z, v].max() == 0
    ghost = out[:, band, z, v]
    assert ghost.max() > 0.05 * data[..., z, v].max()
    # the ghost is the object shifted by N/2 along PE
    diff = out[..., z, v] - data[..., z, v]
    shifted = np.roll(data[..., z, v], data.shape[1] // 2, axis=1)
    outside = np.zeros(data.shape[:2], bool)
    outside[:, band] = True
    assert np.corrcoef(diff[outside], shifted[outside])[0, 1] > 0.8


def test_spike_and_gibbs_are_visible_in_k_space(toy):
    data, b, g = toy
    out, lab = simulate((data, b, g), "spike", 1.0, seed=7)
    for v in np.flatnonzero(lab.volumes):
        p = lab.params["volumes"][int(v)]
        z, (kx, ky) = p["slice"], p["k"]
        assert lab.slices[v].sum() == 1 and lab.slices[v, z]
        k_out = np.abs(np.fft.fft2(out[..., z, v]))
        k_in = np.abs(np.fft.fft2(data[..., z, v]))
        assert k_out[kx, ky] > 2 * k_in[kx, ky]
        k_diff = np.abs(np.fft.fft2(out[..., z, v] - data[..., z, v]))
        # magnitude turns the wave's modulus on the empty background into a smooth offset: skip low k
        low = np.minimum(np.arange(32), 32 - np.arange(32)) <= 2
        k_diff[low[:, None] & low[None, :]] = 0
        peak = np.unravel_index(np.argmax(k_diff), k_diff.shape)
        assert peak in {(kx, ky), ((-kx) % 32, (-ky) % 32)}  # the spike (or its conjugate)
        assert k_diff.max() > 20 * np.median(k_diff)
    out, lab = simulate((data, b, g), "gibbs", 1.0, seed=0)
    assert lab.params["keep_fraction"] == 0.5
    nx, ny = data.shape[:2]
    fx, fy = np.meshgrid(np.abs(np.fft.fftfreq(nx)), np.abs(np.fft.fftfreq(ny)), indexing="ij")
    high = (fx > 0.3) | (fy > 0.3)
    z, v = data.shape[2] // 2, 2
    e_in = np.abs(np.fft.fft2(data[..., z, v])) ** 2
    e_out = np.abs(np.fft.fft2(out[..., z, v])) ** 2
    assert e_out[high].sum() / e_out.sum() < 0.2 * e_in[high].sum() / e_in.sum()
    # ringing: values beside a sharp edge oscillate (the clean profile is flat inside the head)
    line = out[:, ny // 2, z, v]
    assert np.abs(np.diff(np.sign(np.diff(line[10:22])))).sum() > 0


def test_eddy_shifts_along_phase_encoding_by_gradient(toy):
    data, b, g = toy
    out, lab = simulate((data, b, g), "eddy", 1.0, seed=8, pe_axis=1)
    assert lab.volumes.tolist() == [False, False] + [True] * 8
    ys = np.arange(data.shape[1])[None, :, None]
    shifts = []
    for v in range(2, 10):
        com_in = (data[..., v] * ys).sum() / data[..., v].sum()
        com_out = (out[..., v] * ys).sum() / out[..., v].sum()
        com_x_in = (data[..., v] * np.arange(32)[:, None, None]).sum() / data[..., v].sum()
        com_x_out = (out[..., v] * np.arange(32)[:, None, None]).sum() / out[..., v].sum()
        assert abs(com_x_out - com_x_in) < 0.05  # nothing moves along the readout axis
        shifts.append(com_out - com_in)
    assert max(np.abs(shifts)) > 0.1 and len(set(np.round(shifts, 3))) > 4  # depends on the gradient
    out, lab = simulate((data, b, g), "eddy", 1.0, seed=8, pe_axis=0)  # PE along the first axis
    moved = np.abs(out - data).sum(axis=(1, 2, 3))
    assert lab.volumes[2:].all() and (out[..., 2:] != data[..., 2:]).any()
    com_y = [(out[..., v] * ys).sum() / out[..., v].sum() - (data[..., v] * ys).sum() / data[..., v].sum()
             for v in range(2, 10)]
    assert max(np.abs(com_y)) < 0.05 and moved.sum() > 0


def test_vibration_hits_volumes_near_the_direction(toy):
    data, b, g = toy
    out, lab = simulate((data, b, g), "vibration", 1.0, seed=9, direction=(1, 0, 0), angle=30)
    assert np.flatnonzero(lab.volumes).tolist() == [2, 3]  # g = x and 18 deg from x
    assert (out <= data + 1e-3).all()
    loss = data[..., 2] - out[..., 2]
    assert loss.max() > 0.3 * data[..., 2].max() and (loss == 0).mean() > 0.3  # spatially local


def test_rician_noise_floor(toy):
    data, b, g = toy
    out, lab = simulate((data, b, g), "noise", 1.0, seed=10)
    sigma = lab.params["sigma"]
    assert lab.slices.all() and (out >= 0).all()
    bg = out[data == 0]
    assert abs(bg.mean() / (sigma * np.sqrt(np.pi / 2)) - 1) < 0.05  # Rayleigh in the background
    bright = data > 600
    assert abs((out[bright] - data[bright]).mean()) < 0.1 * sigma + sigma ** 2 / data[bright].mean()


def test_bad_arguments(toy):
    data, b, g = toy
    with pytest.raises(ValueError, match="unknown kind"):
        simulate((data, b, g), "zipper", 0.5)
    with pytest.raises(ValueError, match="severity"):
        simulate((data, b, g), "noise", 1.5)
    with pytest.raises(ValueError, match="4-D"):
        simulate((data[..., 0], b, g), "noise", 0.5)
    with pytest.raises(ValueError, match="does not match"):
        simulate(data, "noise", 0.5, bvals=b[:5], bvecs=g[:5])
    out, lab = simulate(data, "noise", 0.5, bvals=b, bvecs=g.T)  # 3 x N accepted
    assert lab.volumes.all()
    with pytest.raises(ValueError, match="pe_axis"):
        simulate((data, b, g), "eddy", 0.5, pe_axis=2)


def test_real_series_every_kind():
    pytest.importorskip("nibabel")
    from artifacts.io.dmri import load_dwi

    s = load_dwi(shared("dmri", "uih-umr770", "dti_tra_dir16_AP_9.nii.gz"))
    clean = s.data
    for kind in KINDS:
        out, lab = simulate(s, kind, 0.6, seed=0)
        assert lab.volumes.any(), kind
        assert np.array_equal((out != clean).any(axis=(0, 1)).T, lab.slices), kind
        if kind in B0_EXEMPT:
            assert not lab.volumes[s.b0_mask].any()
    # the sidecar's SliceTiming (interleaved here) decides which slices drop together
    out, lab = simulate(s, "dropout", 1.0, seed=1)
    assert lab.params["slice_order"] == "SliceTiming"
