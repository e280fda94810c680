"""`refrepair/warp` through the restorer interface: API, detect views -> restore --from, eval."""
from __future__ import annotations

import json

import numpy as np
import pytest

import artifacts
from artifacts.metrics.quality import psnr
from artifacts.types import Status
from tests.conftest import run_cli, shared


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 'scene' cut from scikit-image's astronaut: a clean view, three references seen from
    slightly moved cameras (shifted crops), and the view with a hole showing the background."""
    from skimage import data

    from artifacts.io import save_image

    full = data.astronaut()[40:260, 120:400]
    view = np.ascontiguousarray(full[10:190, 10:250])
    refs = [np.ascontiguousarray(full[10 + dy:190 + dy, 10 + dx:250 + dx]) for dy, dx in ((-6, 4), (5, -7), (8, 9))]
    yy, xx = np.mgrid[:180, :240]
    hole = (yy - 90) ** 2 / 24 ** 2 + (xx - 120) ** 2 / 34 ** 2 < 1
    broken = view.copy()
    broken[hole] = 255
    root = tmp_path_factory.mktemp("scene")
    (root / "refs").mkdir()
    (root / "views").mkdir()
    for i, r in enumerate(refs):
        save_image(root / "refs" / f"ref{i}.png", r)
    save_image(root / "views" / "broken.png", broken)
    return {"root": root, "view": view, "broken": broken, "hole": hole, "refs": refs}


def test_api_repairs_with_a_given_map(scene):
    heat = np.where(scene["hole"], 0.9, 0.05).astype(np.float32)
    res = artifacts.restore(scene["broken"], task="refrepair", heatmap=heat, refs=scene["refs"])
    assert res.status is Status.OK and res.meta["map"] == "given"
    assert psnr(scene["view"], res.image) > psnr(scene["view"], scene["broken"]) + 10
    assert np.array_equal(res.image[~res.mask], scene["broken"][~res.mask])
    json.dumps(res.meta)


def test_without_references_it_is_not_applicable(scene):
    res = artifacts.restore(scene["broken"], task="refrepair", heatmap=np.zeros((180, 240), np.float32))
    assert res.status is Status.NOT_APPLICABLE and "reference" in res.reason


def test_detect_views_then_restore_from_the_run(scene, tmp_path):
    """The chain a user runs: the view metric maps the view, refrepair repairs what it found."""
    root = scene["root"]
    det, fix = tmp_path / "det", tmp_path / "fix"
    r = run_cli("detect", "views", str(root / "views"), "--refs", str(root / "refs"), "-o", str(det), "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("restore", "--from", str(det), "--all", "-o", str(fix), "-q")
    assert r.returncode == 0, r.stderr
    assert "(views run) -> refrepair" in r.stdout
    (row,) = [json.loads(line) for line in (fix / "results.jsonl").read_text().splitlines()]
    assert row["model"] == "refrepair/warp" and row["status"] == "ok"
    assert row["meta"]["map"].endswith("heatmap.png")  # the run's map, not recomputed
    from artifacts.io import load_image

    out = load_image(fix / "items" / row["key"] / "restored.png").pixels
    assert psnr(scene["view"], out) >= psnr(scene["view"], scene["broken"])


@pytest.mark.slow
def test_eval_refrepair_on_real_views(tmp_path):
    """`eval refrepair` on fern's tuning views with holes: a table with the gain and the baseline."""
    data = shared("views", "fern")
    result = artifacts.evaluate("refrepair", str(data), out=str(tmp_path / "ev"), n_boot=50, progress=False,
                                split="tune", kinds=["holes"])
    c = result["models"]["refrepair/warp"]["clean"]
    assert c["counts"]["ok"] == 12
    assert np.isfinite(c["all"]["gain_psnr"]["value"])
    assert result["models"]["inpaint/telea"]["clean"]["counts"]["ok"] == 12  # the baseline without references
    assert "baselines" not in result
    from artifacts.eval import get_adapter

    assert "PSNR gain" in get_adapter("refrepair").format(result)
