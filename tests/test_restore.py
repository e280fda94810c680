"""The restorer interface: Restoration files, masks and heatmaps, the engine and `artifacts restore`."""
from __future__ import annotations

import json

import numpy as np
import pytest

import artifacts
from artifacts.restoration.base import make_input
from artifacts.types import Restoration, Status
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.chelsea()[::4, ::4])  # 75 x 113


@pytest.fixture(scope="module")
def hole(photo) -> np.ndarray:
    m = np.zeros(photo.shape[:2], bool)
    m[30:45, 50:70] = True
    return m


def test_restoration_round_trip(tmp_path, photo, hole):
    res = Restoration(photo, hole, meta={"model": "x"})
    names = res.save(tmp_path)
    assert set(names) == {"restoration.json", "restored.png", "mask.png"}
    back = Restoration.load(tmp_path)
    assert np.array_equal(back.image, photo) and np.array_equal(back.mask, hole)
    assert back.meta == {"model": "x"} and back.status is Status.OK
    na = Restoration.not_applicable("nothing to do")
    assert na.image is None and na.to_dict()["reason"] == "nothing to do"
    with pytest.raises(ValueError, match="needs an image"):
        Restoration()
    with pytest.raises(ValueError, match="uint8/uint16"):
        Restoration(photo.astype(np.float32))


def test_mask_of_another_size_is_an_error_or_an_explicit_recorded_resize(photo, hole):
    small = hole[::2, ::2]
    with pytest.raises(ValueError, match=r"mask is 57x38 but the image is 113x75"):
        make_input(photo, mask=small)
    inp = make_input(photo, mask=small, resize_mask=True)
    assert inp.mask.shape == photo.shape[:2]
    assert inp.meta["resized"] == [{"what": "mask", "from": [38, 57], "to": [75, 113]}]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        make_input(photo, heatmap=np.full(photo.shape[:2], 2.0, np.float32))


@pytest.mark.parametrize("method", ["telea", "exemplar"])
def test_inpaint_restorer_fills_only_the_region(photo, hole, method):
    damaged = photo.copy()
    damaged[hole] = 0
    res = artifacts.restore(damaged, task="inpaint", model=method, mask=hole, dilate=0)
    assert res.status is Status.OK and np.array_equal(res.mask, hole)
    assert np.array_equal(res.image[~hole], photo[~hole])
    err = np.abs(res.image[hole].astype(float) - photo[hole]).mean()
    assert err < 0.4 * np.abs(damaged[hole].astype(float) - photo[hole]).mean()


def test_inpaint_uses_the_heatmap_threshold_and_dilation(photo, hole):
    heat = np.where(hole, 0.9, 0.1).astype(np.float32)
    model = artifacts.create("inpaint/telea", dilate=2)
    res = model.restore(photo, heatmap=heat, threshold=0.5)
    assert res.mask.sum() > hole.sum() and res.mask[hole].all()  # grown by 2 px
    assert res.meta["threshold"] == 0.5
    none = model.restore(photo, heatmap=np.zeros_like(heat), threshold=0.5)
    assert none.status is Status.OK and np.array_equal(none.image, photo) and not none.mask.any()
    missing = model.restore(photo)
    assert missing.status is Status.NOT_APPLICABLE and "needs a mask" in missing.reason


