"""Puzzle Similarity (views task): the best-match core, the detector, view items, CLI and eval."""
import json

import numpy as np
import pytest
import torch

import artifacts
from artifacts.detectors.views.similarity import best_match, best_match_full
from tests.conftest import run_cli, shared


def test_best_match_equals_full_matrix_whatever_the_block_size():
    g = torch.Generator().manual_seed(0)
    view = torch.randn(8, 9, 11, generator=g)
    refs = [torch.randn(8, 7, 6, generator=g) for _ in range(5)]
    full = best_match_full(view, refs)
    for block in (4, 4 * 99, 1 << 20):  # one column per block ... everything at once
        assert torch.allclose(best_match(view, refs, block_bytes=block), full, atol=1e-6)
    # a reference set that contains the view's own features matches it exactly
    assert torch.allclose(best_match(view, refs + [view]), torch.ones(9, 11), atol=1e-5)
    # references of other sizes are fine for the core; a generator (streamed) works too
    other = [torch.randn(8, 3, 4, generator=g), torch.randn(8, 12, 5, generator=g)]
    ref = torch.maximum(best_match_full(view, other[:1]), best_match_full(view, other[1:]))
    assert torch.allclose(best_match(view, (r for r in other)), ref, atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        best_match(view, [])
    with pytest.raises(ValueError, match="channels"):
        best_match(view, [torch.randn(4, 3, 3)])


def _fern(n=6):
    folder = shared("views", "fern", "images_8")
    return sorted(folder.glob("*.png"))[:n]


@pytest.fixture(scope="module")
def puzzlesim():
    return artifacts.create("views/puzzlesim", device="cpu", max_side=192)


def test_puzzlesim_finds_a_degraded_region_on_real_views(puzzlesim):
    from artifacts.datasets.view_artifacts import degrade
    from artifacts.io import load_image
    from artifacts.metrics import roc_auc

    views = _fern()
    clean = load_image(views[0]).pixels
    refs = [str(v) for v in views[1:]]
    own = puzzlesim.detect(clean, refs=refs + [str(views[0])])  # the view itself among the references
    assert own.score < 0.02 and own.heatmap.shape == clean.shape[:2]
    base = puzzlesim.detect(clean, refs=refs)
    hits = []
    for kind in ("holes", "floaters", "blur"):
        dv = degrade(clean, seed=3, kind=kind, severity=1.0)
        det = puzzlesim.detect(dv.image, refs=refs)
        assert 0 <= det.heatmap.min() and det.heatmap.max() <= 1
        hits.append(roc_auc(det.heatmap, dv.mask))
        assert det.score > base.score  # the damaged view looks worse than the clean one
    assert min(hits) > 0.75, hits
    assert det.meta["raw"]["n_refs"] == len(refs) and det.meta["preprocessing"]["max_side"] == 192


def test_puzzlesim_input_errors(puzzlesim, tmp_path):
    from artifacts.io import save_image

    views = _fern(3)
    with pytest.raises(ValueError, match="reference views"):
        puzzlesim.detect(str(views[0]))
    odd = tmp_path / "odd.png"
    save_image(odd, np.zeros((50, 70, 3), np.uint8))
    with pytest.raises(ValueError, match="odd.png"):
        puzzlesim.detect(str(views[0]), refs=[str(views[1]), str(odd)])
    with pytest.raises(ValueError, match="layer_weights"):
        artifacts.create("views/puzzlesim", layers=(8, 16), layer_weights=(1.0,))
    with pytest.raises(ValueError, match="strides"):
        artifacts.create("views/puzzlesim", layers=(3,), layer_weights=(1.0,))


def test_view_items_leave_the_view_out_of_its_references(tmp_path):
    from artifacts.engine.items import discover_views

    views = _fern(4)
    items = discover_views([str(v) for v in views[:2]], refs=[str(views[0].parent)])
    assert len(items) == 2 and all(i.kind == "view" for i in items)
    for item in items:
        refs = [p for r, p in item.files.items() if r.startswith("ref")]
        assert item.files["image"] not in refs and len(refs) == 19
    with pytest.raises(ValueError, match="--refs"):
        discover_views([str(views[0])], refs=None)


@pytest.mark.integration
def test_detect_views_cli_writes_maps_and_resumes(tmp_path):
    views = _fern(5)
    args = ["detect", "views", str(views[0]), str(views[1]), "--refs", *map(str, views), "-o", str(tmp_path / "o"),
            "--set", "max_side=128", "-q"]
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["status"] == "ok" and r["model"] == "views/puzzlesim" for r in rows)
    assert all(len(r["inputs"]) == 1 + 4 for r in rows)  # the view and the four other references
    item = tmp_path / "o" / "items" / rows[0]["key"]
    assert {"detection.json", "heatmap.png", "mask.png", "overlay.png"} <= {p.name for p in item.iterdir()}
    again = run_cli(*args)
    assert again.returncode == 0 and "2 already done" in again.stdout
    bad = run_cli("detect", "views", str(views[0]), "-o", str(tmp_path / "p"))
    assert bad.returncode == 2 and "--refs" in bad.stderr
    wrong = run_cli("detect", "manipulation", str(views[0]), "--refs", str(views[1]), "-o", str(tmp_path / "q"))
    assert wrong.returncode == 2 and "view metrics" in wrong.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_eval_views_on_fern_holes(tmp_path):
    shared("views", "fern")
    out = run_cli("eval", "views", "--data", str(shared("views", "fern")), "--kinds", "holes", "-o", str(tmp_path / "e"),
                  "--bootstrap", "50", "-q", timeout=900)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "e" / "eval.json").read_text())
    ps = result["models"]["views/puzzlesim"]["clean"]
    assert ps["counts"] == {"items": 20, "ok": 20, "unchanged": 0, "error": 0} and result["samples"]["references"] == [19]
    assert ps["all"]["pixel_auc"]["value"] > 0.8 and ps["all"]["spearman_ssim"]["value"] > 0.5
    oracle = result["baselines"]["ssim-fullref"]["all"]
    assert oracle["spearman_ssim"]["value"] > 0.99  # 1 - mean SSIM map ranks like SSIM (border aside)
    assert "severity 1.0" in out.stdout and "ssim-fullref (baseline)" in out.stdout
    from artifacts.io import load_image

    assert load_image(tmp_path / "e" / "curves.png").pixels.shape[1] == 720 and "curves.png" in out.stdout
    tune = run_cli("eval", "views", "--data", str(shared("views", "fern")), "--split", "tune", "--kinds", "ghosting",
                   "-o", str(tmp_path / "t"))
    assert tune.returncode == 2 and "held-out kinds" in tune.stderr


