"""`artifacts eval dmri`: clean and artifact draws of real series through the engine, per-kind rates."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.conftest import shared


@pytest.fixture(scope="module")
def one_series(tmp_path_factory):
    src = shared("dmri", "uih-umr770")
    root = tmp_path_factory.mktemp("dmri-data") / "uih-umr770"
    root.mkdir()
    for f in src.glob("dti_tra_dir16_AP_9.*"):
        os.symlink(f, root / f.name)
    return root.parent


def test_adapter_options_are_checked():
    from artifacts.eval.dmri import DMRIAdapter, wilson

    with pytest.raises(ValueError, match="unknown kind"):
        DMRIAdapter(kinds=["nope"])
    with pytest.raises(ValueError, match="severities"):
        DMRIAdapter(severities="0,1.5")
    assert DMRIAdapter(severities="0.5,1").severities == (0.5, 1.0)
    lo, hi = wilson(0, 50)
    assert lo == 0.0 and 0.05 < hi < 0.1


def test_eval_dmri_tiny(one_series, tmp_path):
    from artifacts.eval import evaluate, get_adapter

    out = tmp_path / "ev"
    opts = dict(kinds=["dropout", "spike"], severities=(1.0,), seeds=1, clean=1)
    result = evaluate("dmri", str(one_series), models=["dmri/qc"], out=str(out), n_boot=20, progress=False, **opts)
    entry = result["models"]["dmri/qc"]["clean"]
    assert entry["counts"]["errors"] == 0 and entry["counts"]["scored"] == 3
    train = entry["train"]  # the UIH vendor is a training vendor of the split
    assert train["clean_fp"]["n"] == 17
    assert train["kinds"]["dropout"]["by_severity"]["1.00"]["value"] == 1.0
    assert train["kinds"]["spike"]["by_severity"]["1.00"]["value"] >= 0.75
    f1 = train["kinds"]["dropout"]["slice_f1"]
    assert f1["f1"]["value"] > 0.6 and f1["tp"] > 0
    # measured on the dropout map; the overall map (every kind on the slices) is reported beside it
    assert train["kinds"]["dropout"]["slice_map"] == ["slice/dropout"]
    overall = train["kinds"]["dropout"]["slice_f1_overall_map"]
    assert overall["tp"] >= f1["tp"] and overall["fp"] >= f1["fp"]
    text = get_adapter("dmri").format(result)
    assert "dropout slice F1" in text and "overall slice map" in text and "clean volumes flagged" in text
    assert (out / "curves.png").stat().st_size > 1000
    assert json.loads((out / "eval.json").read_text())["task"] == "dmri"
    # the draws are written once and reused: a second run computes nothing new
    labels = sorted((out / "data").rglob("*.labels.json"))
    assert len(labels) == 3
    mtimes = [p.stat().st_mtime for p in labels]
    evaluate("dmri", str(one_series), models=["dmri/qc"], out=str(out), n_boot=0, progress=False, **opts)
    assert [p.stat().st_mtime for p in labels] == mtimes
