"""The HTML run report: built over a real store written by the engine, parsed back with html.parser."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from artifacts.detectors.base import Detector
from artifacts.engine import Store, run_batch
from artifacts.engine.items import Item
from artifacts.report import write_report
from artifacts.types import Detection

EVIL = "<script>alert(1)</script>.png"  # an item id made from a folder "<script>alert(1)<" + file "script>.png"


class Page(HTMLParser):
    """Rows of the results table (cells' text, links, images) plus every link, image and script."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: list[dict] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.scripts = 0
        self.text: list[str] = []
        self.columns: list[str] = []
        self._cell: list[str] | None = None
        self._th = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-s" in a:
            self.rows.append({"status": a["data-s"], "cells": [], "links": [], "images": []})
        elif tag == "td" and self.rows:
            self._cell = []
            self.rows[-1]["cells"].append(self._cell)
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
            if self.rows:
                self.rows[-1]["links"].append(a["href"])
        elif tag == "img":
            self.images.append(a["src"])
            if self.rows:
                self.rows[-1]["images"].append(a["src"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "th" and not self.rows:
            self._th = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        self._th = self._th and tag != "th"

    def handle_data(self, data):
        self.text.append(data)
        if self._th:
            self.columns.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def row_of(self, item_id: str) -> dict:
        found = [r for r in self.rows if self.cell(r, "item").startswith(item_id)]
        assert len(found) == 1, (item_id, len(found))
        return found[0]

    def cell(self, row: dict, column: str) -> str:
        """Text of a row's cell under the results-table header ``column``."""
        results = self.columns[-len(row["cells"]):]  # the runs table's headers come first
        return "".join(row["cells"][results.index(column)])


def parse(out: Path) -> Page:
    return Page((out / "report.html").read_text(encoding="utf-8"))


def local(out: Path, link: str) -> Path:
    assert not urlsplit(link).scheme, f"not a relative link: {link}"
    return (out / unquote(link)).resolve()


def small_png(path: Path, seed: int, size: int = 96) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size + 16, 3), dtype=np.uint8)).save(path)


@dataclass
class _Cfg:
    volumes: int = 10