def test_paper_backbone_needs_the_users_weights_and_runs_with_them(tmp_path):
    import torchvision

    with pytest.raises(ValueError, match="local file"):
        artifacts.create("views/puzzlesim", backbone="squeezenet1_1", layers=(2, 3, 4), layer_weights=(0.67, 0.2, 0.13))
    # a user's squeezenet1_1 state dict (random here: torchvision's ImageNet file is not offline)
    path = tmp_path / "squeezenet1_1.pth"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    det = artifacts.create("views/puzzlesim", backbone="squeezenet1_1", layers=(2, 3, 4),
                           layer_weights=(0.67, 0.2, 0.13), weights=str(path), max_side=96)
    rng = np.random.default_rng(0)
    refs = [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(3)]
    own = det.detect(refs[0], refs=refs)
    assert own.heatmap.shape == (64, 80) and own.score < 1e-3  # the view is among its references
    assert det.weight_id.startswith("file:")


def test_api_references_folder_own_file_and_cache_identity(puzzlesim, tmp_path):
    from artifacts.io import ImageData

    views = _fern(4)
    for v in views:
        (tmp_path / v.name).write_bytes(v.read_bytes())
    view = str(tmp_path / views[0].name)
    by_folder = puzzlesim.detect(view, refs=str(tmp_path))  # a folder; the view's own file is left out
    by_files = puzzlesim.detect(view, refs=[str(tmp_path / v.name) for v in views[1:]])
    assert by_folder.meta["raw"]["n_refs"] == 3 and by_folder.score == pytest.approx(by_files.score, abs=1e-6)
    assert by_folder.score > 0.02  # not its own reference
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no reference views found"):
        puzzlesim.detect(view, refs=str(tmp_path / "empty"))
    # in-memory references: the cache tells apart equal pixels with different alpha
    pixels = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    opaque = ImageData(pixels, {}, alpha=np.full((48, 64), 255, np.uint8))
    clear = ImageData(pixels, {}, alpha=np.zeros((48, 64), np.uint8))
    first = puzzlesim.detect(pixels, refs=[opaque]).score
    second = puzzlesim.detect(pixels, refs=[clear]).score  # clear alpha composites to white
    fresh = artifacts.create("views/puzzlesim", device="cpu", max_side=192).detect(pixels, refs=[clear]).score
    assert second == pytest.approx(fresh, abs=1e-6) and abs(first - second) > 0.1


@pytest.mark.integration
def test_rerun_never_takes_its_own_outputs_as_references(tmp_path):
    scene = tmp_path / "scene"
    scene.mkdir()
    for v in _fern(3):
        (scene / v.name).write_bytes(v.read_bytes())
    args = ["detect", "views", str(scene / "image000.png"), "--refs", str(scene), "-o", str(scene / "out"),
            "--set", "max_side=64", "-q"]
    assert run_cli(*args).returncode == 0
    again = run_cli(*args)  # OUT (heatmaps, thumbnails) now lies inside the reference folder
    assert again.returncode == 0 and "1 already done" in again.stdout, again.stdout + again.stderr
