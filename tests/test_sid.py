"""Synthetic-image data layouts and the synthetic evaluation adapter."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from artifacts.datasets.sid import holdout, read_sid
from artifacts.eval.synthetic import SyntheticAdapter
from artifacts.types import Detection

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sid"


def _touch(root: Path, rel: str) -> None:
    from artifacts.io import save_image

    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, np.full((8, 8, 3), 100, np.uint8))


def test_layouts(tmp_path):
    for rel in ("plain/0_real/a.png", "plain/1_fake/sd1__b.png",
                "forensynths/progan/car/0_real/c.png", "forensynths/progan/car/1_fake/d.png",
                "genimage/midjourney/train/nature/e.png", "genimage/midjourney/val/ai/f.png",
                "plain/readme/g.png", "plain/.hidden/0_real/h.png"):
        _touch(tmp_path, rel)
    got = {s.name: (s.label, s.source) for s in read_sid(tmp_path)}
    assert got == {
        "plain/0_real/a.png": (0, "plain"), "plain/1_fake/sd1__b.png": (1, "sd1"),
        "forensynths/progan/car/0_real/c.png": (0, "forensynths/progan/car"),
        "forensynths/progan/car/1_fake/d.png": (1, "forensynths/progan/car"),
        "genimage/midjourney/train/nature/e.png": (0, "genimage/midjourney"),
        "genimage/midjourney/val/ai/f.png": (1, "genimage/midjourney"),
    }
    assert read_sid(tmp_path / "plain")[0].source is None  # nothing above the class folder
    with pytest.raises(FileNotFoundError, match="no images in a 0_real/1_fake"):
        read_sid(tmp_path / "plain" / "readme")


def test_holdout_is_stable_and_disjoint(tmp_path):
    for i in range(40):
        _touch(tmp_path, f"{i % 2}_{'fake' if i % 2 else 'real'}/x{i}.png")
    samples = read_sid(tmp_path)
    train, held = holdout(samples, 0.25, seed=3)
    assert len(train) + len(held) == 40 and 3 <= len(held) <= 20
    assert not {s.name for s in train} & {s.name for s in held}
    train2, held2 = holdout(samples[::-1], 0.25, seed=3)  # order does not matter
    assert {s.name for s in held2} == {s.name for s in held}
    assert holdout(samples, 0.25, seed=4)[1] != held
    with pytest.raises(ValueError):
        holdout(samples, 1.0)


def test_adapter_summary_and_sweep(tmp_path):
    for rel in ("0_real/r1.png", "0_real/r2.png", "1_fake/a__f1.png", "1_fake/b__f2.png"):
        _touch(tmp_path, rel)
    adapter = SyntheticAdapter()
    samples = adapter.read(str(tmp_path))
    assert {k: adapter.describe(samples)[k] for k in ("fake", "real", "left_out_too_small")} == {"fake": 2, "real": 2, "left_out_too_small": []}
    scores = {"0_real/r1.png": 0.1, "0_real/r2.png": 0.6, "1_fake/a__f1.png": 0.9, "1_fake/b__f2.png": 0.4}
    dets = [Detection(score=scores[s.name], meta={"provenance": {"declared_generated": s.name.endswith("f1.png")}})
            for s in samples]
    dets[0] = None  # an error is counted, not scored
    summary = adapter.summarise(adapter.stats(samples, dets), n_boot=0)
    assert summary["counts"] == {"items": 4, "ok": 3, "not_applicable": 0, "error": 1}
    assert summary["provenance"]["generation_record"] == 1
    image = summary["image"]
    assert (image["n_fake"], image["n_real"]) == (2, 1)
    assert image["auc"]["value"] == pytest.approx(0.5)  # r2 (0.6) sits between f2 (0.4) and f1 (0.9)
    assert image["accuracy_fixed"]["value"] == pytest.approx(1 / 3)
    assert image["accuracy_best"]["value"] == pytest.approx(2 / 3)
    assert summary["per_source"]["a"] == {"n": 1, "flagged": 1.0, "auc_vs_real": 1.0}
    assert summary["per_source"]["b"]["auc_vs_real"] == 0.0
    from artifacts.eval.robustness import Perturbation

    perturbed = adapter.perturb(samples, Perturbation("jpeg", 80), tmp_path / "sweep")
    assert [Path(s.image).suffix for s in perturbed] == [".jpg"] * 4
    assert [s.label for s in perturbed] == [s.label for s in samples]
    first = Path(perturbed[0].image).stat().st_mtime_ns
    adapter.perturb(samples, Perturbation("jpeg", 80), tmp_path / "sweep")  # reused, not rewritten
    assert Path(perturbed[0].image).stat().st_mtime_ns == first


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data absent")
def test_shared_sets_read():
    train, dev = read_sid(SHARED / "train"), read_sid(SHARED / "dev")
    assert sum(s.fake for s in train) == 131 and sum(not s.fake for s in train) == 92
    assert sum(s.fake for s in dev) == 15 and sum(not s.fake for s in dev) == 20
    assert {s.source for s in train if s.fake} == {"sd1_compvis", "ldm_compvis", "kolors", "sd2_stability"}


def test_size_matching(tmp_path):
    from artifacts.io import load_image, save_image

    data = tmp_path / "data"
    (data / "0_real").mkdir(parents=True)
    (data / "1_fake").mkdir()
    save_image(data / "0_real" / "big.jpg", np.full((300, 400, 3), 90, np.uint8))
    save_image(data / "0_real" / "tiny.png", np.full((40, 50, 3), 90, np.uint8))
    save_image(data / "1_fake" / "f.png", np.full((120, 120, 3), 90, np.uint8))
    crop = SyntheticAdapter(match_size="crop", side=100)
    samples = crop.read(str(data), tmp_path / "work")
    assert [load_image(s.image).pixels.shape[:2] for s in samples] == [(100, 100), (100, 100)]
    assert crop.describe(samples)["left_out_too_small"] == ["0_real/tiny.png"]
    assert all(s.image.endswith(".png") for s in samples)
    resize = SyntheticAdapter(match_size="resize", side=60)
    shapes = [load_image(s.image).pixels.shape[:2] for s in resize.read(str(data), tmp_path / "work")]
    assert shapes == [(60, 80), (60, 75), (60, 60)]
    assert "short side" in resize.describe([])["size_policy"]
    with pytest.raises(ValueError, match="match_size"):
        SyntheticAdapter(match_size="pad")


def test_eval_refuses_a_model_of_another_task(tmp_path):
    from artifacts.eval import evaluate

    for rel in ("0_real/r1.png", "1_fake/f1.png"):
        _touch(tmp_path / "data", rel)
    with pytest.raises(ValueError, match="belongs to task 'manipulation', not 'synthetic'"):
        evaluate("synthetic", str(tmp_path / "data"), models=["ela"], out=str(tmp_path / "out"), progress=False)