def test_restore_cli_inpaint_with_a_mask_folder_resumes(tmp_path, photo, hole):
    from artifacts.io import load_image, save_image

    src, masks = tmp_path / "in", tmp_path / "masks"
    for d in (src / "sub", masks):
        d.mkdir(parents=True)
    save_image(src / "a.png", photo)
    save_image(src / "sub" / "b.png", photo[:, ::-1].copy())
    save_image(masks / "a_mask.png", hole)
    out = tmp_path / "out"
    r = run_cli("restore", "inpaint", str(src), "--masks", str(masks), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert "2 items: 1 ok, 1 not applicable" in r.stdout
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ok = [row for row in rows if row["status"] == "ok"]
    assert len(ok) == 1 and ok[0]["item_id"] == "a.png" and ok[0]["model"] == "inpaint/telea"
    item = out / "items" / ok[0]["key"]
    assert load_image(item / "restored.png").pixels.shape == photo.shape
    assert (item / "overlay.png").is_file() and (out / "report.html").is_file()
    import csv

    with open(out / "results.csv") as f:
        table = {r["item_id"]: r for r in csv.DictReader(f)}
    assert table["a.png"]["restored"] == f"items/{ok[0]['key']}/restored.png"
    again = run_cli("restore", "inpaint", str(src), "--masks", str(masks), "-o", str(out), "-q")
    assert "2 already done" in again.stdout


def test_restore_from_a_detection_run_then_upscale(tmp_path, generated):
    """detect manipulation -> restore --from RUN (inpaint, the detector's masks) --sr span."""
    det_out, fix_out = tmp_path / "det", tmp_path / "fix"
    two = [str(p) for p in sorted((generated / "Tp").iterdir())[:2]]
    r = run_cli("detect", "manipulation", *two, "--model", "ela", "-o", str(det_out), "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("restore", "--from", str(det_out), "--all", "--sr", "bicubic", "-o", str(fix_out), "-q",
                "--set", "dilate=0")
    assert r.returncode == 0, r.stderr
    assert "(manipulation run) -> inpaint" in r.stdout
    rows = [json.loads(line) for line in (fix_out / "results.jsonl").read_text().splitlines()]
    assert rows and all(row["model"] == "inpaint/telea+sr/bicubic" for row in rows)
    from artifacts.engine import Store
    from artifacts.io import load_image

    with Store(det_out) as store:
        det_rows = {row["item_id"]: row for row in store.rows(status="ok")}
    for row in rows:
        if row["status"] != "ok":
            continue
        item = fix_out / "items" / row["key"]
        det_mask = load_image(det_out / "items" / det_rows[row["item_id"]]["key"] / "mask.png").pixels[..., 0] > 0
        assert np.array_equal(load_image(item / "mask.png").pixels[..., 0] > 0, det_mask)
        h, w = det_mask.shape
        assert load_image(item / "restored.png").pixels.shape == (4 * h, 4 * w, 3)


def test_restore_cli_errors_are_clear(tmp_path):
    r = run_cli("restore", "paint", "x.png", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown restoration task 'paint'" in r.stderr
    r = run_cli("restore", "--from", str(tmp_path), "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "not a detection run" in r.stderr
    r = run_cli("restore", "sr", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "no inputs" in r.stderr
    r = run_cli("restore", "inpaint", "x.png", "--sr", "exemplar", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "--sr takes a super-resolution model" in r.stderr


@pytest.mark.integration
def test_restore_on_ray_equals_local(generated, tmp_path):
    """Restoration through the Ray engine writes the same store and files as the local engine;
    the generator's `<stem>_gt.png` masks are found by --masks."""
    pytest.importorskip("ray")
    import filecmp

    from artifacts.engine import Store, run_batch

    model = artifacts.create("inpaint/telea")
    kwargs = dict(masks=str(generated / "Gt"), progress=False)
    local = run_batch([str(generated / "Tp")], tmp_path / "local", detector=model, **kwargs)
    remote = run_batch([str(generated / "Tp")], tmp_path / "ray", detector=model, engine="ray", workers=2, **kwargs)
    assert local.counts["ok"] == remote.counts["ok"] == 8
    with Store(tmp_path / "local") as a, Store(tmp_path / "ray") as b:
        ra, rb = {r["key"]: r for r in a.rows()}, {r["key"]: r for r in b.rows()}
    assert ra.keys() == rb.keys()
    for key, row in ra.items():
        assert row["files"] == rb[key]["files"] and "restored" in row["files"]
        for name in row["files"].values():
            if not name.endswith(".json"):
                assert filecmp.cmp(tmp_path / "local" / "items" / key / name, tmp_path / "ray" / "items" / key / name,
                                   shallow=False)
