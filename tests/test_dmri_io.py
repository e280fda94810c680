"""Diffusion MRI input: NIfTI + FSL gradients, validation errors, sidecar privacy, BIDS, orientation check."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from artifacts.io.dmri import (DWIError, check_orientation, discover_bids, filter_sidecar, from_arrays,
                               load_dwi, validate_gradients)
from tests.conftest import REPO, shared

REAL = [
    ("philips-dwi/701_DTI_Biobank_2mm_MB3S2_EPI.nii.gz", (112, 112, 32, 17), 5),
    ("toshiba-galan/DTI_ALL_20d_10006.nii.gz", (64, 64, 40, 13), 1),
    ("toshiba-galan/DTI_ortho_7006.nii.gz", (64, 64, 40, 13), 1),
    ("uih-umr770/dti_tra_dir16_AP_9.nii.gz", (64, 64, 20, 17), 1),
    ("uih-umr770/dti_tra_dir16_PA_6.nii.gz", (64, 64, 20, 17), 1),
    ("uih-umr770/dti_tra_dir16_PA_rot_12.nii.gz", (64, 64, 20, 17), 1),
]


def _write(folder, name, data, bvals=None, bvecs=None, sidecar=None, affine=None):
    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(data), np.diag([-2.0, 2.0, 2.0, 1.0]) if affine is None else affine),
             str(path))
    if bvals is not None:
        (folder / f"{name}.bval").write_text(" ".join(f"{v:g}" for v in bvals) + "\n")
    if bvecs is not None:
        (folder / f"{name}.bvec").write_text("\n".join(" ".join(f"{v:g}" for v in row) for row in bvecs) + "\n")
    if sidecar is not None:
        (folder / f"{name}.json").write_text(json.dumps(sidecar))
    return path


def _toy(n=5):
    rng = np.random.default_rng(0)
    data = rng.uniform(50, 100, (4, 4, 3, n)).astype(np.float32)
    bvals = np.array([0] + [1000] * (n - 1), float)
    g = rng.normal(size=(n, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    g[0] = 0
    return data, bvals, g.T  # FSL layout 3 x N


@pytest.mark.parametrize("rel,shape,n_b0", REAL, ids=[r[0].split("/")[1][:14] for r in REAL])
def test_real_series_load(rel, shape, n_b0):
    path = shared("dmri", rel)
    s = load_dwi(path)
    assert s.shape == shape and s.n_volumes == shape[3]
    assert s.bvals.shape == (shape[3],) and s.bvecs.shape == (shape[3], 3)
    assert int(s.b0_mask.sum()) == n_b0
    norms = np.linalg.norm(s.bvecs[~s.b0_mask], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-6)
    vol = s.volume(shape[3] - 1)
    assert vol.dtype == np.float32 and vol.shape == shape[:3]
    # the sidecar keeps acquisition fields only; identifying ones are named, not copied
    assert s.sidecar["Manufacturer"] and "EchoTime" in s.sidecar
    for key in ("InstitutionName", "DeviceSerialNumber", "AcquisitionTime"):
        assert key not in s.sidecar
    assert "InstitutionName" in s.withheld


def test_errors_are_one_line_and_name_the_file(tmp_path):
    data, bvals, bvecs = _toy()
    p = _write(tmp_path, "short", data, bvals[:4], bvecs[:, :4])
    with pytest.raises(DWIError) as e:
        load_dwi(p)
    assert str(e.value) == f"{p}: 4 b-values/b-vectors but the image has 5 volumes"
    p = _write(tmp_path, "count", data, bvals[:4], bvecs)
    with pytest.raises(DWIError) as e:
        load_dwi(p)
    assert str(e.value) == f"{p}: 4 b-values but 5 b-vectors"
    bad = bvecs.copy()
    bad[1, 2] = np.nan
    p = _write(tmp_path, "nan", data, bvals, bad)
    with pytest.raises(DWIError) as e:
        load_dwi(p)
    assert str(e.value) == f"{p}: b-vectors contain NaN or Inf (volume 2)"
    p = _write(tmp_path, "flat", data[..., 0], bvals, bvecs)
    with pytest.raises(DWIError) as e:
        load_dwi(p)
    assert str(e.value) == f"{p}: 4x4x3 image is 3-D: a diffusion series needs 4-D data (X, Y, Z, volumes)"
    zero = data.copy()
    zero[..., 3] = 0
    p = _write(tmp_path, "zero", zero, bvals, bvecs)
    with pytest.raises(DWIError) as e:
        load_dwi(p)
    assert str(e.value) == f"{p}: volume 3 is all zeros"
    nog = bvecs.copy()
    nog[:, 2] = 0
    p = _write(tmp_path, "nog", data, bvals, nog)
    with pytest.raises(DWIError) as e:
        load_dwi(p)
    assert str(e.value) == f"{p}: volume 2 has b=1000 but a zero gradient vector"
    p = _write(tmp_path, "shape", data, bvals, bvecs[:2])
    with pytest.raises(DWIError) as e:
        load_dwi(p)
    assert str(e.value) == f"{p}: b-vectors must be 3xN or Nx3, got shape (2, 5)"
    p = _write(tmp_path, "nobval", data, None, bvecs)
    with pytest.raises(DWIError) as e:
        load_dwi(p)
    assert str(e.value) == f"{p}: no b-value file (looked for nobval.bval)"
    assert "\n" not in str(e.value) and isinstance(e.value, ValueError)
    again = pickle.loads(pickle.dumps(e.value))
    assert str(again) == str(e.value) and again.filename == str(p)
    nanimg = data.copy()
    nanimg[0, 0, 0, 1] = np.inf
    with pytest.raises(DWIError, match=r"^<arrays>: volume 1 contains NaN or Inf$"):
        from_arrays(nanimg, bvals, bvecs)


def test_validate_accepts_nx3_and_normalises_with_a_note():
    data, bvals, bvecs = _toy()
    g = bvecs.T * 1.5  # N x 3, too long
    notes = []
    b, out = validate_gradients(bvals, g, data.shape, notes=notes)
    assert out.shape == (5, 3) and np.allclose(np.linalg.norm(out[1:], axis=1), 1)
    assert np.all(out[0] == 0) and len(notes) == 1 and "normalised 4 b-vector(s)" in notes[0]
    with pytest.raises(DWIError, match=r"^x\.nii: b-values contain NaN or Inf \(volume 0\)$"):
        validate_gradients(np.r_[np.nan, bvals[1:]], g, filename="x.nii")
    # Philips-style b=0.001 with a non-zero vector is a b=0 volume, not an error
    s = from_arrays(data, np.r_[0.001, bvals[1:]], np.r_[[[0.6, -0.6, 0.5]], bvecs.T[1:]])
    assert s.b0_mask.tolist() == [True, False, False, False, False]


def test_sidecar_whitelist_withholds_identifying_fields(tmp_path):
    data, bvals, bvecs = _toy()
    meta = {"PatientName": "Jane Doe", "PatientID": "12345", "PatientBirthDate": "19700101",
            "PatientSex": "F", "PatientAge": "055Y", "AcquisitionDateTime": "2020-01-01T10:00:00",
            "InstitutionName": "Some Hospital", "DeviceSerialNumber": "999", "SeriesDescription": "Jane's scan",
            "EchoTime": 0.07, "RepetitionTime": 4.2, "PhaseEncodingDirection": "j-", "Manufacturer": "Acme",
            "SliceTiming": [0.0, 1.0, 0.5]}
    p = _write(tmp_path, "meta", data, bvals, bvecs, meta)
    s = load_dwi(p)
    assert s.sidecar == {"EchoTime": 0.07, "RepetitionTime": 4.2, "PhaseEncodingDirection": "j-",
                         "Manufacturer": "Acme", "SliceTiming": [0.0, 1.0, 0.5]}
    assert set(s.withheld) == {"PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
                               "AcquisitionDateTime", "InstitutionName", "DeviceSerialNumber",
                               "SeriesDescription"}
    text = json.dumps({"sidecar": s.sidecar, "withheld": s.withheld})
    assert "Jane" not in text and "12345" not in text and "Hospital" not in text
    assert s.phase_encoding_axis == 1
    assert filter_sidecar({"EchoTime": {"nested": 1}}) == ({}, ("EchoTime",))


def test_discover_bids(tmp_path):
    data, bvals, bvecs = _toy()
    d1 = tmp_path / "sub-01" / "ses-1" / "dwi"
    d1.mkdir(parents=True)
    _write(d1, "sub-01_ses-1_run-1_dwi", data, bvals, bvecs, {"EchoTime": 0.08})
    _write(d1, "sub-01_ses-1_run-2_dwi", data, bvals, bvecs)
    d2 = tmp_path / "sub-02" / "dwi"
    d2.mkdir(parents=True)
    _write(d2, "sub-02_acq-hi_dwi", data, bvals, bvecs)
    anat = tmp_path / "sub-02" / "anat"
    anat.mkdir()
    _write(anat, "sub-02_T1w", data[..., 0])
    (tmp_path / "dwi.json").write_text(json.dumps({"EchoTime": 0.09, "PatientName": "X"}))
    found = discover_bids(tmp_path)
    assert [(f.sub, f.ses, f.run) for f in found] == [("01", "1", "1"), ("01", "1", "2"), ("02", None, None)]
    assert found[0].json.endswith("sub-01_ses-1_run-1_dwi.json")
    assert found[1].json == str(tmp_path / "dwi.json")  # inherited from the top level
    assert found[2].bval.endswith("sub-02_acq-hi_dwi.bval") and found[2].bvec.endswith(".bvec")
    s = load_dwi(found[1].image, found[1].bval, found[1].bvec, sidecar=found[1].json)
    assert s.sidecar == {"EchoTime": 0.09} and s.withheld == ("PatientName",)
    empty = tmp_path / "empty"
    (empty / "sub-01" / "anat").mkdir(parents=True)
    with pytest.raises(DWIError) as e:
        discover_bids(empty)
    assert str(e.value) == f"{empty}: no diffusion series found (expected sub-*/[ses-*/]dwi/*_dwi.nii[.gz])"
    with pytest.raises(DWIError, match="folder not found"):
        discover_bids(tmp_path / "missing")


def _sphere(n):
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    g = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    return g * np.sign(g[:, 2:3] + 1e-9)


def _phantom(seed=0):
    """Two tori of fibres: one in the x-y plane, one in the x-z plane (so x, y, z flips all show)."""
    shape = (32, 32, 28)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), -1)
    e = np.zeros(shape + (3,))
    inside = np.zeros(shape, bool)
    for centre, axis in (((16, 16, 6), 2), ((16, 16, 18), 1)):
        r = grid - np.array(centre, float)
        r[..., axis] = 0
        rho = np.linalg.norm(r, axis=-1)
        off = grid[..., axis] - centre[axis]
        torus = np.hypot(rho - 8, off) < 2.6
        ax = np.eye(3)[axis]
        tangent = np.cross(ax, r)
        tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True) + 1e-12
        e[torus] = tangent[torus]
        inside |= torus
    g = _sphere(30)
    bvals = np.r_[0, 0, np.full(30, 1000.0)]
    bvecs = np.r_[np.zeros((2, 3)), g]
    dot = np.einsum("xyzc,nc->xyzn", e, bvecs)
    adc = np.where(inside[..., None], 0.3e-3 + 1.4e-3 * dot ** 2, 0.8e-3)
    data = 1000.0 * np.exp(-bvals * adc)
    rng = np.random.default_rng(seed)
    data = np.abs(data + rng.normal(0, 10, data.shape)).astype(np.float32)
    return from_arrays(data, bvals, bvecs, np.diag([-2.0, 2.0, 2.0, 1.0]))


def test_orientation_check_on_a_phantom():
    s = _phantom()
    r = check_orientation(s, fa_threshold=0.3, min_voxels=100)
    assert r["reliable"] and r["best"] == "none" and not r["flipped"]
    for axis, name in enumerate(("flip x", "flip y", "flip z")):
        f = from_arrays(s.dataobj, s.bvals, s.bvecs * np.where(np.arange(3) == axis, -1, 1), s.affine)
        r = check_orientation(f, min_voxels=100)
        assert r["flipped"] and r["best"] == name, (name, r["scores"])
    f = from_arrays(s.dataobj, s.bvals, s.bvecs[:, [1, 0, 2]], s.affine)
    r = check_orientation(f, permutations=True, min_voxels=100)
    assert r["flipped"] and r["best"].startswith("swap yxz"), r["scores"]
    # too little anisotropy: a doubtful result, no exception
    flat = from_arrays(np.full((8, 8, 4, 8), 100.0, np.float32), np.r_[0, 0, np.full(6, 1000.0)],
                       np.r_[np.zeros((2, 3)), np.eye(3), [[0.6, 0.8, 0], [0, 0.6, 0.8], [0.8, 0, 0.6]]])
    r = check_orientation(flat)
    assert r["reliable"] is False and r["flipped"] is False


def test_orientation_check_on_real_philips():
    s = load_dwi(shared("dmri", "philips-dwi", "701_DTI_Biobank_2mm_MB3S2_EPI.nii.gz"))
    r = check_orientation(s)
    assert r["reliable"] and r["best"] == "none" and not r["flipped"], r["scores"]
    s.bvecs = s.bvecs * np.array([-1.0, 1.0, 1.0])
    r = check_orientation(s)
    assert r["flipped"] and r["best"] == "flip x", r["scores"]


def test_importing_dmri_io_does_not_import_nibabel():
    code = "import sys, artifacts.io.dmri; print('nibabel' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
