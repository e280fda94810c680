import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from artifacts.detectors.base import Detector
from artifacts.engine import Store, discover_images, run_batch
from artifacts.engine.store import SCHEMA_VERSION, StoreError
from artifacts.types import Detection
from artifacts.weights import file_sha256
from tests.images import write_tricky_folder


def test_run_writes_files_and_rerun_skips(generated, tmp_path):
    out = tmp_path / "out"
    s1 = run_batch([str(generated / "Tp"), str(generated / "Au")], out, model="fusion", device="cpu", progress=False, workers=2)
    assert s1.counts == {"items": 10, "ok": 10, "not_applicable": 0, "error": 0, "skipped": 0, "skipped_errors": 0}
    assert s1.exit_code == 0
    with Store(out) as store:
        rows = store.rows()
        assert store.schema_version == SCHEMA_VERSION and len(rows) == 10
        for r in rows:
            files = out / "items" / r["key"]
            assert {"detection", "heatmap", "mask", "overlay"} <= set(r["files"])
            assert all((files / f).is_file() for f in r["files"].values())
            assert r["inputs"]["image"]["sha256"] == file_sha256(r["inputs"]["image"]["path"])
            assert r["weights"].startswith("calib-v1:") and r["package_version"]
            assert 0.0 <= r["score"] <= 1.0 and r["meta"]["timings"]["detect_s"] > 0
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 11 and csv_lines[0].startswith("item_id,status,score")
    assert len((out / "results.jsonl").read_text().strip().splitlines()) == 10

    s2 = run_batch([str(generated / "Tp"), str(generated / "Au")], out, model="fusion", device="cpu", progress=False)
    assert s2.counts["skipped"] == 10 and s2.counts["ok"] == 0
    # a changed config is a different result: nothing skipped, stored beside the first
    s3 = run_batch([str(generated / "Au")], out, model="fusion", device="cpu", progress=False, threshold=0.7)
    assert s3.counts["ok"] == 2
    with Store(out) as store:
        assert store.count() == 12 and len(store.runs()) == 3


def test_bad_files_are_one_line_errors_and_the_batch_goes_on(tmp_path):
    expected = write_tricky_folder(tmp_path / "in")
    summary = run_batch([str(tmp_path / "in")], tmp_path / "out", model="fusion", device="cpu", progress=False)
    with Store(tmp_path / "out") as store:
        rows = {r["item_id"]: r for r in store.rows()}
    assert set(rows) == set(expected)
    for name, ok in expected.items():
        row = rows[name]
        if ok:
            assert row["status"] in ("ok", "not_applicable"), (name, row["error"])
        else:
            assert row["status"] == "error" and "\n" not in row["error"] and name in row["error"]
    assert "too large" in rows["bomb.png"]["error"] and "empty" in rows["empty.jpg"]["error"]
    assert summary.exit_code == 1  # partial failure
    # errors are not retried on a plain rerun (which still exits 1), but are with retry_errors
    again = run_batch([str(tmp_path / "in")], tmp_path / "out", model="fusion", device="cpu", progress=False)
    assert again.counts["skipped"] == len(expected) and again.exit_code == 1
    assert again.counts["skipped_errors"] == sum(not ok for ok in expected.values())
    retry = run_batch([str(tmp_path / "in")], tmp_path / "out", model="fusion", device="cpu", progress=False, retry_errors=True)
    assert retry.counts["error"] == sum(not ok for ok in expected.values())


@dataclass
class _Cfg:
    fail_on_width: int = 0


class _Fussy(Detector):
    """Fails on one image size; checks per-item isolation inside batches."""

    task, name = "manipulation", "fussy"

    def detect_one(self, image):
        if image.width == self.config.fail_on_width:
            raise RuntimeError("boom")
        return Detection(score=0.5)


def test_a_detector_failure_stays_with_its_item(generated, tmp_path):
    widths = sorted({__import__("PIL.Image").Image.open(p).width for p in (generated / "Tp").iterdir()})
    det = _Fussy(_Cfg(fail_on_width=widths[0]), device="cpu")
    summary = run_batch([str(generated / "Tp")], tmp_path / "out", detector=det, batch_size=4, progress=False)
    assert summary.counts["error"] >= 1 and summary.counts["ok"] >= 1
    assert summary.counts["error"] + summary.counts["ok"] == 8
    assert all(msg == "RuntimeError: boom" for _, msg in summary.errors)


