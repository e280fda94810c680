import json

import numpy as np
import pytest

from artifacts.datasets.iml import read_iml
from artifacts.eval import evaluate, get_adapter
from artifacts.eval.robustness import SWEEP, Perturbation, parse_sweep
from artifacts.io import load_image, save_image
from tests.conftest import run_cli, shared


def test_folder_layout_reader(generated):
    samples = read_iml(generated)
    tampered = [s for s in samples if s.tampered]
    assert len(tampered) == 8 and len(samples) == 10
    shape = load_image(tampered[0].image).pixels.shape[:2]
    assert tampered[0].load_mask(shape).any()
    assert not [s for s in samples if not s.tampered][0].load_mask((4, 4)).any()


def test_json_list_with_negatives_and_size_checks(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    save_image(tmp_path / "a.png", img)
    save_image(tmp_path / "b.png", img)
    mask = np.zeros((20, 30), bool)
    mask[5:10, 5:10] = True
    save_image(tmp_path / "a_gt.png", mask)
    save_image(tmp_path / "small_gt.png", mask[:10, :15])
    (tmp_path / "list.json").write_text(json.dumps([["a.png", "a_gt.png"], ["b.png", "Negative"], ["a.png", "small_gt.png"]]))
    a, b, c = read_iml(tmp_path / "list.json")
    assert a.tampered and not b.tampered and a.load_mask((20, 30)).sum() == 25
    with pytest.raises(ValueError, match="is 15x10 but image"):
        c.load_mask((20, 30))
    assert c.load_mask((20, 30), resize=True).sum() == 100  # explicit nearest-neighbour resize
    (tmp_path / "bad.json").write_text(json.dumps([["missing.png", "Negative"]]))
    with pytest.raises(FileNotFoundError, match="do not exist"):
        read_iml(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="no mask"):
        (tmp_path / "ds" / "Tp").mkdir(parents=True)
        (tmp_path / "ds" / "Gt").mkdir()
        save_image(tmp_path / "ds" / "Tp" / "x.png", img)
        read_iml(tmp_path / "ds")


def test_perturbations_are_deterministic_and_keep_masks_aligned():
    img = (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8)
    for p in SWEEP:
        a, enc = p.apply(img, "item-1")
        b, _ = p.apply(img, "item-1")
        assert np.array_equal(a, b) and a.dtype == np.uint8
        assert (enc is not None) == (p.kind == "jpeg")
    assert Perturbation("resize", 0.5).apply(img)[0].shape == (32, 40, 3)
    assert [p.name for p in parse_sweep("jpeg90,blur1,resize0.5")] == ["jpeg90", "blur1", "resize0.5"]
    with pytest.raises(ValueError):
        parse_sweep("sharpen2")


def test_evaluate_end_to_end_on_generated_data(generated, tmp_path):
    result = evaluate("manipulation", str(generated), out=str(tmp_path / "ev"), n_boot=100, progress=False,
                      sweep=parse_sweep("jpeg70,resize0.5"), models=["noise-residual", "jpeg-dq"])
    entry = result["models"]["manipulation/noise-residual"]
    pixel, image = entry["clean"]["pixel"], entry["clean"]["image"]
    assert pixel["n_images"] == 8 and image["n_tampered"] == 8 and image["n_authentic"] == 2
    for m in (pixel["f1_fixed"], pixel["f1_best"], pixel["auc"], image["auc"], image["ap"]):
        assert 0.0 <= m["value"] <= 1.0 and m["ci"][0] <= m["ci"][1]
    assert pixel["f1_best"]["value"] >= pixel["f1_fixed"]["value"]  # best threshold includes 0.5
    assert set(entry["sweep"]) == {"jpeg70", "resize0.5"}
    dq = result["models"]["manipulation/jpeg-dq"]["clean"]  # PNG inputs: not applicable, counted, no metrics
    assert dq["counts"]["not_applicable"] == 10 and "pixel" not in dq and "image" not in dq
    assert (tmp_path / "ev" / "perturbed" / "resize0.5").is_dir()
    on_disk = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert on_disk["models"].keys() == result["models"].keys()
    text = get_adapter("manipulation").format(result)
    assert "pixel F1" in text and "resize0.5" in text
    # a second evaluation reuses every stored detection
    from artifacts.engine import Store

    with Store(tmp_path / "ev" / "store") as store:
        before = store.count()
    evaluate("manipulation", str(generated), out=str(tmp_path / "ev"), n_boot=10, progress=False,
             models=["noise-residual", "jpeg-dq"])
    with Store(tmp_path / "ev" / "store") as store:
        assert store.count() == before


@pytest.mark.integration
def test_eval_cli_on_casia(tmp_path):
    data = shared("iml", "casia1-samples")
    out = run_cli("eval", "manipulation", "--data", str(data), "-o", str(tmp_path / "ev"), "-q", "--bootstrap", "50",
                  "--model", "noise-residual", timeout=900)
    assert out.returncode == 0, out.stderr
    assert "35 tampered, 35 authentic" in out.stdout and "pixel F1" in out.stdout
    assert (tmp_path / "ev" / "eval.json").is_file()
