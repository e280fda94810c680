"""manipulation/effnet-iml: the learned localisation model, its recipe and its shipped weights."""
import json
from pathlib import Path

import numpy as np
import pytest

import artifacts
from artifacts.datasets.splits import load_split
from artifacts.detectors.manipulation.learned import TINY, EffNetIMLConfig, build, top_fraction_mean
from artifacts.registry import model_info

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def tiny(**kw):
    torch.manual_seed(0)
    return artifacts.create("effnet-iml", weights="none", device="cpu", **{**TINY, **kw})


def test_registered_with_a_recipe_and_packaged_weights():
    info = model_info("effnet-iml", task="manipulation")
    assert info.full_name == "manipulation/effnet-iml" and info.needs_weights
    assert info.cls.recipe == "iml"
    spec = info.weight_spec()
    assert spec.file.endswith(".safetensors") and spec.package and len(spec.sha256) == 64
    assert "train manipulation --model effnet-iml" in spec.train_command


def test_tiny_net_shapes_any_size():
    net = build(EffNetIMLConfig(**TINY)).eval()
    with torch.inference_mode():
        for h, w in ((64, 64), (37, 53), (31, 97)):
            assert net(torch.rand(2, 3, h, w)).shape == (2, 1, h, w)


def test_detection_heatmap_score_and_meta():
    det = tiny()
    d = det.detect(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    assert d.heatmap.shape == (48, 40) and 0 <= d.heatmap.min() <= d.heatmap.max() <= 1
    assert d.score == pytest.approx(top_fraction_mean(d.heatmap, 0.01))
    pre = d.meta["preprocessing"]
    assert pre["resize"] is None and pre["pad"] is None and pre["tiles"] == 1 and pre["input_size"] == [48, 40]
    assert d.meta["model"] == "manipulation/effnet-iml" and d.meta["weights"] == "none"


def test_large_images_run_as_blended_tiles():
    """Tiles (64 px) smaller than half the image; with random weights the map is nearly flat, so
    the tolerance here only checks the blending; the trained model's figure is in the model card."""
    img = np.random.default_rng(1).integers(0, 256, (150, 90, 3), dtype=np.uint8)
    det = tiny()
    d = det.detect(img)
    pre = d.meta["preprocessing"]
    assert d.heatmap.shape == (150, 90)
    assert pre["tiles"] == 6 and pre["tile_grid"] == [3, 2] and pre["tile"] == 64 and min(pre["overlap"]) >= 16
    whole = tiny(max_pixels=10**6)
    whole.net.load_state_dict(det.net.state_dict())
    w = whole.detect(img)
    assert w.meta["preprocessing"]["tiles"] == 1
    assert np.abs(w.heatmap - d.heatmap).mean() < 0.01


def test_uint16_and_grey_inputs():
    det = tiny()
    img16 = (np.random.default_rng(2).integers(0, 65536, (40, 40, 3))).astype(np.uint16)
    d = det.detect(img16)
    assert d.heatmap.shape == (40, 40) and d.meta["preprocessing"]["normalisation"]["scale"] == "1/65535"
    grey = det.detect(np.full((30, 20), 90, np.uint8))  # greyscale arrays arrive as RGB from io
    assert grey.heatmap.shape == (30, 20)


def test_edge_loss_weights_the_boundary_band():
    from artifacts.detectors.manipulation.imlvit import edge_band, edge_loss

    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    band = edge_band(mask, 7)
    assert band.sum() > 0 and (band * (1 - mask)).sum() > 0 and (band * mask).sum() > 0
    good, bad = (mask * 2 - 1) * 6, -(mask * 2 - 1) * 6
    total, plain, edged = edge_loss(bad, mask, return_parts=True)
    assert edge_loss(good, mask) < 0.05 < plain < edged  # lambda 20 x the band makes the edge term dominate
    assert total == pytest.approx(float(plain + edged))


def test_config_validation():
    with pytest.raises(ValueError, match="levels"):
        EffNetIMLConfig(levels=(2, 4))
    with pytest.raises(ValueError, match="tile"):
        EffNetIMLConfig(tile=64, tile_overlap=40)


def test_split_never_reads_the_reported_data():
    split = load_split("iml")
    never = {str(p) for p in split["never"]}
    assert "../shared/data/iml/casia1-samples" in never
    read = [f["path"] for f in split["photo_folders"]] + split["real_pairs"]
    assert not any("casia1" in p or p.rstrip("/").endswith("/Au") for p in read)
    assert set(split["exclude_bundled"]) == set(load_split("manipulation")["example"])


def test_recipe_refuses_the_reported_set(tmp_path):
    from artifacts.train.iml import real_pairs

    casia1 = ROOT / "../shared/data/iml/casia1-samples"
    if not casia1.is_dir():
        pytest.skip("../shared/data not present")
    with pytest.raises(ValueError, match="never"):
        real_pairs(load_split("iml"), ROOT, str(casia1))


def test_shipped_weights_load_offline_and_localise_a_splice():
    """The packaged file loads (sha256 checked) with no network, and gives a map on a small real
    image; on a hard splice of two real photos its map is higher inside the pasted region."""
    from artifacts.datasets.manipulation import GeneratorConfig, generate

    det = artifacts.create("effnet-iml", device="cpu")
    assert det.weight_id.startswith("v1:") and model_info("effnet-iml").weight_status() in ("packaged", "found")
    s = generate(7, kind="splice", config=GeneratorConfig(max_side=320), photos=["astronaut", "coffee", "chelsea"])
    d = det.detect(s.image)
    assert d.heatmap.shape == s.mask.shape and 0 <= d.score <= 1
    assert d.heatmap[s.mask].mean() > d.heatmap[~s.mask].mean()


@pytest.mark.slow
def test_recipe_smoke_run_writes_loadable_weights_and_the_loss_falls(tmp_path):
    from artifacts.train import train

    result = train("manipulation", "effnet-iml", str(tmp_path),
                   options={"n": 8, "epochs": 2}, steps=10, batch=4, crop=64, n_held=3, lr=1e-2, warmup_steps=1,
                   progress=False, levels=TINY["levels"], width=TINY["width"])
    record = json.loads((tmp_path / "train.json").read_text())
    assert record["complete"] and len(record["epochs"]) == 2 and record["call"]["threads"] == 1
    # the loss of a fixed batch (the per-epoch training loss of 10 random batches is too noisy to compare)
    assert record["epochs"][-1]["probe_loss"] < record["probe_loss_start"]
    assert all(np.isfinite(e["train_loss"]) for e in record["epochs"])
    assert {"pixel_f1", "pixel_auc"} <= set(record["held_out"]["all"])
    assert result["sha256"] == record["weights"]["sha256"]
    det = artifacts.create("effnet-iml", weights=result["file"], device="cpu", **TINY)
    assert det.weight_id.startswith("file:")
    assert det.detect(np.zeros((40, 40, 3), np.uint8) + 120).heatmap.shape == (40, 40)
