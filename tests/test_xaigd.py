"""X-AIGD: the taxonomy, the parquet reader (built here in the dataset's layout) and the eval adapter."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from artifacts.datasets.xaigd import iter_xaigd, materialise, read_xaigd  # noqa: E402
from artifacts.detectors.synthetic import taxonomy as tx  # noqa: E402
from artifacts.eval.xaigd import ANY, XAIGDAdapter  # noqa: E402
from artifacts.io import encode_image, load_image  # noqa: E402
from artifacts.types import Detection  # noqa: E402

SQUARE = [[10, 10], [30, 10], [30, 30], [10, 30]]  # inclusive corners: 21 x 21 = 441 pixels
FLAT = [40, 5, 60, 5, 60, 25, 40, 25]  # the same square shape as a flat list
TRIANGLE = [[70, 40], [90, 40], [70, 60]]
FRACTIONAL = [[5.9, 5.9], [15.2, 5.9], [15.2, 15.7], [5.9, 15.7]]  # truncated to 5..15: 11 x 11 = 121


def _photo(name: str, h: int, w: int) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    return np.ascontiguousarray(img[:h, :w, :3])


def _reference_mask(points, h, w) -> np.ndarray:
    """The official rasterisation (X-AIGD metrics/masks.py): int32 truncation, clip, fillPoly."""
    pts = np.array(points, dtype=np.int32)
    pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
    canvas = np.zeros((h, w), np.uint8)
    cv2.fillPoly(canvas, [pts], 255)
    return canvas > 0


LABEL_TYPE = pa.list_(pa.struct([("label", pa.string()), ("points", pa.list_(pa.list_(pa.float64())))]))


@pytest.fixture
def xaigd(tmp_path):
    """A folder of three parquet files in X-AIGD's layout, one per image encoding."""
    data = tmp_path / "data"
    data.mkdir()
    a1, a2 = _photo("astronaut", 64, 96), _photo("coffee", 48, 48)
    b1, c1 = _photo("chelsea", 40, 50), _photo("rocket", 32, 32)
    png = {"a1": encode_image(a1), "a2": encode_image(a2), "c1": encode_image(c1)}
    # 1) the Hugging Face Image feature: a {bytes, path} struct, with width/height columns
    pq.write_table(pa.table({
        "image": pa.array([{"bytes": png["a1"], "path": "a1.png"}, {"bytes": png["a2"], "path": "a2.png"}],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "generator": ["sd35", "sd35"], "uid": ["a1", "a2"], "width": [96, 48], "height": [64, 48],
        "labels": pa.array([
            [{"label": "low-level-texture", "points": SQUARE},
             {"label": "high-level-semantics", "points": [FLAT[i:i + 2] for i in range(0, 8, 2)]},
             {"label": "cognitive-level-physics", "points": TRIANGLE}],
            [{"label": "low-level-texture", "points": [[0, 0], [47, 0], [47, 47], [0, 47]]}],  # the whole image
        ], LABEL_TYPE),
    }), data / "labeled_test-00000-of-00003.parquet", row_group_size=1)
    # 2) plain bytes (a JPEG), a flat point list and an alias spelling; no width/height columns
    pq.write_table(pa.table({
        "image": pa.array([encode_image(b1, ".jpg")], pa.binary()),
        "generator": ["flux"], "uid": ["b1"],
        "labels": pa.array([[{"label": "edge_shape", "points": [v for p in FRACTIONAL for v in p]}]],
                           pa.list_(pa.struct([("label", pa.string()), ("points", pa.list_(pa.float64()))]))),
    }), data / "labeled_test-00001-of-00003.parquet")
    # 3) a path (relative to the parquet file), no labels
    (data / "c1.png").write_bytes(png["c1"])
    pq.write_table(pa.table({"image": ["c1.png"], "generator": ["sd35"], "uid": ["c1"],
                             "labels": pa.array([[]], LABEL_TYPE)}),
                   data / "labeled_test-00002-of-00003.parquet")
    return data, {"a1": a1, "a2": a2, "b1": b1, "c1": c1}, png


# -- taxonomy ------------------------------------------------------------------------------
def test_taxonomy_labels_levels_aliases():
    assert tx.LABELS == ("low-level-edge_shape", "low-level-texture", "low-level-color", "low-level-symbol",
                         "high-level-semantics", "cognitive-level-commonsense", "cognitive-level-physics")
    assert {k: len(v) for k, v in tx.LEVELS.items()} == {"low-level": 4, "high-level": 1, "cognitive-level": 2}
    assert tx.LEVEL_OF["cognitive-level-physics"] == "cognitive-level" and tx.SHORT["low-level-edge_shape"] == "edge_shape"
    assert set(tx.DESCRIPTIONS) == set(tx.LABELS) and all("\n" not in d for d in tx.DESCRIPTIONS.values())
    for name, label in [("edge_shape", "low-level-edge_shape"), ("Edge & Shape", "low-level-edge_shape"),
                        ("low_level_colour", "low-level-color"), ("Physics", "cognitive-level-physics"),
                        ("common sense", "cognitive-level-commonsense"), ("high-level-semantics", "high-level-semantics")]:
        assert tx.canonical_label(name) == label
    assert tx.canonical_label("cognitive", levels=True) == "cognitive-level"
    with pytest.raises(ValueError, match="did you mean 'low-level-texture'"):
        tx.canonical_label("low-level-text")  # the official tests' example of an unknown category
    with pytest.raises(ValueError, match="unknown X-AIGD"):
        tx.canonical_label("low-level")  # a level is not a label unless levels=True


def test_validate_and_normalise_categories():
    det = Detection(score=0.7, categories={"low-level-texture": 0.9, "low-level": 0.9, "cognitive-level-physics": 0.2})
    tx.validate_categories(det.categories)
    with pytest.raises(ValueError, match="low-level"):
        tx.validate_categories(det.categories, levels=False)
    with pytest.raises(ValueError, match=r"'texture' \(write 'low-level-texture'\)"):
        tx.validate_categories({"texture": 0.5})
    tx.validate_categories({"texture": 0.5}, aliases=True)
    with pytest.raises(ValueError, match="bogus"):
        tx.validate_categories({"bogus": 0.5}, aliases=True)
    assert tx.normalise_categories({"texture": 0.3, "low-level-texture": 0.6, "physics": 0.1}) == \
        {"low-level-texture": 0.6, "cognitive-level-physics": 0.1}
    assert tx.level_scores({"low-level-texture": 0.6, "low-level-color": 0.8, "high-level-semantics": 0.1}) == \
        {"low-level": 0.8, "high-level": 0.1}
    heat = np.zeros((4, 4), np.float32)
    heat[:2] = 1.0
    masks = {"low-level-texture": np.ones((4, 4), bool), "low-level-color": np.zeros((4, 4), bool)}
    assert tx.category_scores(heat, masks) == {"low-level-texture": 0.5}
    assert tx.category_scores(heat, masks, reduce="max") == {"low-level-texture": 1.0}
    assert tx.categories_from_maps({"color": heat}) == {"low-level-color": 1.0}


# -- reader --------------------------------------------------------------------------------
def test_reader_masks_and_image_encodings(xaigd):
    data, photos, png = xaigd
    samples = read_xaigd(data)  # the folder: every parquet file, sorted
    assert [s.name for s in samples] == ["sd35/a1", "sd35/a2", "flux/b1", "sd35/c1"]
    a1, a2, b1, c1 = samples
    assert (a1.width, a1.height) == (96, 64) and a1.present == ["low-level-texture", "high-level-semantics",
                                                                "cognitive-level-physics"]
    masks = a1.masks()
    assert masks["low-level-texture"].shape == (64, 96) and masks["low-level-texture"].sum() == 441
    assert masks["low-level-texture"][10:31, 10:31].all()
    assert masks["high-level-semantics"].sum() == 441  # the same square given as [[x, y], ...] pairs
    np.testing.assert_array_equal(masks["cognitive-level-physics"], _reference_mask(TRIANGLE, 64, 96))
    assert a1.mask("low-level-color").sum() == 0 and a1.union_mask().sum() == 882 + masks["cognitive-level-physics"].sum()
    # the flat list, the alias and fractional coordinates (truncated as in the official code)
    assert b1.present == ["low-level-edge_shape"] and b1.mask("edge_shape").sum() == 121
    np.testing.assert_array_equal(b1.mask("low-level-edge_shape"), _reference_mask(FRACTIONAL, 40, 50))
    assert (b1.width, b1.height) == (50, 40)  # read from the JPEG header (no width/height columns)
    assert a2.mask("low-level-texture").all() and c1.present == [] and c1.union_mask().shape == (32, 32)
    # every encoding decodes to the original pixels
    assert isinstance(a1.image, bytes) and a1.image == png["a1"] and a1.image_path == "a1.png"
    np.testing.assert_array_equal(a1.load_image().pixels, photos["a1"])
    assert isinstance(b1.image, bytes) and b1.load_image().pixels.shape == (40, 50, 3)
    assert isinstance(c1.image, str) and c1.image == str(data / "c1.png")
    np.testing.assert_array_equal(c1.load_image().pixels, photos["c1"])
    # one file, streamed a row at a time, gives the same rows
    one = list(iter_xaigd(data / "labeled_test-00000-of-00003.parquet", batch_size=1))
    assert [s.name for s in one] == ["sd35/a1", "sd35/a2"] and one[0].image == a1.image
    bare = read_xaigd(data, with_images=False)
    assert bare[0].image is None and bare[0].mask("low-level-texture").sum() == 441


def test_reader_unknown_labels_and_bad_layout(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"image": [encode_image(np.zeros((20, 20, 3), np.uint8))], "generator": ["g"],
                             "uid": ["u"], "labels": pa.array([[
                                 {"label": "low-level-text", "points": SQUARE},
                                 {"label": "low-level-color", "points": [[1, 1], [5, 5]]},
                                 {"label": "low-level-color", "points": [[0, 0], [4, 0], [4, 4], [0, 4]]}]], LABEL_TYPE)}),
                   path)
    with pytest.raises(ValueError, match=r"bad.parquet#0 \(g/u\), label 0 'low-level-text'.*did you mean"):
        read_xaigd(path)
    (s,) = read_xaigd(path, strict=False)  # recorded and skipped
    assert s.present == ["low-level-color"] and s.mask("low-level-color").sum() == 25
    assert len(s.skipped) == 2 and "low-level-text" in s.skipped[0] and "3 points" in s.skipped[1]
    pq.write_table(pa.table({"image": [b"x"], "uid": ["u"]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="missing column"):
        read_xaigd(tmp_path / "other.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .parquet"):
        read_xaigd(tmp_path / "empty")


def test_materialise_writes_images_and_masks(xaigd, tmp_path):
    data, photos, png = xaigd
    out = tmp_path / "files"
    files = materialise(iter_xaigd(data), out)
    assert [f.name for f in files] == ["sd35/a1", "sd35/a2", "flux/b1", "sd35/c1"]
    a1, a2, b1, c1 = files
    assert a1.image == str(out / "images" / "sd35" / "a1.png") and open(a1.image, "rb").read() == png["a1"]
    assert b1.image.endswith("b1.jpg")  # the original bytes, not re-encoded
    assert c1.image == str(data / "c1.png") and c1.masks == {}  # a path is used where it is
    assert sorted(a1.masks) == sorted(["low-level-texture", "high-level-semantics", "cognitive-level-physics"])
    assert a1.load_mask("low-level-texture").sum() == 441 and a1.load_mask("low-level-color").sum() == 0
    assert load_image(a1.masks["low-level-texture"]).pixels.max() == 255
    mtime = (out / "images" / "sd35" / "a1.png").stat().st_mtime_ns
    again = materialise(iter_xaigd(data), out)  # a rerun keeps the images already written
    assert (out / "images" / "sd35" / "a1.png").stat().st_mtime_ns == mtime and again[0].masks == a1.masks


# -- evaluation ----------------------------------------------------------------------------
def _dets(files):
    a1, a2, b1, c1 = files
    tex = a1.load_mask("low-level-texture").astype(np.float32)
    return [
        Detection(score=0.8, heatmap=tex, categories={"low-level-texture": 0.9, "physics": 0.8, "low-level": 0.9,
                                                      "not-a-label": 0.5}),
        Detection(score=0.6, heatmap=np.full((48, 48), 0.7, np.float32),
                  categories={"low-level-texture": 0.7, "cognitive-level-physics": 0.1, "low-level": 0.7}),
        Detection(score=0.2, categories={"low-level-texture": 0.1, "cognitive-level-physics": 0.3, "low-level": 0.1}),
        Detection(score=0.9, heatmap=np.full((32, 32), 0.6, np.float32),
                  categories={"low-level-texture": 0.2, "cognitive-level-physics": 0.2, "low-level": 0.2}),
    ]


def test_adapter_stats_and_summary_exact(xaigd, tmp_path):
    data, _, _ = xaigd
    adapter = XAIGDAdapter()
    files = adapter.read(str(data), tmp_path / "work")
    assert adapter.describe(files) == {"images": 4, "annotated": 3, "generators": 2, "skipped_labels": 0,
                                       "labels": {**{k: 0 for k in tx.LABELS}, "low-level-texture": 2,
                                                  "high-level-semantics": 1, "cognitive-level-physics": 1,
                                                  "low-level-edge_shape": 1}}
    stats = adapter.stats(files, _dets(files))
    assert [st["status"] for st in stats] == ["ok", "ok", "no_heatmap", "ok"]
    assert stats[0]["categories"]["cognitive-level-physics"] == 0.8 and "not-a-label" not in stats[0]["categories"]
    s = adapter.summarise(stats, n_boot=0)
    assert s["counts"] == {"items": 4, "ok": 3, "not_applicable": 0, "error": 0, "no_heatmap": 1, "mask_error": 0}
    assert s["image"]["mean_score"] == {"value": pytest.approx(0.625), "ci": None}
    assert s["image"]["called_fixed"]["value"] == 0.75
    assert s["image"]["per_generator"] == {"flux": {"n": 1, "mean_score": 0.2, "called_fixed": 0.0},
                                           "sd35": {"n": 3, "mean_score": pytest.approx(2.3 / 3), "called_fixed": 1.0}}
    r = s["regions"]
    tex = r["low-level-texture"]["localisation"]  # the heatmap is this label's mask on a1; a2 is all texture
    assert r["low-level-texture"]["n_present"] == 2 and tex["n_images"] == 2
    assert tex["auc"]["value"] == 1.0  # a1 only: a2's label covers the whole image (no AUC)
    assert tex["f1_fixed"]["value"] == 1.0 and tex["iou_fixed"]["value"] == 1.0 and tex["hit_fixed"]["value"] == 1.0
    # semantics on a1: the heatmap is 0 there, 1 on 441 of the other pixels
    sem = r["high-level-semantics"]["localisation"]
    n_neg = 64 * 96 - 441
    assert sem["auc"]["value"] == pytest.approx(0.5 * (n_neg - 441) / n_neg)
    assert sem["f1_fixed"]["value"] == 0.0 and sem["hit_fixed"]["value"] == 0.0
    # the edge_shape image has no heatmap: present but not localised
    assert r["low-level-edge_shape"]["n_present"] == 1 and r["low-level-edge_shape"]["localisation"] is None
    assert r["low-level-color"]["n_present"] == 0 and r["low-level-color"]["category"] is None
    # levels unite their labels: low-level = texture here (edge_shape's image has no heatmap)
    assert r["low-level"]["localisation"]["f1_fixed"]["value"] == 1.0 and r["low-level"]["n_present"] == 3
    # 'any' pools every localised image (c1 has no artifact: false positives only)
    tri = int(_reference_mask(TRIANGLE, 64, 96).sum())
    tp, fp, fn = 441 + 48 * 48, 32 * 32, 441 + tri
    assert r[ANY]["n_localised"] == 3
    assert r[ANY]["localisation"]["f1_fixed"]["value"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert r[ANY]["localisation"]["recall_fixed"]["value"] == pytest.approx(tp / (tp + fn))
    # category AUC: presence of the label vs the Detection's score for it
    assert r["low-level-texture"]["category"] == {"n_pos": 2, "n_neg": 2, "auc": {"value": 1.0, "ci": None}}
    assert r["cognitive-level-physics"]["category"]["auc"]["value"] == 1.0  # 'physics' alias resolved
    assert r["low-level"]["category"]["auc"]["value"] == pytest.approx(2 / 3)  # 0.9, 0.7, 0.1 vs 0.2
    assert r["high-level-semantics"]["category"] is None  # no Detection scores it

    boot = adapter.summarise(stats, n_boot=50)
    lo, hi = boot["image"]["mean_score"]["ci"]
    assert lo <= 0.625 <= hi
    result = {"data": str(data), "samples": adapter.describe(files), "bootstrap": 50,
              "models": {"synthetic/test": {"weights": "none", "clean": boot, "sweep": {}}}}
    text = adapter.format(result)
    assert "low-level-texture" in text and "category AUC" in text and "no heatmap (localisation n/a) 1" in text


def test_adapter_random_map_errors_and_sizes(xaigd, tmp_path):
    data, _, _ = xaigd
    adapter = XAIGDAdapter()
    files = adapter.read(str(data), tmp_path / "work")
    a1 = files[0]
    rng = np.random.default_rng(0)
    st = adapter.stats([a1], [Detection(score=0.5, heatmap=rng.random((64, 96), dtype=np.float32))])
    auc = adapter.summarise(st, n_boot=0)["regions"]["low-level-texture"]["localisation"]["auc"]["value"]
    assert abs(auc - 0.5) < 0.05
    small = Detection(score=0.5, heatmap=np.zeros((32, 48), np.float32))
    na = Detection.not_applicable("grey image")
    st = adapter.stats([a1, a1, a1], [small, na, None])
    assert [x["status"] for x in st] == ["mask_error", "not_applicable", "error"] and "32" in st[0]["error"]
    s = adapter.summarise(st, n_boot=0)
    assert s["counts"]["mask_error"] == 1 and s["regions"][ANY]["localisation"] is None
    assert s["image"]["n"] == 1  # a mask size error still has its image score
    st = XAIGDAdapter(resize_masks=True).stats([a1], [small])  # nearest-neighbour resize, asked for
    assert st[0]["status"] == "ok" and st[0]["regions"]["low-level-texture"]["area"] == 121


def test_adapter_perturb_resizes_masks(xaigd, tmp_path):
    from artifacts.eval.robustness import Perturbation

    data, _, _ = xaigd
    adapter = XAIGDAdapter()
    files = adapter.read(str(data), tmp_path / "work")
    (half,) = adapter.perturb(files[:1], Perturbation("resize", 0.5), tmp_path / "p")
    assert (half.width, half.height) == (48, 32) and load_image(half.image).pixels.shape == (32, 48, 3)
    assert half.load_mask("low-level-texture").shape == (32, 48) and half.load_mask("low-level-texture").sum() > 0
    (jpg,) = adapter.perturb(files[:1], Perturbation("jpeg", 90), tmp_path / "p")
    assert jpg.image.endswith(".jpg") and jpg.masks == files[0].masks


def test_region_counts_match_the_metrics_library():
    """The per-image counts shared by all regions equal threshold_counts / roc_auc / pixel_scores."""
    from artifacts.eval.xaigd import I_FIXED, _ImageCounts
    from artifacts.metrics import pixel_scores, roc_auc, threshold_counts

    rng = np.random.default_rng(1)
    heat = np.round(rng.random((40, 50)), 2).astype(np.float32)  # ties and values on bin edges
    gt = np.zeros((40, 50), bool)
    gt[5:20, 10:35] = True
    st = _ImageCounts(heat).region(gt)
    tp, fp, fn = threshold_counts(heat, gt)
    keep = np.arange(101) != I_FIXED
    np.testing.assert_array_equal(st["tp"][keep], tp[keep])
    np.testing.assert_array_equal(st["fp"][keep], fp[keep])
    np.testing.assert_array_equal(st["fn"][keep], fn[keep])
    t, f, n = st["tp"][I_FIXED], st["fp"][I_FIXED], st["fn"][I_FIXED]
    assert 2 * t / (2 * t + f + n) == pytest.approx(pixel_scores(heat >= 0.5, gt)["f1"])
    assert st["auc"] == pytest.approx(roc_auc(heat, gt), abs=1e-12)
    assert st["area"] == gt.sum() and st["hit"][I_FIXED] == pytest.approx((heat[gt] >= 0.5).mean())
