"""dMRI series through the shared engine: BIDS discovery, per-item errors, QC files, volume
table, cleaned series, resume. The detector here is a deliberately plain one (slice means
against the same slice of the other volumes of the shell) so these tests check the plumbing,
not a model; the registered detectors have their own tests."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from artifacts.datasets.dmri_artifacts import simulate
from artifacts.detectors.dmri.base import DWIDetector, DWIScores
from artifacts.engine import run_batch
from artifacts.engine.items import discover_dwi
from artifacts.io.dmri import load_dwi, save_dwi
from artifacts.report import write_report
from artifacts.report.dmri import write_clean, write_volume_table
from tests.conftest import shared

UIH = "uih-umr770/dti_tra_dir16_AP_9"


class SliceMeans(DWIDetector):
    """Score = relative loss of a slice's mean signal against the shell's median slice mean."""

    task, name = "dmri", "slice-means-test"

    def __init__(self):
        super().__init__(config=type("C", (), {"threshold": 0.5})(), weights=None, device="cpu")

    def fingerprint(self):
        return {"model": self.model_id, "weights": "none", "config": {}}

    def analyse(self, series):
        data = series.data
        means = data.mean(axis=(0, 1)).T  # (N, Z)
        shells = np.round(series.bvals / 100.0)
        ref = np.stack([np.median(means[shells == s], axis=0) for s in shells])
        loss = np.clip((ref - means) / np.maximum(ref, 1e-6), 0.0, 1.0)
        sl = np.clip(loss / 0.3, 0.0, 1.0)
        return DWIScores(volume=sl.max(axis=1), slice=sl, kinds={"dropout": sl.max(axis=1)})


def _bids(root, src):
    """sub-01 (good) and sub-02 (its .bval lacks a value) from one real series."""
    for sub in ("01", "02"):
        d = root / f"sub-{sub}" / "dwi"
        d.mkdir(parents=True)
        for ext in (".nii.gz", ".bval", ".bvec", ".json"):
            shutil.copy(f"{src}{ext}", d / f"sub-{sub}_dwi{ext}")
    bad = root / "sub-02" / "dwi" / "sub-02_dwi.bval"
    bad.write_text(" ".join(bad.read_text().split()[:-1]) + "\n")


def test_bids_two_subjects_one_bad(tmp_path):
    src = str(shared("dmri", UIH + ".nii.gz"))[: -len(".nii.gz")]
    _bids(tmp_path / "bids", src)
    items = discover_dwi([str(tmp_path / "bids")])
    assert [i.id for i in items] == ["sub-01/dwi/sub-01_dwi.nii.gz", "sub-02/dwi/sub-02_dwi.nii.gz"]
    assert set(items[0].files) == {"image", "bval", "bvec", "sidecar"} and items[0].kind == "dwi"
    summary = run_batch([str(tmp_path / "bids")], tmp_path / "out", detector=SliceMeans(), progress=False)
    assert summary.counts["ok"] == 1 and summary.counts["error"] == 1 and summary.exit_code == 1
    (item_id, message), = summary.errors
    assert item_id.startswith("sub-02") and "sub-02_dwi" in message and "17" in message  # names file and count
    ok = next((tmp_path / "out" / "items").glob("*/qc.html"))
    assert {"qc.png", "overlay.png", "volumes.csv", "detection.json"} <= {p.name for p in ok.parent.iterdir()}
    page = ok.read_text()
    assert "Volumes" in page and "PatientName" not in page
    report = write_report(tmp_path / "out").read_text()
    assert "sub-02" in report and "sub-01" in report
    again = run_batch([str(tmp_path / "bids")], tmp_path / "out", detector=SliceMeans(), progress=False)
    assert again.counts["skipped"] == 2  # resume: nothing recomputed (the error stays until --retry-errors)


def test_dropout_flagged_table_and_clean_series(tmp_path):
    series = load_dwi(shared("dmri", UIH + ".nii.gz"))
    data, labels = simulate(series, "dropout", severity=1.0, seed=3, fraction=0.15)
    series.dataobj = data
    save_dwi(tmp_path / "in" / "dwi.nii.gz", series)
    summary = run_batch([str(tmp_path / "in")], tmp_path / "out", detector=SliceMeans(), progress=False)
    assert summary.counts["ok"] == 1
    det_dir = next((tmp_path / "out" / "items").iterdir())
    det = json.loads((det_dir / "detection.json").read_text())
    bad = set(np.flatnonzero(labels.volumes).tolist())
    assert bad and bad <= set(det["meta"]["flagged_volumes"])
    table = write_volume_table(tmp_path / "out")
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == 17 and list(rows[0])[1:5] == ["FilePath", "Volume", "Predicted Class", "Probability"]
    assert {int(r["Volume"]) for r in rows if r["Predicted Class"] == "bad"} == set(det["meta"]["flagged_volumes"])
    lines = write_clean(tmp_path / "out")
    clean = load_dwi(tmp_path / "out" / "clean" / "dwi.nii.gz")
    kept = [v for v in range(17) if v not in det["meta"]["flagged_volumes"]]
    assert clean.n_volumes == len(kept) and "kept" in lines[0]
    np.testing.assert_allclose(clean.bvals, series.bvals[kept], rtol=1e-5)
    np.testing.assert_allclose(clean.data, data[..., kept], rtol=1e-5, atol=1e-3)
    assert load_dwi(tmp_path / "in" / "dwi.nii.gz").n_volumes == 17  # input untouched


def test_folder_discovery_pairs_gradient_files(tmp_path):
    src = shared("dmri", UIH + ".nii.gz")
    (tmp_path / "a").mkdir()
    shutil.copy(src, tmp_path / "a" / "x.nii.gz")
    shutil.copy(str(src).replace(".nii.gz", ".bval"), tmp_path / "a" / "x.bval")
    items = discover_dwi([str(tmp_path)])
    assert len(items) == 1 and set(items[0].files) == {"image", "bval"}
    summary = run_batch([str(tmp_path)], tmp_path / "out", detector=SliceMeans(), progress=False)
    assert summary.counts["error"] == 1 and "b-vector" in summary.errors[0][1]


@pytest.mark.integration
def test_cli_detect_dmri_bids_with_clean_series(tmp_path):
    """The real command on a BIDS tree: the good subject is processed with the default model, the
    bad one is reported by name, the run writes its volume table and the cleaned series."""
    from tests.conftest import run_cli

    src = str(shared("dmri", UIH + ".nii.gz"))[: -len(".nii.gz")]
    _bids(tmp_path / "bids", src)
    out = tmp_path / "out"
    r = run_cli("detect", "dmri", str(tmp_path / "bids"), "-o", str(out), "--write-clean", "-q")
    assert r.returncode == 1, r.stderr  # partial failure: sub-02
    assert "1 ok" in r.stdout and "1 errors" in r.stdout
    assert "sub-02_dwi.nii.gz" in r.stdout and "b-value" in r.stdout
    assert (out / "dmri_volumes.csv").is_file() and (out / "report.html").is_file()
    rows = list(csv.DictReader(open(out / "dmri_volumes.csv")))
    assert len(rows) == 17 and {r["item_id"] for r in rows} == {"sub-01/dwi/sub-01_dwi.nii.gz"}
    record = json.loads((out / "clean" / "clean.json").read_text())
    entry = record["sub-01/dwi/sub-01_dwi.nii.gz"]
    assert entry["kept"] + len(entry["removed"]) == 17
    if entry["written"]:
        assert load_dwi(entry["written"]).n_volumes == entry["kept"]
    r = run_cli("detect", "dmri", str(tmp_path / "bids"), "-o", str(out), "-q")
    assert "2 already done" in r.stdout  # resumed: nothing recomputed
    r = run_cli("detect", "manipulation", str(tmp_path / "bids"), "-o", str(tmp_path / "o2"), "--write-clean")
    assert r.returncode == 2 and "task dmri only" in r.stderr