def test_two_runs_cannot_write_one_store(generated, tmp_path):
    from artifacts.engine.runner import StoreBusyError, _Lock

    (tmp_path / "out").mkdir()
    lock = _Lock(tmp_path / "out")
    try:
        with pytest.raises(StoreBusyError, match="another artifacts run"):
            run_batch([str(generated / "Au")], tmp_path / "out", model="fusion", device="cpu", progress=False)
    finally:
        lock.release()


def test_store_from_a_newer_version_is_refused(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "artifacts.sqlite")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="newer than this package"):
        Store(tmp_path)


def test_discovery_of_folders_globs_and_lists(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "a" / ".hidden").mkdir()
    for p in ["a/x2.png", "a/x10.png", "a/sub/y.JPG", "a/.hidden/z.png", "a/readme.txt"]:
        (tmp_path / p).write_bytes(b"x")
    items = discover_images([str(tmp_path / "a")])
    assert [i.id for i in items] == ["sub/y.JPG", "x2.png", "x10.png"]  # natural order, hidden skipped
    assert len(discover_images([str(tmp_path / "a")], recursive=False)) == 2
    assert len(discover_images([str(tmp_path / "a" / "*.png")])) == 2
    (tmp_path / "list.txt").write_text("# inputs\na/x2.png\na/readme.txt\n")
    listed = discover_images([], files_from=str(tmp_path / "list.txt"))
    assert [i.id for i in listed] == ["x2.png", "readme.txt"]  # explicit files are taken as given
    both = discover_images([str(tmp_path / "a"), str(tmp_path / "a" / "x2.png")])
    assert len(both) == 3  # the same file twice is one item
    with pytest.raises(FileNotFoundError):
        discover_images([str(tmp_path / "missing")])


def test_detection_json_on_disk_matches_the_store(generated, tmp_path):
    run_batch([str(generated / "Au")], tmp_path / "out", model="fusion", device="cpu", progress=False)
    with Store(tmp_path / "out") as store:
        for row, folder in store.iter_items():
            on_disk = json.loads((folder / "detection.json").read_text())
            assert on_disk["score"] == pytest.approx(row["score"])
            heat = np.asarray(__import__("PIL.Image").Image.open(folder / "heatmap.png"))
            assert heat.dtype == np.uint16 and heat.shape == tuple(on_disk["heatmap_shape"])


@pytest.mark.integration
def test_ray_engine_gives_the_same_results_as_the_local_engine(generated, tmp_path):
    pytest.importorskip("ray")
    import filecmp

    inputs = [str(generated / "Tp"), str(generated / "Au")]
    local = run_batch(inputs, tmp_path / "local", model="fusion", device="cpu", progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not an image")
    remote = run_batch(inputs + [str(bad)], tmp_path / "ray", model="fusion", device="cpu", progress=False, engine="ray",
                       workers=2, batch_size=3)
    assert local.counts["ok"] == remote.counts["ok"] == 10 and remote.counts["error"] == 1
    with Store(tmp_path / "local") as a, Store(tmp_path / "ray") as b:
        ra = {r["key"]: r for r in a.rows()}
        rb = {r["key"]: r for r in b.rows() if r["status"] == "ok"}
        assert ra.keys() == rb.keys()
        for key, row in ra.items():
            assert rb[key]["score"] == row["score"] and rb[key]["files"] == row["files"]
            for name in row["files"].values():
                left, right = tmp_path / "local" / "items" / key / name, tmp_path / "ray" / "items" / key / name
                if name.endswith(".json"):  # identical but for the timings
                    a_json, b_json = json.loads(left.read_text()), json.loads(right.read_text())
                    a_json["meta"].pop("timings"), b_json["meta"].pop("timings")
                    assert a_json == b_json
                else:
                    assert filecmp.cmp(left, right, shallow=False)
        assert "not a recognised image format" in [r for r in b.rows() if r["status"] == "error"][0]["error"]
    again = run_batch(inputs, tmp_path / "ray", model="fusion", device="cpu", progress=False, engine="ray")
    assert again.counts["skipped"] == 10  # resume works the same way


def test_equal_files_at_two_paths_are_two_results(generated, tmp_path):
    import shutil

    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "b").mkdir()
    src = next((generated / "Au").iterdir())
    shutil.copy(src, tmp_path / "in" / "a" / "x.png")
    shutil.copy(src, tmp_path / "in" / "b" / "y.png")
    run_batch([str(tmp_path / "in")], tmp_path / "out", model="fusion", device="cpu", progress=False)
    with Store(tmp_path / "out") as store:
        assert sorted(r["item_id"] for r in store.rows()) == ["a/x.png", "b/y.png"]
    assert len((tmp_path / "out" / "results.csv").read_text().strip().splitlines()) == 3