class _Series(Detector):
    """A dMRI-like detector: bundles of non-image files, categories and per-volume/slice scores."""

    task, name, item_kind = "dmri", "toy-series", "dmri"

    def load_item(self, item):
        return np.load(item.files["dwi"])

    def detect_batch(self, payloads):
        out = []
        for vol in payloads:
            if vol.shape[0] < 4:
                out.append(Detection.not_applicable("too few volumes"))
                continue
            per_slice = np.clip(vol, 0, 1)
            out.append(Detection(score=float(per_slice.max()), categories={"motion": 0.8, "spike": 0.1, "ghost": 0.35},
                                 elements={"volume": per_slice.max(axis=1), "slice": per_slice}))
        return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Run 1: the real default detector on generated images + a bad file + an evil name.
    Run 2: a dMRI-like detector on bundles (no overlay; categories and elements)."""
    from artifacts.datasets.manipulation import GeneratorConfig, write_dataset

    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    write_dataset(data, n=3, seed=1, n_authentic=1, config=GeneratorConfig(max_side=192))
    bad = root / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    small_png(bad / "<script>alert(1)<" / "script>.png", seed=7)
    out = root / "out"
    s1 = run_batch([str(data / "Tp"), str(data / "Au"), str(bad)], out, device="cpu", progress=False)
    assert s1.counts["error"] == 1 and s1.counts["ok"] == 5

    series = root / "series"
    series.mkdir()
    items = []
    for i, n in enumerate((10, 6, 2)):
        rng = np.random.default_rng(i)
        np.save(series / f"sub-{i}_dwi.npy", rng.random((n, 5)).astype(np.float32))
        (series / f"sub-{i}.bval").write_text(" ".join(["1000"] * n))
        items.append(Item(f"sub-{i}", {"dwi": str(series / f"sub-{i}_dwi.npy"), "bval": str(series / f"sub-{i}.bval")},
                          kind="dmri"))
    s2 = run_batch(out=out, items=items, detector=_Series(_Cfg(), device="cpu"), progress=False)
    assert s2.counts["ok"] == 2 and s2.counts["not_applicable"] == 1
    return out


def test_one_row_per_result_with_working_links_and_thumbnails(store):
    path = write_report(store)
    assert path == store / "report.html"
    page = parse(store)
    with Store(store) as s:
        rows = s.rows()
    assert len(page.rows) == len(rows) == 9
    assert sorted(r["status"] for r in page.rows) == sorted(r["status"] for r in rows)
    for link in page.links:
        assert local(store, link).is_file(), link
    assert page.images and all(local(store, src).is_file() for src in page.images)
    for src in page.images:
        assert local(store, src).parent == (store / "report" / "thumbs").resolve()
        with Image.open(local(store, src)) as im:
            assert im.format == "JPEG" and max(im.size) <= 160
    # every image item links its files and its input; the image results carry an overlay thumbnail
    for r in rows:
        if r["kind"] == "image" and r["status"] == "ok":
            row = page.row_of(r["item_id"])
            assert len(row["images"]) == 2
            assert {f"items/{r['key']}/{name}" for name in r["files"].values()} <= {unquote(x) for x in row["links"]}
            assert local(store, row["links"][0]) == Path(r["inputs"]["image"]["path"]).resolve()
    # rows start sorted by score, highest first; unscored rows after
    scores = [page.cell(r, "score") for r in page.rows]
    numeric = [float(x) for x in scores if x != "–"]
    assert numeric == sorted(numeric, reverse=True) and scores[len(numeric):] == ["–"] * (len(scores) - len(numeric))


def test_errors_are_shown_and_names_are_escaped(store):
    write_report(store)
    text = (store / "report.html").read_text(encoding="utf-8")
    page = parse(store)
    broken = page.row_of("broken.png")
    assert broken["status"] == "error"
    assert "truncated or corrupt image data" in page.cell(broken, "status")
    assert page.scripts == 1  # only the page's own sorting script
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;.png" in text
    evil = page.row_of(EVIL)  # shown as text, links to its real input
    assert evil["status"] == "ok" and any(local(store, x).name == "script>.png" for x in evil["links"])
    assert "runs in this store" in "".join(page.text) and "manipulation/effnet-iml" in "".join(page.text)


def test_bundles_without_overlay_show_categories_and_elements(store):
    write_report(store)
    page = parse(store)
    text = (store / "report.html").read_text(encoding="utf-8")
    sub0 = page.row_of("sub-0")
    assert sub0["images"] == []  # no image input, no overlay
    assert "no image to preview" in page.cell(sub0, "input")
    assert "motion" in page.cell(sub0, "categories") and "0.80" in page.cell(sub0, "categories")
    assert "volume" in page.cell(sub0, "elements") and "n=10" in page.cell(sub0, "elements")
    assert text.count('<svg class="spark"') == 4  # volume + slice for two series
    na = page.row_of("sub-2")
    assert na["status"] == "not_applicable" and "too few volumes" in page.cell(na, "status")
    assert {Path(unquote(x)).name for x in sub0["links"]} >= {"detection.json", "sub-0_dwi.npy", "sub-0.bval"}


def test_run_filter_and_row_cap(store):
    page = parse_after(store, run_id=2)
    assert sorted(page.cell(r, "item") for r in page.rows) == ["sub-0", "sub-1", "sub-2"]
    page = parse_after(store, max_items=3)
    assert len(page.rows) == 3 and "Showing 3 of 9 results" in "".join(page.text)
    assert any(r["status"] == "error" for r in page.rows)  # errors are kept when rows are capped
    with pytest.raises(ValueError, match="no run 99"):
        write_report(store, run_id=99)
    with pytest.raises(FileNotFoundError, match="no result store"):
        write_report(store.parent / "nowhere")
    assert not (store.parent / "nowhere").exists()


def parse_after(out: Path, **kwargs) -> Page:
    write_report(out, **kwargs)
    return parse(out)


def test_thumbnails_are_reused_and_deleted_inputs_still_render(tmp_path):
    src = tmp_path / "in"
    for i in range(3):
        small_png(src / f"img{i}.png", seed=i)
    out = tmp_path / "out"
    run_batch([str(src)], out, model="noise-residual", device="cpu", progress=False)  # no categories
    write_report(out, title="first")
    thumbs = sorted((out / "report" / "thumbs").iterdir())
    assert len(thumbs) == 6  # input + overlay per item
    before = {p.name: p.stat().st_mtime_ns for p in thumbs}
    time.sleep(0.02)
    write_report(out)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "report" / "thumbs").iterdir()} == before
    assert "0 made, 6 reused" in (out / "report.html").read_text()

    (src / "img1.png").unlink()
    write_report(out)  # the thumbnail made earlier still shows, the link is gone
    page = parse(out)
    row = page.row_of("img1.png")
    assert "not found" in page.cell(row, "source") and len(row["images"]) == 2
    shutil.rmtree(out / "report")  # without a thumbnail: a note instead
    write_report(out)
    page = parse(out)
    row = page.row_of("img1.png")
    assert "input file not found" in page.cell(row, "input") and len(row["images"]) == 1
    assert all(local(out, x).is_file() for x in page.links + page.images)
    # a changed input (same path, other content) is flagged, not previewed under the old hash
    small_png(src / "img2.png", seed=99, size=64)
    write_report(out)
    page = parse(out)
    assert "changed since the run" in page.cell(page.row_of("img2.png"), "source")
    assert "categories" not in page.columns and "elements" not in page.columns  # no row fills them


@pytest.mark.slow
def test_a_thousand_rows_build_in_seconds(tmp_path):
    """Store rows committed directly (what the engine writes), 1000 items over 50 inputs."""
    src = tmp_path / "in"
    for i in range(50):
        small_png(src / f"p{i}.png", seed=i, size=128)
    overlay = (src / "p0.png").read_bytes()
    from artifacts.weights import file_sha256

    with Store(tmp_path / "out") as s:
        for i in range(1000):
            p = src / f"p{i % 50}.png"
            s.commit({"key": f"{i:032x}", "item_id": f"v{i // 50}/{p.name}", "kind": "image", "task": "manipulation",
                      "model": "manipulation/x", "weights": "none", "config": {}, "input_sha256": f"{i % 50:064x}",
                      "inputs": {"image": {"path": str(p), "sha256": file_sha256(p), "size": p.stat().st_size}},
                      "status": "ok", "score": (i % 97) / 97, "threshold": 0.5, "label": int((i % 97) / 97 >= 0.5),
                      "categories": {}, "files": {"overlay": "overlay.png"}, "meta": {}, "package_version": "0",
                      "run_id": None}, {"overlay.png": overlay})
    t0 = time.perf_counter()
    write_report(tmp_path / "out")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_report(tmp_path / "out")
    second = time.perf_counter() - t0
    page = parse(tmp_path / "out")
    assert len(page.rows) == 1000 and len(os.listdir(tmp_path / "out" / "report" / "thumbs")) == 1050
    assert first < 30 and second < 5, (first, second)


def test_file_names_from_the_store_never_lead_outside_out(tmp_path):
    """A tampered store (file names or a key with '..') is neither read nor linked."""
    import json
    import sqlite3

    out = tmp_path / "out"
    (tmp_path / "secret.json").write_text('{"elements": {"leak": [1, 2, 3]}}')
    Store(out).close()
    db = sqlite3.connect(out / "artifacts.sqlite")
    for key, files in (("a" * 32, {"detection": "../../secret.json", "overlay": "../../secret.json"}),
                       ("../..", {"detection": "secret.json"})):
        db.execute("INSERT INTO results (key, item_id, kind, task, model, weights, config, input_sha256, inputs, "
                   "status, score, threshold, label, files, package_version, created_at) "
                   "VALUES (?, ?, 'image', 'manipulation', 'm', 'none', '{}', '', ?, 'ok', 0.5, 0.5, 1, ?, '0', '')",
                   (key, f"x{len(key)}", json.dumps({"image": {"path": str(tmp_path / "gone.png")}}), json.dumps(files)))
    db.commit()
    db.close()
    write_report(out)
    text = (out / "report.html").read_text()
    page = parse(out)
    assert len(page.rows) == 2 and "leak" not in text and "secret" not in "".join(page.links)
    assert "unsafe file name" in text and "input file not found" in text
    assert {p.name for p in out.iterdir() if not p.name.startswith("artifacts.sqlite")} == {"items", "report", "report.html"}


def test_notes_column_shows_provenance_claims_and_warnings(tmp_path):
    from artifacts.report.cells import notes_cell

    cell = notes_cell({"meta": {"provenance": {"declared_by": ["generation settings: a1111 (PNG tEXt)"]},
                                "warnings": ["WebP input: never seen <in training>"]}})
    assert "declares: generation settings: a1111 (PNG tEXt)" in cell
    assert "warning: WebP input: never seen &lt;in training&gt;" in cell  # escaped
    assert notes_cell({"meta": {}}) == '<td class="empty"></td>'
