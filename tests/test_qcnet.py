"""3D-QCNet port: architecture (official layer shapes), preprocessing, the DWIScores contract,
the shared draw sampler, the shipped weights and a tiny training run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import artifacts
from artifacts.detectors.dmri.qcnet import (FAITHFUL, TINY, QCNetConfig, arch_from_state_dict, build_net,
                                            keras_to_torch, preprocess, series_scale)
from artifacts.registry import model_info

DMRI = Path(__file__).resolve().parents[2] / "shared" / "data" / "dmri"

#: Keras weight shapes of the official model (adnamad/3D-QCNet @ 4f5d7cff, densenet.py with
#: DenseNet3D(input_shape=(96, 96, 70, 1), depth=10) + Dense(2)): layer -> get_weights() shapes
OFFICIAL_SHAPES = {
    "initial_Conv3D": [(3, 3, 3, 1, 24)],
    "dense_0_0_bn": [(24,)] * 4, "dense_0_0_Conv3D": [(3, 3, 3, 24, 12)],
    "dense_0_1_bn": [(36,)] * 4, "dense_0_1_Conv3D": [(3, 3, 3, 36, 12)],
    "tr_0_bn": [(48,)] * 4, "tr_0_Conv3D": [(1, 1, 1, 48, 48)],
    "dense_1_0_bn": [(48,)] * 4, "dense_1_0_Conv3D": [(3, 3, 3, 48, 12)],
    "dense_1_1_bn": [(60,)] * 4, "dense_1_1_Conv3D": [(3, 3, 3, 60, 12)],
    "tr_1_bn": [(72,)] * 4, "tr_1_Conv3D": [(1, 1, 1, 72, 72)],
    "dense_2_0_bn": [(72,)] * 4, "dense_2_0_Conv3D": [(3, 3, 3, 72, 12)],
    "dense_2_1_bn": [(84,)] * 4, "dense_2_1_Conv3D": [(3, 3, 3, 84, 12)],
    "final_bn": [(96,)] * 4,
    "dense_1": [(96, 2), (2,)],
}


def small_series(n=5, shape=(20, 24, 6), seed=0):
    from artifacts.io.dmri import from_arrays

    rng = np.random.default_rng(seed)
    data = rng.uniform(50, 150, size=(*shape, n)).astype(np.float32)
    data[..., 0] *= 3  # a b=0 volume
    bvals = np.array([0] + [1000] * (n - 1), float)
    g = rng.normal(size=(n, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    g[0] = 0
    return from_arrays(data, bvals, g)


def test_faithful_architecture_matches_the_official_layer_shapes():
    import torch

    cfg = QCNetConfig(**FAITHFUL)
    net = build_net(cfg)
    rng = np.random.default_rng(0)
    keras = {k: [rng.normal(size=s).astype(np.float32) for s in v] for k, v in OFFICIAL_SHAPES.items()}
    for k in keras:  # BN variances positive
        if k.endswith("_bn"):
            keras[k][3] = np.abs(keras[k][3]) + 0.5
    state = keras_to_torch(keras)
    net.load_state_dict(state, strict=True)  # every key and shape, nothing missing or extra
    assert sum(p.numel() for p in net.parameters()) == 114_386
    assert arch_from_state_dict(net.state_dict()) == {**cfg.arch(), "dropout_rate": None}
    # kernel layout: Keras (kx, ky, kz, in, out) -> torch (out, in, kx, ky, kz)
    k = keras["dense_1_0_Conv3D"][0]
    assert torch.equal(net.layers["dense_1_0_Conv3D"].weight[5, 7], torch.from_numpy(k[..., 7, 5]))
    net.eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 96, 96, 70)).shape == (1, 2)


def test_tiny_and_shipped_configs_build_and_validate():
    import torch

    for over in (TINY, {}):
        cfg = QCNetConfig(**over)
        net = build_net(cfg).eval()
        with torch.no_grad():
            assert net(torch.zeros(2, 1, cfg.size, cfg.size, cfg.n_slices)).shape == (2, 2)
    assert QCNetConfig().subsample_initial_block and QCNetConfig().normalise == "b0p98"
    for bad in ({"normalise": "zscore"}, {"depth": 11}, {"size": 4}):
        with pytest.raises(ValueError):
            QCNetConfig(**bad)


def test_preprocessing_resizes_keeps_70_slices_and_zero_pads():
    rng = np.random.default_rng(1)
    v = rng.uniform(0, 100, size=(64, 64, 40, 2)).astype(np.float32)
    x, info = preprocess(v)
    assert x.shape == (2, 96, 96, 70) and x.dtype == np.float32
    assert info["slices_kept"] == 40 and info["zero_padded_slices"] == 30 and info["slices_cropped"] == 0
    assert not x[..., 40:].any() and x[..., :40].any()
    x, info = preprocess(rng.uniform(size=(112, 112, 80)).astype(np.float32), scale=2.0)
    assert x.shape == (1, 96, 96, 70) and info["slices_cropped"] == 10 and info["zero_padded_slices"] == 0
    # a constant slice stays constant (no intensity normalisation beyond the one series scale)
    x, _ = preprocess(np.full((50, 70, 3), 7.0, np.float32))
    assert np.allclose(x[0, ..., :3], 7.0)
    assert series_scale(v, np.array([True, False]), "none") == 1.0
    assert series_scale(v, np.array([True, False]), "b0p98") == pytest.approx(np.percentile(v[..., 0], 98))


def test_preprocessing_matches_cv2_resize():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(2)
    for shape in ((64, 64, 3), (112, 112, 2), (80, 100, 2)):
        v = rng.uniform(0, 1000, size=shape).astype(np.float32)
        x, _ = preprocess(v)
        for z in range(shape[2]):
            ref = cv2.resize(v[:, :, z], (96, 96))  # the official call (INTER_LINEAR)
            assert np.abs(x[0, :, :, z] - ref).max() < 1e-2


def test_analyse_returns_the_dwi_contract():
    det = artifacts.create("qcnet", weights="none", device="cpu", **TINY)
    s = small_series()
    d = det.detect(s)
    assert d.elements["volume"].shape == (5,) and d.elements["slice"].shape == (5, 6)
    assert np.allclose(d.elements["slice"], d.elements["volume"][:, None])  # volume-level model
    assert 0.0 <= d.score <= 1.0 and d.score == pytest.approx(d.elements["volume"].max())
    pre = d.meta["preprocessing"]
    assert pre["input_xyz"] == [20, 24, 6] and pre["zero_padded_slices"] == TINY["n_slices"] - 6
    assert pre["normalisation"] == "b0p98" and pre["scale"] > 0
    assert d.meta["flagged_volumes"] == np.flatnonzero(d.elements["volume"] >= d.threshold).tolist()
    # arrays + gradient table through the same door
    d2 = det.detect(s.data, bvals=s.bvals, bvecs=s.bvecs)
    assert np.allclose(d2.elements["volume"], d.elements["volume"])


def test_registration():
    info = model_info("qcnet", task="dmri")
    assert info.cls.recipe == "qcnet" and info.weight_spec().package == "artifacts.detectors.dmri.weights"
    assert not info.default


def test_draws_are_seeded_and_share_the_noise_treatment():
    from artifacts.train.dmri import draw_one, draws, summarise

    s = small_series(n=6, shape=(16, 16, 8))
    a = list(draws([s], ["dropout", "clean"], [0.8], [3]))
    b = list(draws([s], ["dropout", "clean"], [0.8], [3]))
    assert [d.kind for d in a] == ["dropout", "clean"]
    assert np.array_equal(a[0].data, b[0].data) and np.array_equal(a[0].bad, b[0].bad)
    assert a[0].bad.any() and not a[1].bad.any()
    assert not np.array_equal(a[1].data, s.data)  # clean draws get fresh noise too
    # the artifact draw = the same noisy series + the artifact: unlabelled volumes are identical
    assert np.array_equal(a[0].data[..., ~a[0].bad], a[1].data[..., ~a[0].bad])
    assert not np.array_equal(draw_one(s, "clean", 0, 4).data, a[1].data)
    rows = [{"kind": "dropout", "severity": 0.5, "bad": True, "score": 0.9},
            {"kind": "dropout", "severity": 0.5, "bad": True, "score": 0.2},
            {"kind": "clean", "severity": 0.0, "bad": False, "score": 0.1},
            {"kind": "clean", "severity": 0.0, "bad": False, "score": 0.6}]
    res = summarise(rows, 0.5)
    assert res["detection_rate"] == 0.5 and res["clean_fp_rate"] == 0.5 and res["per_kind"]["dropout"]["n"] == 2


def test_select_matches_the_good_volumes_to_the_bad_ones_by_b_value():
    from artifacts.train.dmri import SAMPLING, Draw, select

    cfg = QCNetConfig(**TINY)
    rng = np.random.default_rng(0)
    b0 = np.array([True, False, False, False, False, False, False, False])

    def draw(kind, bad_vols, seed):
        bad = np.zeros(8, bool)
        bad[list(bad_vols)] = True
        data = rng.uniform(10, 20, size=(12, 12, 6, 8)).astype(np.float32)
        return Draw("s", kind, 0.5, seed, data, bad, b0.copy())

    # DW-only artifacts (as dropout / eddy / vibration): every bad volume is diffusion-weighted
    dw_only = [draw("dropout", [2, 5], 1), draw("eddy", [1, 3, 6], 2), draw("clean", [], 3), draw("clean", [], 4)]
    x, y, xb0 = select(dw_only, np.random.default_rng(1), cfg)
    assert x.shape[1:] == (32, 32, 16) and (y == 0).sum() == (y == 1).sum() == 5
    assert not xb0[y == 0].any() and not xb0[y == 1].any()  # no b=0 good volume: no shortcut
    # a kind that hits b=0 volumes too: the good ones get the same number of b=0 volumes
    mixed = [draw("motion", [0, 4], 5), draw("ghosting", [0, 7], 6), draw("clean", [], 7), draw("clean", [], 8)]
    x, y, xb0 = select(mixed, np.random.default_rng(1), cfg)
    assert (y == 0).sum() == (y == 1).sum() == 4 and xb0[y == 0].sum() == xb0[y == 1].sum() == 2
    assert SAMPLING.startswith("b-matched")


def _shipped_or_skip():
    from artifacts.weights import WeightsNotFoundError

    try:
        return artifacts.create("qcnet", device="cpu")
    except WeightsNotFoundError:  # pragma: no cover - a checkout without the weights
        pytest.skip("qcnet weights not shipped in this checkout")


def test_shipped_weights_load_offline_and_score_a_real_series():
    if not DMRI.is_dir():
        pytest.skip("../shared/data/dmri not present")
    det = _shipped_or_skip()
    assert det.weight_id.startswith("sim-v2:")
    from artifacts.io.dmri import load_dwi

    s = load_dwi(DMRI / "uih-umr770" / "dti_tra_dir16_AP_9.nii.gz")
    d = det.detect(s)
    v = d.elements["volume"]
    assert v.shape == (s.n_volumes,) and np.isfinite(v).all() and ((v >= 0) & (v <= 1)).all()
    assert d.meta["preprocessing"]["slices_kept"] == 20


def test_shipped_record_matches_the_weight_spec():
    spec = model_info("qcnet", task="dmri").weight_spec()
    record = Path(artifacts.__file__).parent / "detectors" / "dmri" / "weights" / "qcnet_sim-v2.train.json"
    if not record.is_file():
        pytest.skip("no training record shipped")
    rec = json.loads(record.read_text())
    assert rec["weights"]["sha256"] == spec.sha256 and rec["config"]["subsample_initial_block"]
    assert rec["weights"]["file"] == spec.file and rec["shipped_threshold"]["value"] == spec.threshold
    assert rec["sampling"].startswith("b-matched")  # good volumes matched to the bad ones by b-value
    from artifacts.datasets.splits import load_split

    held_vendor = load_split("dmri")["eval"]
    assert not set(held_vendor) & set(rec["data"]["train"])
    if DMRI.is_dir():  # no series of the held-out vendor was trained on
        root = Path(artifacts.__file__).resolve().parents[1]
        eval_files = {p.name for r in held_vendor for p in (root / r).glob("*.nii*")}
        assert eval_files and not eval_files & set(rec["data"]["series"])


@pytest.mark.slow
def test_recipe_runs_a_tiny_budget(tmp_path):
    if not DMRI.is_dir():
        pytest.skip("../shared/data/dmri not present")
    from artifacts.train import train

    res = train("dmri", "qcnet", str(tmp_path), options={"epochs": 2, "n": 3, "seed": 1}, progress=False, **TINY)
    rec = json.loads((tmp_path / "train.json").read_text())
    assert rec["complete"] and len(rec["epochs"]) == 2 and res["sha256"] == rec["weights"]["sha256"]
    assert all(np.isfinite(e["train_loss"]) for e in rec["epochs"])
    det = artifacts.create("qcnet", weights=str(tmp_path / "qcnet.safetensors"), device="cpu", **TINY)
    assert det.detect(small_series()).elements["volume"].shape == (5,)