def test_output_inside_the_input_folder_is_not_read_back(generated, tmp_path):
    import shutil

    shutil.copytree(generated / "Au", tmp_path / "in")
    first = run_batch([str(tmp_path / "in")], tmp_path / "in" / "out", model="fusion", device="cpu", progress=False)
    second = run_batch([str(tmp_path / "in")], tmp_path / "in" / "out", model="fusion", device="cpu", progress=False)
    assert first.counts["items"] == second.counts["items"] == 2 and second.counts["skipped"] == 2


def test_clean_never_touches_folders_it_did_not_create(generated, tmp_path):
    notes = tmp_path / "out" / "items" / "my_notes"
    notes.mkdir(parents=True)
    (notes / "keep.txt").write_text("mine")
    orphan = tmp_path / "out" / "items" / ("0" * 32)  # looks like a result folder, has no row
    orphan.mkdir()
    run_batch([str(generated / "Au")], tmp_path / "out", model="fusion", device="cpu", progress=False)
    assert (notes / "keep.txt").read_text() == "mine" and not orphan.exists()


def test_a_changed_file_replaces_its_old_result(generated, tmp_path):
    import shutil

    (tmp_path / "in").mkdir()
    first, second = sorted((generated / "Au").iterdir())[:2]
    shutil.copy(first, tmp_path / "in" / "x.png")
    run_batch([str(tmp_path / "in")], tmp_path / "out", model="fusion", device="cpu", progress=False)
    shutil.copy(second, tmp_path / "in" / "x.png")
    run_batch([str(tmp_path / "in")], tmp_path / "out", model="fusion", device="cpu", progress=False)
    with Store(tmp_path / "out") as store:
        rows = store.rows()
    assert len(rows) == 1 and rows[0]["inputs"]["image"]["sha256"] == file_sha256(second)
    assert len(list((tmp_path / "out" / "items").iterdir())) == 1


def test_recomputing_replaces_the_whole_row(generated, tmp_path):
    first = sorted((generated / "Au").iterdir())[0]
    width = __import__("PIL.Image").Image.open(first).width
    run_batch([str(first)], tmp_path / "out", detector=_Fussy(_Cfg(fail_on_width=-1), device="cpu"), progress=False)
    summary = run_batch([str(first)], tmp_path / "out", detector=_Fussy(_Cfg(fail_on_width=-1), device="cpu"),
                        progress=False, resume=False)
    assert summary.counts["ok"] == 1
    # same key, now failing: the error row carries no stale score or label
    failing = _Fussy(_Cfg(fail_on_width=-1), device="cpu")
    failing.config.fail_on_width = width  # same fingerprint object, different behaviour
    failing.fingerprint = lambda: _Fussy(_Cfg(fail_on_width=-1), device="cpu").fingerprint()
    run_batch([str(first)], tmp_path / "out", detector=failing, progress=False, resume=False)
    with Store(tmp_path / "out") as store:
        (row,) = store.rows()
    assert row["status"] == "error" and row["score"] is None and row["label"] is None


def test_a_failing_disk_marks_the_run_failed(generated, tmp_path, monkeypatch):
    def broken(self, row, files=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Store, "commit", broken)
    with pytest.raises(StoreError, match="No space left"):
        run_batch([str(generated / "Au")], tmp_path / "out", model="fusion", device="cpu", progress=False)
    monkeypatch.undo()
    with Store(tmp_path / "out") as store:
        (run,) = store.runs()
    assert run["status"] == "failed" and run["finished_at"]
